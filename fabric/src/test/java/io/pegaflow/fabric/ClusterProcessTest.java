package io.pegaflow.fabric;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import io.pegaflow.config.NodeSpec;
import io.pegaflow.config.Topology;
import io.pegaflow.config.TopologyLoader;
import io.pegaflow.fabric.cli.FabricClients;
import io.pegaflow.fabric.cli.HostPort;
import io.pegaflow.fabric.cli.Main;
import io.pegaflow.fabric.cli.NodeProcess;
import io.pegaflow.fabric.cli.StatusFormat;
import io.pegaflow.proto.fabric.ClusterStatusRequest;
import io.pegaflow.proto.fabric.ClusterStatusResponse;
import io.pegaflow.proto.fabric.FabricClient;
import io.pegaflow.proto.fabric.HealthRequest;
import io.pegaflow.proto.fabric.HealthResponse;
import io.pegaflow.proto.fabric.Member;
import io.pegaflow.proto.fabric.ShutdownRequest;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.function.Predicate;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestMethodOrder;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * Three node processes on loopback, started from a topology file: the cluster forms, each node reports it over gRPC
 * and Prometheus, and nodes leave gracefully by Shutdown RPC and by SIGTERM. One cluster for the whole class (a cold
 * cluster takes seconds to form on 2 cores); the steps run in order.
 */
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class ClusterProcessTest {
    private static final Duration CALL = Duration.ofSeconds(3);

    @TempDir
    static Path dir;

    static Topology topology;
    static FabricClients clients;
    static final Map<String, NodeProcess> processes = new LinkedHashMap<>();
    static final Map<String, FabricClient> fabric = new LinkedHashMap<>();

    @BeforeAll
    static void startCluster() throws Exception {
        Path file = dir.resolve("cluster.yaml");
        Files.writeString(file, TestPorts.topologyYaml("pegaflow-test", 3));
        topology = TopologyLoader.load(file);
        clients = new FabricClients();
        for (NodeSpec node : topology.nodes()) {
            processes.put(
                    node.id(),
                    NodeProcess.start(
                            node.id(),
                            List.of("-Xmx256m", "-XX:+UseSerialGC"),
                            List.of("--topology", file.toString(), "--node", node.id()),
                            dir.resolve("logs")));
            fabric.put(node.id(), clients.fabric(new HostPort(node.host(), node.grpcPort()), CALL));
        }
    }

    @AfterAll
    static void stopCluster() {
        processes.values().forEach(NodeProcess::close);
        if (clients != null) {
            clients.close();
        }
    }

    @Test
    @Order(1)
    void shouldFormThreeMemberClusterSeenUpFromEveryNode() throws Exception {
        for (String id : List.of("n1", "n2", "n3")) {
            ClusterStatusResponse status = awaitStatus(id, s -> StatusFormat.upCount(s) == 3, Duration.ofSeconds(90));
            assertEquals(id, status.getSelfNodeId());
            assertEquals("pegaflow-test", status.getClusterName());
            List<String> ids = status.getMembersList().stream()
                    .map(Member::getNodeId)
                    .sorted()
                    .toList();
            assertEquals(List.of("n1", "n2", "n3"), ids);
            for (Member m : status.getMembersList()) {
                NodeSpec spec = topology.requireNode(m.getNodeId());
                assertEquals("pekko://pegaflow-test@127.0.0.1:" + spec.clusterPort(), m.getAddress());
                assertTrue(
                        m.getRolesList().contains("node-id:" + m.getNodeId()),
                        m.getRolesList().toString());
            }
            assertTrue(status.getUnreachableList().isEmpty());
        }
        assertTrue(
                processes.get("n1").logTail(Integer.MAX_VALUE).contains("SBR started"),
                "Split Brain Resolver must be on");
    }

    @Test
    @Order(2)
    void shouldReportHealthServingWithTheHostPathNamed() throws Exception {
        HealthResponse health = fabric.get("n2")
                .health(HealthRequest.getDefaultInstance())
                .toCompletableFuture()
                .get(5, TimeUnit.SECONDS);
        assertEquals("n2", health.getNodeId());
        assertEquals(HealthResponse.ServingStatus.SERVING, health.getStatus());
        assertEquals("host", health.getCopyEngine());
        assertEquals("tcp", health.getTransport());
        assertTrue(health.getUptimeMs() > 0);
    }

    @Test
    @Order(3)
    void shouldPrintStatusAsTableAndJsonFromTheCommandLine() {
        NodeSpec n3 = topology.requireNode("n3");
        String endpoint = "127.0.0.1:" + n3.grpcPort();
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        int rc = Main.run(new String[] {"status", "--endpoint", endpoint}, new PrintStream(out), new PrintStream(err));
        assertEquals(0, rc, err.toString());
        String table = out.toString(StandardCharsets.UTF_8);
        assertTrue(table.contains("seen from node n3"), table);
        assertTrue(table.contains("3 members: 3 Up"), table);

        out.reset();
        rc = Main.run(
                new String[] {"status", "--endpoint", endpoint, "--json"}, new PrintStream(out), new PrintStream(err));
        assertEquals(0, rc, err.toString());
        String json = out.toString(StandardCharsets.UTF_8);
        assertTrue(json.contains("\"selfNodeId\" : \"n3\""), json);
        assertEquals(3, json.split("\"status\" : \"Up\"", -1).length - 1, json);
    }

    @Test
    @Order(4)
    void shouldExportPegaflowMetricsOnThePrometheusEndpoint() throws Exception {
        NodeSpec n1 = topology.requireNode("n1");
        // Kamon publishes on a 1 s tick: poll until the cluster gauge and the gRPC counters of the calls above appear.
        long deadline = System.nanoTime() + Duration.ofSeconds(20).toNanos();
        String body = "";
        while (System.nanoTime() < deadline) {
            fabric.get("n1")
                    .clusterStatus(ClusterStatusRequest.getDefaultInstance())
                    .toCompletableFuture()
                    .get(5, TimeUnit.SECONDS);
            body = scrape(n1.metricsPort());
            if (gauge(body, "pegaflow_cluster_members", "status=\"Up\"") == 3
                    && body.contains("pegaflow_grpc_requests_total{")
                    && body.contains("pegaflow_grpc_request_duration_seconds_bucket{")) {
                break;
            }
            Thread.sleep(500);
        }
        assertEquals(3.0, gauge(body, "pegaflow_cluster_members", "status=\"Up\""), body);
        assertTrue(gauge(body, "pegaflow_grpc_requests_total", "method=\"ClusterStatus\"") >= 1, body);
        assertTrue(body.contains("status=\"OK\""), body);
        assertTrue(body.contains("node=\"n1\""), body);
        assertTrue(gauge(body, "pegaflow_jvm_memory_used_bytes", "area=\"heap\"") > 0, body);
        assertTrue(gauge(body, "pegaflow_jvm_threads", "") > 0, body);
        assertTrue(gauge(body, "pegaflow_process_uptime_seconds", "") > 0, body);
    }

    @Test
    @Order(5)
    void shouldLeaveTheClusterAndExitZeroOnShutdownRpc() throws Exception {
        // Without the node's id as confirmation (or with another node's) nothing happens.
        for (ShutdownRequest unconfirmed : List.of(
                ShutdownRequest.newBuilder().setReason("test").build(),
                ShutdownRequest.newBuilder().setConfirmNodeId("n1").build())) {
            ExecutionException refused = assertThrows(
                    ExecutionException.class,
                    () -> fabric.get("n3")
                            .shutdown(unconfirmed)
                            .toCompletableFuture()
                            .get(5, TimeUnit.SECONDS));
            assertTrue(refused.getCause().getMessage().contains("confirm_node_id"), refused.toString());
        }
        assertEquals(
                HealthResponse.ServingStatus.SERVING,
                fabric.get("n3")
                        .health(HealthRequest.getDefaultInstance())
                        .toCompletableFuture()
                        .get(5, TimeUnit.SECONDS)
                        .getStatus());
        fabric.get("n3")
                .shutdown(ShutdownRequest.newBuilder()
                        .setReason("test")
                        .setConfirmNodeId("n3")
                        .build())
                .toCompletableFuture()
                .get(5, TimeUnit.SECONDS);
        assertEquals(
                0,
                processes.get("n3").waitForExit(Duration.ofSeconds(60)),
                processes.get("n3").logTail(30));
        // A graceful leave: the others see two members and nobody unreachable, with no downing needed.
        ClusterStatusResponse status = awaitStatus(
                "n1", s -> s.getMembersCount() == 2 && s.getUnreachableCount() == 0, Duration.ofSeconds(30));
        assertEquals(
                List.of("n1", "n2"),
                status.getMembersList().stream().map(Member::getNodeId).sorted().toList());
        assertTrue(
                processes.get("n3").logTail(Integer.MAX_VALUE).contains("node n3 stopped"),
                processes.get("n3").logTail(30));
        assertTrue(
                processes
                        .get("n3")
                        .logTail(Integer.MAX_VALUE)
                        .contains("shutdown requested (test, asked by 127.0.0.1:"),
                processes.get("n3").logTail(60));
    }

    @Test
    @Order(6)
    void shouldLeaveTheClusterGracefullyOnSigterm() throws Exception {
        NodeProcess n2 = processes.get("n2");
        n2.terminate();
        int code = n2.waitForExit(Duration.ofSeconds(60));
        assertNotEquals(-1, code, "n2 did not exit after SIGTERM");
        ClusterStatusResponse status = awaitStatus(
                "n1", s -> s.getMembersCount() == 1 && s.getUnreachableCount() == 0, Duration.ofSeconds(30));
        assertEquals("n1", status.getMembers(0).getNodeId());
        assertTrue(
                n2.logTail(Integer.MAX_VALUE).contains("Exiting completed")
                        || n2.logTail(Integer.MAX_VALUE).contains("Leaving"),
                n2.logTail(40));
    }

    @Test
    @Order(7)
    void shouldStopTheLastNodeWithExitCodeZero() throws Exception {
        fabric.get("n1")
                .shutdown(ShutdownRequest.newBuilder().setConfirmNodeId("n1").build())
                .toCompletableFuture()
                .get(5, TimeUnit.SECONDS);
        assertEquals(
                0,
                processes.get("n1").waitForExit(Duration.ofSeconds(60)),
                processes.get("n1").logTail(30));
    }

    private static ClusterStatusResponse awaitStatus(
            String nodeId, Predicate<ClusterStatusResponse> done, Duration timeout) throws InterruptedException {
        long deadline = System.nanoTime() + timeout.toNanos();
        ClusterStatusResponse last = null;
        List<String> errors = new ArrayList<>();
        while (System.nanoTime() < deadline) {
            if (!processes.get(nodeId).isAlive()) {
                fail("node " + nodeId + " died:\n" + processes.get(nodeId).logTail(40));
            }
            try {
                last = fabric.get(nodeId)
                        .clusterStatus(ClusterStatusRequest.getDefaultInstance())
                        .toCompletableFuture()
                        .get(5, TimeUnit.SECONDS);
                if (done.test(last)) {
                    return last;
                }
            } catch (Exception e) {
                errors.add(e.toString());
            }
            Thread.sleep(300);
        }
        fail("node " + nodeId + " never reached the expected state; last status: " + last + "; last error: "
                + (errors.isEmpty() ? "-" : errors.getLast()) + "\n"
                + processes.get(nodeId).logTail(40));
        return null;
    }

    private static String scrape(int port) throws Exception {
        HttpClient http =
                HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(3)).build();
        HttpResponse<String> response = http.send(
                HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + "/metrics"))
                        .timeout(Duration.ofSeconds(5))
                        .build(),
                HttpResponse.BodyHandlers.ofString());
        assertEquals(200, response.statusCode());
        return response.body();
    }

    /** The value of the first sample of {@code name} whose labels contain {@code labelPart}; NaN if none. */
    static double gauge(String body, String name, String labelPart) {
        Matcher m = Pattern.compile("(?m)^" + Pattern.quote(name) + "(\\{[^}]*\\})? ([-0-9.eE+NaInf]+)$")
                .matcher(body);
        while (m.find()) {
            String labels = m.group(1) == null ? "" : m.group(1);
            if (labels.contains(labelPart)) {
                return Double.parseDouble(m.group(2));
            }
        }
        return Double.NaN;
    }
}
