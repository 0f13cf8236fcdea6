package io.pegaflow.fabric;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.pegaflow.fabric.cli.NodeProcess;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * A node process whose topology asks for {@code transport: rdma} on a NIC this machine does not have (any machine:
 * the device name is made up): without a fallback it refuses to start with the reason and the fix; with {@code
 * transportFallback: tcp} it runs TCP, says so in its log, and its metrics show the fallback.
 */
class RdmaFallbackProcessTest {
    @TempDir
    Path dir;

    private Path topology(String fallbackLine) throws Exception {
        String yaml = TestPorts.topologyYaml("pegaflow-rdma-fallback", 1)
                .replace(
                        "    transport: tcp\n",
                        "    transport: rdma\n" + fallbackLine
                                + "    rdma: [{device: pegaflow-no-such-nic, port: 1, gidIndex: 1}]\n");
        Path file = dir.resolve("cluster.yaml");
        Files.writeString(file, yaml);
        return file;
    }

    private NodeProcess start(Path file) throws Exception {
        return NodeProcess.start(
                "n1",
                List.of("-Xmx256m", "-XX:+UseSerialGC"),
                List.of("--topology", file.toString(), "--node", "n1"),
                dir.resolve("logs"));
    }

    @Test
    @Timeout(90)
    void shouldRefuseToStartWithTheReasonAndTheFixWhenRdmaCannotRunAndNoFallbackIsAllowed() throws Exception {
        try (NodeProcess node = start(topology(""))) {
            int rc = node.waitForExit(Duration.ofSeconds(60));
            String log = node.logTail(100_000);
            assertNotEquals(0, rc, log);
            assertTrue(log.contains("transport rdma cannot run here"), log);
            assertTrue(namesTheReason(log), log);
            assertTrue(log.contains("transportFallback: tcp"), log);
        }
    }

    @Test
    @Timeout(120)
    void shouldRunTcpAndShowTheFallbackInLogAndMetricsWhenTheTopologyAllowsIt() throws Exception {
        Path file = topology("    transportFallback: tcp\n");
        int metricsPort = Integer.parseInt(Files.readString(file).replaceAll("(?s).*metricsPort: (\\d+).*", "$1"));
        try (NodeProcess node = start(file)) {
            long deadline = System.nanoTime() + Duration.ofSeconds(60).toNanos();
            String body = "";
            while (System.nanoTime() < deadline && node.isAlive()) {
                try {
                    body = scrape(metricsPort);
                    if (body.contains("pegaflow_transport_fallback{")) {
                        break;
                    }
                } catch (java.io.IOException notYet) {
                    // the endpoint is not up yet
                }
                Thread.sleep(500);
            }
            String log = node.logTail(100_000);
            assertTrue(node.isAlive(), log);
            assertEquals(1.0, ClusterProcessTest.gauge(body, "pegaflow_transport_fallback", "transport=\"tcp\""), body);
            assertEquals(
                    1.0, ClusterProcessTest.gauge(body, "pegaflow_transport_fallback", "requested=\"rdma\""), body);
            assertEquals(1.0, ClusterProcessTest.gauge(body, "pegaflow_transport_active", "transport=\"tcp\""), body);
            assertTrue(log.contains("falling back to tcp"), log);
            assertTrue(namesTheReason(log), log);
        }
    }

    /** No device at all (this host), or devices but not the one the topology names (an RDMA machine). */
    private static boolean namesTheReason(String log) {
        return log.contains("no RDMA device: ") || log.contains("pegaflow-no-such-nic does not exist");
    }

    private static String scrape(int port) throws Exception {
        HttpClient http =
                HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(3)).build();
        HttpResponse<String> response = http.send(
                HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + "/metrics"))
                        .timeout(Duration.ofSeconds(5))
                        .build(),
                HttpResponse.BodyHandlers.ofString());
        return response.body();
    }
}
