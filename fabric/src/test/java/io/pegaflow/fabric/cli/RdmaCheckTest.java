package io.pegaflow.fabric.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.pegaflow.rdma.GidEntry;
import io.pegaflow.rdma.GidType;
import io.pegaflow.rdma.RdmaDevice;
import io.pegaflow.rdma.RdmaNic;
import io.pegaflow.rdma.RdmaPort;
import io.pegaflow.rdma.RdmaProbeResult;
import io.pegaflow.rdma.RdmaProblem;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code rdma-check}: the report over a probe result written out by hand (what ibv_devinfo shows for Soft-RoCE's rxe0:
 * one active Ethernet port, a link-local RoCE v1/v2 pair and the IPv4 RoCE v2 GID at index 1), and the command on this
 * machine, whatever it has.
 */
@Timeout(60)
class RdmaCheckTest {
    private static final ObjectMapper JSON = new ObjectMapper();

    @TempDir
    Path dir;

    private static RdmaProbeResult.Devices softRoce(String state) {
        List<GidEntry> gids = List.of(
                new GidEntry(0, "fe80:0000:0000:0000:5054:00ff:fe12:3456", GidType.ROCE_V1, 2),
                new GidEntry(1, "0000:0000:0000:0000:0000:ffff:0a00:020f", GidType.ROCE_V2, 2));
        RdmaPort port = new RdmaPort(1, state, 1024, 4096, "Ethernet", 0, 1024, gids);
        RdmaDevice rxe0 =
                new RdmaDevice("rxe0", "", -1L >>> 1, 1 << 18, 1 << 20, 32, 1 << 18, 1 << 24, 128, List.of(port));
        return new RdmaProbeResult.Devices(List.of(rxe0), -1, List.of());
    }

    @Test
    void shouldListPortsAndTheGidTableWithTypesAndPassAUsableNic() {
        RdmaCheck check = new RdmaCheck(softRoce("ACTIVE"), List.of(new RdmaNic("rxe0", 1, 1)), "--nic", "", 0, false);
        String text = check.text();
        assertTrue(text.contains("memlock limit: unlimited"), text);
        assertTrue(text.contains("port 1: ACTIVE, Ethernet (RoCE), MTU 1024 (max 4096)"), text);
        assertTrue(text.contains("ROCE_V2") && text.contains("10.0.2.15"), text);
        assertTrue(text.contains("nic rxe0 port 1 gidIndex 1: OK"), text);
        assertTrue(text.contains("OK: no problems found"), text);
        assertEquals(List.of(), check.problems());
    }

    @Test
    void shouldNameEveryNicProblemWithItsFix() {
        RdmaCheck check = new RdmaCheck(
                softRoce("DOWN"),
                List.of(new RdmaNic("rxe0", 1, 0), new RdmaNic("mlx5_0", 1, 3)),
                "--nic",
                "",
                0,
                false);
        List<String> problems =
                check.problems().stream().map(RdmaProblem::problem).toList();
        assertTrue(problems.contains("port 1 of rxe0 is DOWN"), problems.toString());
        assertTrue(
                problems.stream().anyMatch(p -> p.contains("GID index 0 of port 1 of rxe0 is ROCE_V1")),
                problems.toString());
        assertTrue(problems.stream().anyMatch(p -> p.contains("device mlx5_0 does not exist")), problems.toString());
        check.problems().forEach(p -> assertFalse(p.fix().isBlank(), p.toString()));
        String text = check.text();
        assertTrue(text.contains("fix: use a RoCE v2 GID index: [1]"), text);
    }

    @Test
    void shouldReportAMemlockLimitBelowThePoolUnlessTheProcessMayLockMemory() {
        RdmaProbeResult.Devices limited =
                new RdmaProbeResult.Devices(softRoce("ACTIVE").devices(), 8L << 20, List.of());
        List<RdmaNic> nic = List.of(new RdmaNic("rxe0", 1, 1));
        RdmaCheck user = new RdmaCheck(limited, nic, "--nic", "", 1L << 30, false);
        assertTrue(user.problems().getFirst().problem().startsWith("memlock limit is 8388608 bytes"), user.text());
        RdmaCheck root = new RdmaCheck(limited, nic, "--nic", "", 1L << 30, true);
        assertEquals(List.of(), root.problems(), root.text());
        assertTrue(root.text().contains("not enforced: this process has CAP_IPC_LOCK"), root.text());
    }

    @Test
    void shouldWriteTheSameReportAsJson() throws Exception {
        RdmaCheck check = new RdmaCheck(softRoce("ACTIVE"), List.of(new RdmaNic("rxe0", 1, 1)), "--nic", "", 0, false);
        JsonNode json = JSON.readTree(JSON.writeValueAsString(check.json()));
        assertTrue(json.get("ok").asBoolean(), json.toString());
        JsonNode gid =
                json.get("devices").get(0).get("ports").get(0).get("gids").get(1);
        assertEquals("ROCE_V2", gid.get("type").asText());
        assertTrue(json.get("checked").get("nics").get(0).get("usable").asBoolean(), json.toString());
    }

    @Test
    void shouldReportThisMachineAndExitOneOnProblemsOrZeroWhenUsable() throws Exception {
        Run run = run("rdma-check", "--json");
        JsonNode json = JSON.readTree(run.out);
        if (json.has("noDevice")) {
            assertEquals(1, run.rc, run.out + run.err);
            assertTrue(json.get("noDevice").get("reason").asText().startsWith("no RDMA device: "), run.out);
            assertTrue(json.get("problems").get(0).get("fix").asText().length() > 0, run.out);
        } else {
            assertEquals(json.get("ok").asBoolean() ? 0 : 1, run.rc, run.out + run.err);
        }
        Run text = run("rdma-check");
        assertTrue(text.out.contains("memlock limit: "), text.out);
        assertEquals(run.rc, text.rc, text.out);
    }

    @Test
    void shouldCheckTheNicsATopologyNodeNamesAndSayItsTransport() throws Exception {
        Path file = dir.resolve("cluster.yaml");
        Files.writeString(file, """
                cluster: c
                nodes:
                  - {id: n1, host: 127.0.0.1, clusterPort: 1, grpcPort: 2, metricsPort: 3, poolSize: 1gb,
                     transport: rdma, transportFallback: tcp, rdma: [{device: pegaflow-no-such-nic, port: 1, gidIndex: 1}]}
                """);
        Run run = run("rdma-check", "--topology", file.toString(), "--node", "n1");
        assertEquals(1, run.rc, run.out + run.err);
        assertTrue(run.out.contains("node n1:"), run.out);
        assertTrue(run.out.contains("transport rdma, transportFallback tcp"), run.out);
        assertTrue(run.out.contains("nic pegaflow-no-such-nic port 1 gidIndex 1: "), run.out);
        assertTrue(
                run.out.contains("no RDMA device: ") || run.out.contains("pegaflow-no-such-nic does not exist"),
                run.out);
    }

    @Test
    void shouldRefuseAMalformedNicAsABadCommandLine() {
        Run run = run("rdma-check", "--nic", "mlx5_0:one:3");
        assertEquals(2, run.rc, run.err);
        assertTrue(run.err.contains("is not DEV:PORT:GID") || run.err.contains("mlx5_0:one:3"), run.err);
    }

    private record Run(int rc, String out, String err) {}

    private static Run run(String... args) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        int rc = Main.run(
                args,
                new PrintStream(out, true, StandardCharsets.UTF_8),
                new PrintStream(err, true, StandardCharsets.UTF_8));
        return new Run(rc, out.toString(StandardCharsets.UTF_8), err.toString(StandardCharsets.UTF_8));
    }
}
