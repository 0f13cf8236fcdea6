package io.pegaflow.fabric.node;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.pegaflow.fabric.TestPorts;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine.ParameterException;

class NodeOptionsTest {
    @TempDir
    Path dir;

    private Path topology(String yaml) throws Exception {
        Path file = dir.resolve("t.yaml");
        Files.writeString(file, yaml);
        return file;
    }

    @Test
    void shouldStartSingleNodeOnLoopbackWithDefaultsWhenNoTopologyIsGiven() {
        NodeLaunch launch = NodeOptions.resolve(new String[0]);
        assertEquals("127.0.0.1", launch.self().host());
        assertEquals(50055, launch.self().grpcPort());
        assertEquals(1, launch.topology().nodes().size());
        assertEquals(1L << 30, launch.poolSizeBytes());
        assertEquals(DeviceSelection.auto(), launch.devices(), "every visible GPU by default");
        assertEquals("info", launch.logLevel());
    }

    @Test
    void shouldHonourAddrPoolSizeDeviceAndLogLevelFlags() {
        NodeLaunch launch = NodeOptions.resolve(
                new String[] {"--addr", "0.0.0.0:6000", "--pool-size", "1.5gb", "--device", "1", "--log-level", "DEBUG"
                });
        assertEquals("0.0.0.0", launch.grpcBindHost());
        assertEquals("127.0.0.1", launch.self().host(), "Artery needs a concrete address");
        assertEquals(6000, launch.self().grpcPort());
        assertEquals(3L << 29, launch.poolSizeBytes());
        assertEquals(DeviceSelection.of(List.of(1)), launch.devices());
        assertEquals("debug", launch.logLevel());
    }

    @Test
    void shouldTakeTheNodeEntryFromTheTopology() throws Exception {
        Path file = topology(TestPorts.topologyYaml("c", 2));
        NodeLaunch launch = NodeOptions.resolve(new String[] {"--topology", file.toString(), "--node", "n2"});
        assertEquals("n2", launch.self().id());
        assertEquals(64L << 20, launch.poolSizeBytes());
        assertEquals(2, launch.topology().nodes().size());
    }

    @Test
    void shouldServeTheGpusListedByDevicesOrNoneOrAll() {
        assertEquals(
                DeviceSelection.of(List.of(0, 2, 1)),
                NodeOptions.resolve(new String[] {"--devices", "0,2,1"}).devices());
        assertEquals(
                List.of(0, 2, 1),
                NodeOptions.resolve(new String[] {"--devices", "0,2,1"}).self().gpus());
        assertEquals(
                DeviceSelection.none(),
                NodeOptions.resolve(new String[] {"--devices", "none"}).devices());
        assertEquals(
                DeviceSelection.auto(),
                NodeOptions.resolve(new String[] {"--devices", "all"}).devices());
        assertTrue(usage("--devices", "0,0").contains("listed twice"));
        assertTrue(usage("--devices", "0,x").contains("--devices"));
        assertTrue(usage("--devices", "0", "--device", "1").contains("give one of them"));
    }

    @Test
    void shouldServeTheTopologysGpusUnlessDevicesOverridesThem() throws Exception {
        Path file = topology(TestPorts.topologyYaml("c", 1)
                .replace("    host: 127.0.0.1\n", "    host: 127.0.0.1\n    gpus: [1, 0]\n"));
        assertEquals(
                DeviceSelection.of(List.of(1, 0)),
                NodeOptions.resolve(new String[] {"--topology", file.toString(), "--node", "n1"})
                        .devices());
        assertEquals(
                DeviceSelection.none(),
                NodeOptions.resolve(new String[] {"--topology", file.toString(), "--node", "n1", "--devices", "none"})
                        .devices());
    }

    @Test
    void shouldRefuseAnAddrPortThatDiffersFromTheTopology() throws Exception {
        Path file = topology(TestPorts.topologyYaml("c", 1));
        var e = assertThrows(
                NodeStartException.class,
                () -> NodeOptions.resolve(
                        new String[] {"--topology", file.toString(), "--node", "n1", "--addr", "127.0.0.1:1"}));
        assertTrue(e.getMessage().contains("does not match its topology grpcPort"), e.getMessage());
    }

    @Test
    void shouldRefuseAnUnknownNodeIdNamingTheKnownOnes() throws Exception {
        Path file = topology(TestPorts.topologyYaml("c", 2));
        var e = assertThrows(
                NodeStartException.class,
                () -> NodeOptions.resolve(new String[] {"--topology", file.toString(), "--node", "n9"}));
        assertTrue(e.getMessage().contains("n9") && e.getMessage().contains("[n1, n2]"), e.getMessage());
    }

    @Test
    void shouldReportEveryTopologyProblemAtStart() throws Exception {
        Path file = topology("cluster: c\nnodes:\n  - id: n1\n    host: 127.0.0.1\n    clusterPort: 70000\n");
        var e = assertThrows(
                NodeStartException.class,
                () -> NodeOptions.resolve(new String[] {"--topology", file.toString(), "--node", "n1"}));
        assertTrue(e.getMessage().contains("nodes[0].clusterPort"), e.getMessage());
        assertTrue(e.getMessage().contains("nodes[0].grpcPort"), e.getMessage());
    }

    @Test
    void shouldRejectBadFlagsWithTheirNames() {
        assertTrue(usage("--pool-size", "lots").contains("--pool-size"));
        assertTrue(usage("--log-level", "chatty").contains("--log-level"));
        assertTrue(usage("--device", "-1").contains("--device"));
        assertTrue(usage("--addr", "nohost").contains("--addr"));
        assertTrue(usage("--colour", "red").startsWith("Unknown options: '--colour'"));
        assertTrue(usage("--node", "n1").contains("--node needs --topology"));
    }

    private static String usage(String... argv) {
        return assertThrows(ParameterException.class, () -> NodeOptions.resolve(argv))
                .getMessage();
    }

    @Test
    void shouldRefuseToStartANodeWhoseHostIsNotThisMachine() throws Exception {
        // TEST-NET-3: never assigned to a local interface.
        Path file = topology(TestPorts.topologyYaml("c", 1).replace("127.0.0.1", "203.0.113.7"));
        NodeLaunch launch = NodeOptions.resolve(new String[] {"--topology", file.toString(), "--node", "n1"});
        var e = assertThrows(
                NodeStartException.class, () -> LocalHostCheck.check(launch.self(), launch.grpcBindHost()));
        assertTrue(
                e.getMessage().contains("203.0.113.7") && e.getMessage().contains("not an address of this machine"),
                e.getMessage());
    }

    @Test
    void shouldRefuseToStartWhenATopologyPortIsTaken() throws Exception {
        Path file = topology(TestPorts.topologyYaml("c", 1));
        NodeLaunch launch = NodeOptions.resolve(new String[] {"--topology", file.toString(), "--node", "n1"});
        try (ServerSocket taken = new ServerSocket(launch.self().grpcPort(), 1, InetAddress.getByName("127.0.0.1"))) {
            var e = assertThrows(NodeStartException.class, () -> FabricNode.start(launch));
            assertTrue(e.getMessage().contains("grpcPort " + launch.self().grpcPort()), e.getMessage());
        }
    }
}
