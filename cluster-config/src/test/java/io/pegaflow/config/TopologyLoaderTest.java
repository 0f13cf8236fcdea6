package io.pegaflow.config;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

class TopologyLoaderTest {

    /** Surefire runs in the module directory; the examples sit beside it. */
    private static final Path EXAMPLE = Path.of("../examples/cluster-3node.yaml");

    private static Topology parse(String yaml) throws TopologyException {
        return TopologyLoader.parse(yaml, "test.yaml");
    }

    private static List<String> problemsOf(String yaml) {
        return assertThrows(TopologyException.class, () -> parse(yaml)).problems();
    }

    /** The file has exactly this one problem. */
    private static void assertOnlyProblem(String expected, String yaml) {
        assertEquals(List.of(expected), problemsOf(yaml));
    }

    // ---- files that load ----

    @Test
    void shouldLoadTheThreeNodeExample() throws TopologyException {
        Topology topology = TopologyLoader.load(EXAMPLE);

        assertEquals("pegaflow-demo", topology.clusterName());
        assertEquals(256, topology.directoryRanges());
        assertEquals(List.of("n1", "n2", "n3"), topology.ids());
        for (int i = 0; i < 3; i++) {
            NodeSpec node = topology.nodes().get(i);
            assertEquals(
                    new NodeSpec(
                            "n" + (i + 1),
                            "127.0.0.1",
                            25521 + i,
                            50055 + i,
                            9091 + i,
                            List.of(),
                            List.of(),
                            256L << 20,
                            Transport.TCP),
                    node);
        }
        assertEquals("n2", topology.nodeAt("127.0.0.1", 25522).orElseThrow().id());
    }

    @Test
    void shouldLoadAFullFileWithGpusAndRdmaNics() throws TopologyException {
        Topology topology = parse("""
                cluster: gpu_farm-1
                directoryRanges: 1024
                nodes:
                  - id: a
                    host: gpu-a.example.com
                    clusterPort: 25520
                    grpcPort: 50055
                    metricsPort: 9091
                    poolSize: 1.5tb
                    transport: rdma
                    gpus: [0, 1, 2, 3]
                    rdma:
                      - device: mlx5_0
                        port: 1
                        gidIndex: 3
                      - device: mlx5_1
                        port: 1
                        gidIndex: 0
                  - id: b
                    host: gpu-b.example.com
                    clusterPort: 25520
                    grpcPort: 50055
                    metricsPort: 9091
                    poolSize: 1073741824
                    transport: tcp
                    gpus:
                      - 7
                    rdma: [{device: mlx5_2, port: 2, gidIndex: 255}]
                """);

        assertEquals("gpu_farm-1", topology.clusterName());
        assertEquals(1024, topology.directoryRanges());
        assertEquals(
                new NodeSpec(
                        "a",
                        "gpu-a.example.com",
                        25520,
                        50055,
                        9091,
                        List.of(0, 1, 2, 3),
                        List.of(new RdmaNic("mlx5_0", 1, 3), new RdmaNic("mlx5_1", 1, 0)),
                        1649267441664L,
                        Transport.RDMA),
                topology.requireNode("a"));
        assertEquals(
                new NodeSpec(
                        "b",
                        "gpu-b.example.com",
                        25520,
                        50055,
                        9091,
                        List.of(7),
                        List.of(new RdmaNic("mlx5_2", 2, 255)),
                        1L << 30,
                        Transport.TCP),
                topology.requireNode("b"));
        assertEquals(
                "b", topology.nodeAt("GPU-B.example.com", 25520).orElseThrow().id());
    }

    @Test
    void shouldApplyDefaultsForOptionalKeys() throws TopologyException {
        Topology topology = parse("""
                cluster: c
                nodes:
                  - id: n1
                    host: localhost
                    clusterPort: 25520
                    grpcPort: 50055
                    metricsPort: 9091
                    poolSize: 64mb
                    gpus:
                """);

        assertEquals(256, topology.directoryRanges());
        NodeSpec node = topology.requireNode("n1");
        assertEquals(Transport.TCP, node.transport());
        assertEquals(List.of(), node.gpus());
        assertEquals(List.of(), node.rdmaNics());
        assertEquals(64L << 20, node.poolSizeBytes());
    }

    @Test
    void shouldAcceptQuotedIntegersOtherYamlIntegerFormsAndUnitsInAnyCase() throws TopologyException {
        NodeSpec node = parse("""
                cluster: c
                nodes:
                  - id: n1
                    host: h
                    clusterPort: "25520"
                    grpcPort: 50_055
                    metricsPort: 0x2383
                    poolSize: 2 GB
                    transport: TCP
                """).requireNode("n1");

        assertEquals(25520, node.clusterPort());
        assertEquals(50055, node.grpcPort());
        assertEquals(9091, node.metricsPort());
        assertEquals(2L << 30, node.poolSizeBytes());
        assertEquals(Transport.TCP, node.transport());
    }

    @Test
    void shouldReadYamlOneOneBooleanWordsAsPlainText() throws TopologyException {
        // YAML 1.1 would make the id "n" false and the host "yes" true.
        NodeSpec node = parse("""
                cluster: c
                nodes:
                  - {id: n, host: yes, clusterPort: 1, grpcPort: 2, metricsPort: 3, poolSize: 1kb}
                """).requireNode("n");
        assertEquals("yes", node.host());
    }

    @Test
    void shouldAllowTheSamePortOnDifferentHosts() throws TopologyException {
        Topology topology = parse("""
                cluster: c
                nodes:
                  - {id: n1, host: 10.0.0.1, clusterPort: 25520, grpcPort: 50055, metricsPort: 9091, poolSize: 1gb}
                  - {id: n2, host: 10.0.0.2, clusterPort: 25520, grpcPort: 50055, metricsPort: 9091, poolSize: 1gb}
                """);
        assertEquals(2, topology.nodes().size());
    }

    @Test
    void shouldLoadFromDiskAndNameTheFileInProblems(@TempDir Path dir) throws IOException {
        Path file = dir.resolve("bad.yaml");
        Files.writeString(file, "cluster: c\n");

        TopologyException e = assertThrows(TopologyException.class, () -> TopologyLoader.load(file));

        assertEquals(file + ": 1 problem:\n  - nodes: must be a non-empty list", e.getMessage());
        assertEquals(file.toString(), e.source());
    }

    @Test
    void shouldReportAMissingFile(@TempDir Path dir) {
        Path file = dir.resolve("absent.yaml");
        TopologyException e = assertThrows(TopologyException.class, () -> TopologyLoader.load(file));
        assertEquals(List.of("(file): no such file"), e.problems());
    }

    @Test
    void shouldReportAFileThatIsNotUtf8(@TempDir Path dir) throws IOException {
        Path file = dir.resolve("latin1.yaml");
        Files.write(file, "cluster: caf\u00e9\n".getBytes(StandardCharsets.ISO_8859_1));
        TopologyException e = assertThrows(TopologyException.class, () -> TopologyLoader.load(file));
        assertEquals(List.of("(file): not valid UTF-8"), e.problems());
    }

    // ---- one kind of bad file per test ----

    @Test
    void shouldRejectAPortOutOfRange() {
        assertOnlyProblem("nodes[0].grpcPort: 70000 is not a port (1..65535) (line 6)", """
                cluster: c
                nodes:
                  - id: n1
                    host: h
                    clusterPort: 25520
                    grpcPort: 70000
                    metricsPort: 9091
                    poolSize: 1gb
                """);
    }

    @Test
    void shouldRejectAnUnknownNodeKeyListingTheAllowedOnes() {
        assertOnlyProblem(
                "nodes[0].colour: unknown key (allowed: id, host, clusterPort, grpcPort, metricsPort, "
                        + "transportPort, poolSize, transport, gpus, rdma, transportFallback) (line 9)",
                """
                cluster: c
                nodes:
                  - id: n1
                    host: h
                    clusterPort: 25520
                    grpcPort: 50055
                    metricsPort: 9091
                    poolSize: 1gb
                    colour: blue
                """);
    }

    @Test
    void shouldSuggestTheKeyAMisspeltKeyProbablyMeant() {
        assertEquals(
                List.of(
                        "nodes[0].grpc_port: unknown key, did you mean grpcPort? (allowed: id, host, clusterPort, grpcPort, "
                                + "metricsPort, transportPort, poolSize, transport, gpus, rdma, transportFallback) (line 3)",
                        "nodes[0].grpcPort: missing (line 3)"),
                problemsOf("""
                cluster: c
                nodes:
                  - {id: n1, host: h, clusterPort: 1, grpc_port: 2, metricsPort: 3, poolSize: 1gb}
                """));
    }

    @Test
    void shouldRejectAnUnknownTopLevelKey() {
        assertOnlyProblem("replicas: unknown key (allowed: cluster, directoryRanges, nodes) (line 2)", """
                cluster: c
                replicas: 3
                nodes:
                  - {id: n1, host: h, clusterPort: 1, grpcPort: 2, metricsPort: 3, poolSize: 1gb}
                """);
    }

    @Test
    void shouldRejectABadSize() {
        assertOnlyProblem(
                "nodes[0].poolSize: \"10zb\" is not a size (use bytes or a number with b, kb, mb, gb, tb) (line 8)",
                """
                cluster: c
                nodes:
                  - id: n1
                    host: h
                    clusterPort: 25520
                    grpcPort: 50055
                    metricsPort: 9091
                    poolSize: 10zb
                """);
    }

    @ParameterizedTest(name = "poolSize: {0}")
    @ValueSource(strings = {"0", "-1", "0.5", "1.5b", "99999999999999999999", "true", "\"\"", "\"1 zb\""})
    void shouldRejectSizesThatAreNotPositiveWholeBytes(String size) {
        List<String> problems = problemsOf("""
                cluster: c
                nodes:
                  - {id: n1, host: h, clusterPort: 1, grpcPort: 2, metricsPort: 3, poolSize: %s}
                """.formatted(size));
        assertEquals(1, problems.size(), problems::toString);
        assertTrue(problems.getFirst().startsWith("nodes[0].poolSize: "), problems::toString);
    }

    @Test
    void shouldRejectADuplicateIdNamingTheFirstNode() {
        assertOnlyProblem("nodes[3].id: duplicate id \"n1\" (also nodes[0]) (line 6)", """
                cluster: c
                nodes:
                  - {id: n1, host: h, clusterPort: 1, grpcPort: 2, metricsPort: 3, poolSize: 1gb}
                  - {id: n2, host: h, clusterPort: 4, grpcPort: 5, metricsPort: 6, poolSize: 1gb}
                  - {id: n3, host: h, clusterPort: 7, grpcPort: 8, metricsPort: 9, poolSize: 1gb}
                  - id: n1
                    host: h
                    clusterPort: 10
                    grpcPort: 11
                    metricsPort: 12
                    poolSize: 1gb
                """);
    }

    @Test
    void shouldDefaultTheTransportPortToClusterPortPlusOneHundred() throws TopologyException {
        Topology topology = parse("""
                cluster: c
                nodes:
                  - {id: n1, host: 127.0.0.1, clusterPort: 25521, grpcPort: 50055, metricsPort: 9091, poolSize: 1gb}
                """);

        assertEquals(25621, topology.nodes().getFirst().transportPort());
    }

    @Test
    void shouldReadAnExplicitTransportPort() throws TopologyException {
        Topology topology = parse("""
                cluster: c
                nodes:
                  - {id: n1, host: h, clusterPort: 1, grpcPort: 2, metricsPort: 3, transportPort: 4, poolSize: 1gb}
                """);

        assertEquals(4, topology.nodes().getFirst().transportPort());
    }

    @Test
    void shouldRejectATransportPortUsedByAnotherRole() {
        assertOnlyProblem("nodes[0].transportPort: port 2 on h already used by nodes[0].grpcPort (line 3)", """
                cluster: c
                nodes:
                  - {id: n1, host: h, clusterPort: 1, grpcPort: 2, metricsPort: 3, transportPort: 2, poolSize: 1gb}
                """);
    }

    @Test
    void shouldRejectADefaultTransportPortThatClashesNamingTheRule() {
        assertOnlyProblem("nodes[1].grpcPort: port 25621 on h already used by nodes[0].transportPort (line 4)", """
                cluster: c
                nodes:
                  - {id: n1, host: h, clusterPort: 25521, grpcPort: 2, metricsPort: 3, poolSize: 1gb}
                  - {id: n2, host: h, clusterPort: 4, grpcPort: 25621, metricsPort: 6, poolSize: 1gb}
                """);
    }

    @Test
    void shouldRejectAClusterPortWhoseDefaultTransportPortIsPastTheLastPort() {
        assertOnlyProblem(
                "nodes[0].transportPort: default transport port clusterPort + 100 = 65600 is not a port (1..65535):"
                        + " set transportPort (line 3)",
                """
                cluster: c
                nodes:
                  - {id: n1, host: h, clusterPort: 65500, grpcPort: 2, metricsPort: 3, poolSize: 1gb}
                """);
    }

    @Test
    void shouldRejectDuplicatePortsOnOneHost() {
        assertOnlyProblem(
                "nodes[2].grpcPort: port 50055 on 127.0.0.1 already used by nodes[0].grpcPort (line 18)", """
                cluster: c
                nodes:
                  - id: n1
                    host: 127.0.0.1
                    clusterPort: 25521
                    grpcPort: 50055
                    metricsPort: 9091
                    poolSize: 1gb
                  - id: n2
                    host: 127.0.0.2
                    clusterPort: 25521
                    grpcPort: 50055
                    metricsPort: 9091
                    poolSize: 1gb
                  - id: n3
                    host: 127.0.0.1
                    clusterPort: 25523
                    grpcPort: 50055
                    metricsPort: 9093
                    poolSize: 1gb
                """);
    }

    @Test
    void shouldRejectOnePortUsedForTwoRolesAcrossNodesOfAHost() {
        assertEquals(
                List.of(
                        "nodes[1].clusterPort: port 9091 on LOCALHOST already used by nodes[0].metricsPort (line 4)",
                        "nodes[1].metricsPort: port 50056 on LOCALHOST already used by nodes[1].grpcPort (line 4)"),
                problemsOf("""
                cluster: c
                nodes:
                  - {id: n1, host: localhost, clusterPort: 25520, grpcPort: 50055, metricsPort: 9091, poolSize: 1gb}
                  - {id: n2, host: LOCALHOST, clusterPort: 9091, grpcPort: 50056, metricsPort: 50056, poolSize: 1gb}
                """));
    }

    @Test
    void shouldRejectAMissingHostPointingAtTheNode() {
        assertOnlyProblem("nodes[1].host: missing (line 4)", """
                cluster: c
                nodes:
                  - {id: n1, host: h, clusterPort: 1, grpcPort: 2, metricsPort: 3, poolSize: 1gb}
                  - id: n2
                    clusterPort: 4
                    grpcPort: 5
                    metricsPort: 6
                    poolSize: 1gb
                """);
    }

    @Test
    void shouldRejectAKeyWithNoValueAsMissing() {
        assertOnlyProblem("nodes[0].host: missing (the key has no value) (line 4)", """
                cluster: c
                nodes:
                  - id: n1
                    host:
                    clusterPort: 1
                    grpcPort: 2
                    metricsPort: 3
                    poolSize: 1gb
                """);
    }

    @Test
    void shouldRejectABlankHost() {
        assertOnlyProblem("nodes[0].host: must not be empty (line 3)", """
                cluster: c
                nodes:
                  - {id: n1, host: "  ", clusterPort: 1, grpcPort: 2, metricsPort: 3, poolSize: 1gb}
                """);
    }

    @Test
    void shouldRejectValuesOfTheWrongType() {
        assertEquals(
                List.of(
                        "nodes[0].clusterPort: \"abc\" is not an integer (line 5)",
                        "nodes[0].grpcPort: 1.5 is not an integer (line 6)",
                        "nodes[0].metricsPort: expected an integer, found a list (line 7)",
                        "nodes[0].poolSize: expected a size, found a mapping (line 8)"),
                problemsOf("""
                cluster: c
                nodes:
                  - id: n1
                    host: h
                    clusterPort: abc
                    grpcPort: 1.5
                    metricsPort: [9091]
                    poolSize: {gb: 1}
                """));
    }

    @Test
    void shouldRejectAnEmptyFile() {
        String expected = "(file): empty file (expected a mapping with cluster and nodes)";
        assertOnlyProblem(expected, "");
        assertOnlyProblem(expected, "  \n# nothing but a comment\n");
    }

    @Test
    void shouldRejectAYamlSyntaxErrorGivingItsLine() {
        assertOnlyProblem(
                "(file): YAML syntax error: while parsing a flow mapping, expected ',' or '}', " + "but got : (line 3)",
                """
                cluster: c
                nodes: [
                  {id: n1 host: h}
                """);
    }

    @Test
    void shouldRejectBadIndentationAsASyntaxError() {
        List<String> problems = problemsOf("""
                cluster: c
                nodes:
                  - id: n1
                    host: h
                   clusterPort: 1
                """);
        assertEquals(1, problems.size(), problems::toString);
        assertTrue(problems.getFirst().startsWith("(file): YAML syntax error: "), problems::toString);
        assertTrue(problems.getFirst().endsWith("(line 5)"), problems::toString);
    }

    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"cluster: c", "cluster: c\nnodes:", "cluster: c\nnodes: []"})
    void shouldRejectAMissingOrEmptyNodeList(String yaml) {
        List<String> problems = problemsOf(yaml);
        assertEquals(1, problems.size(), problems::toString);
        assertTrue(problems.getFirst().startsWith("nodes: must be a non-empty list"), problems::toString);
    }

    @Test
    void shouldRejectNodesThatAreNotAList() {
        assertOnlyProblem("nodes: must be a non-empty list, found a mapping (line 2)", """
                cluster: c
                nodes:
                  n1: {host: h}
                """);
    }

    @Test
    void shouldRejectANodeThatIsNotAMapping() {
        assertOnlyProblem(
                "nodes[1]: expected a mapping with keys id, host, clusterPort, grpcPort, metricsPort, "
                        + "transportPort, poolSize, transport, gpus, rdma, transportFallback, found a string (line 4)",
                """
                cluster: c
                nodes:
                  - {id: n1, host: h, clusterPort: 1, grpcPort: 2, metricsPort: 3, poolSize: 1gb}
                  - n2
                """);
    }

    @Test
    void shouldRejectAnUnknownTransport() {
        assertOnlyProblem("nodes[0].transport: \"ib\" is not one of rdma, tcp (line 3)", """
                cluster: c
                nodes:
                  - {id: n1, host: h, clusterPort: 1, grpcPort: 2, metricsPort: 3, poolSize: 1gb, transport: ib}
                """);
    }

    @Test
    void shouldRejectRdmaTransportWithoutNics() {
        assertOnlyProblem("nodes[0].transport: rdma needs at least one NIC listed under rdma (line 9)", """
                cluster: c
                nodes:
                  - id: n1
                    host: h
                    clusterPort: 1
                    grpcPort: 2
                    metricsPort: 3
                    poolSize: 1gb
                    transport: rdma
                    rdma: []
                """);
    }

    @Test
    void shouldReadTransportFallbackTcpOnAnRdmaNodeAndDefaultToNone() throws TopologyException {
        Topology topology = parse("""
                cluster: c
                nodes:
                  - {id: n1, host: h, clusterPort: 1, grpcPort: 2, metricsPort: 3, poolSize: 1gb, transport: rdma,
                     transportFallback: TCP, rdma: [{device: rxe0, port: 1, gidIndex: 1}]}
                  - {id: n2, host: h, clusterPort: 4, grpcPort: 5, metricsPort: 6, poolSize: 1gb, transport: rdma,
                     rdma: [{device: rxe0, port: 1, gidIndex: 1}]}
                """);
        assertEquals(TransportFallback.TCP, topology.nodes().get(0).transportFallback());
        assertEquals(TransportFallback.NONE, topology.nodes().get(1).transportFallback());
    }

    @Test
    void shouldRejectAnUnknownTransportFallback() {
        assertOnlyProblem("nodes[0].transportFallback: \"ib\" is not one of none, tcp (line 4)", """
                cluster: c
                nodes:
                  - {id: n1, host: h, clusterPort: 1, grpcPort: 2, metricsPort: 3, poolSize: 1gb, transport: rdma,
                     transportFallback: ib, rdma: [{device: rxe0, port: 1, gidIndex: 1}]}
                """);
    }

    @Test
    void shouldRejectTransportFallbackTcpOnATcpNode() {
        assertOnlyProblem(
                "nodes[0].transportFallback: tcp applies to transport: rdma only (this node already uses tcp): remove it"
                        + " (line 3)",
                """
                cluster: c
                nodes:
                  - {id: n1, host: h, clusterPort: 1, grpcPort: 2, metricsPort: 3, poolSize: 1gb, transportFallback: tcp}
                """);
    }

    @Test
    void shouldRejectBadNics() {
        assertEquals(
                List.of(
                        "nodes[0].rdma[0].speed: unknown key (allowed: device, port, gidIndex, qpsPerPeer, queueDepth) (line 7)",
                        "nodes[0].rdma[0].port: 0 is not a NIC port (1..255) (line 5)",
                        "nodes[0].rdma[0].gidIndex: 256 is not a GID index (0..255) (line 6)",
                        "nodes[0].rdma[1].device: missing (line 8)",
                        "nodes[0].rdma[3]: duplicate NIC mlx5_1 port 1 (also rdma[2]) (line 10)",
                        "nodes[0].rdma[4]: expected a mapping with keys device, port, gidIndex, found a string (line 11)"),
                problemsOf("""
                cluster: c
                nodes:
                  - {id: n1, host: h, clusterPort: 1, grpcPort: 2, metricsPort: 3, poolSize: 1gb, transport: rdma,
                     rdma: [
                       {device: mlx5_0, port: 0,
                        gidIndex: 256,
                        speed: 100},
                       {port: 1, gidIndex: 0},
                       {device: mlx5_1, port: 1, gidIndex: 0},
                       {device: mlx5_1, port: 1, gidIndex: 1},
                       mlx5_2]}
                """));
    }

    @Test
    void shouldReadEachNicsQueuePairsPerPeerAndQueueDepthWithDefaults() throws TopologyException {
        Topology topology = parse("""
                cluster: c
                nodes:
                  - {id: n1, host: h, clusterPort: 1, grpcPort: 2, metricsPort: 3, poolSize: 1gb, transport: rdma,
                     rdma: [{device: mlx5_0, port: 1, gidIndex: 3, qpsPerPeer: 8, queueDepth: 1024},
                            {device: mlx5_1, port: 1, gidIndex: 3}]}
                """);

        assertEquals(
                List.of(
                        new RdmaNic("mlx5_0", 1, 3, 8, 1024),
                        new RdmaNic("mlx5_1", 1, 3, RdmaNic.DEFAULT_QPS_PER_PEER, RdmaNic.DEFAULT_QUEUE_DEPTH)),
                topology.requireNode("n1").rdmaNics());
    }

    @Test
    void shouldRejectQueuePairCountsAndQueueDepthsOutOfRange() {
        assertEquals(
                List.of(
                        "nodes[0].rdma[0].qpsPerPeer: 0 is not a queue pair count per peer (1..64) (line 4)",
                        "nodes[0].rdma[0].queueDepth: 100000 is not a queue depth (4..16384 send work requests per"
                                + " queue pair) (line 4)",
                        "nodes[0].rdma[1].qpsPerPeer: \"many\" is not an integer (line 5)"),
                problemsOf("""
                cluster: c
                nodes:
                  - {id: n1, host: h, clusterPort: 1, grpcPort: 2, metricsPort: 3, poolSize: 1gb, transport: rdma,
                     rdma: [{device: mlx5_0, port: 1, gidIndex: 3, qpsPerPeer: 0, queueDepth: 100000},
                            {device: mlx5_1, port: 1, gidIndex: 3, qpsPerPeer: many}]}
                """));
    }

    @Test
    void shouldRejectBadGpuLists() {
        assertEquals(
                List.of(
                        "nodes[0].gpus[2]: duplicate device 1 (also gpus[1]) (line 3)",
                        "nodes[0].gpus[3]: -1 is not a GPU device index (0 or more) (line 3)",
                        "nodes[1].gpus: expected a list of GPU device indices, found an integer (line 4)"),
                problemsOf("""
                cluster: c
                nodes:
                  - {id: n1, host: h, clusterPort: 1, grpcPort: 2, metricsPort: 3, poolSize: 1gb, gpus: [0, 1, 1, -1]}
                  - {id: n2, host: h, clusterPort: 4, grpcPort: 5, metricsPort: 6, poolSize: 1gb, gpus: 0}
                """));
    }

    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"my cluster", "-leading", "_leading", "caf\u00e9", "a.b"})
    void shouldRejectClusterNamesPekkoWouldRefuse(String name) {
        assertOnlyProblem(
                "cluster: \"" + name + "\" is not a valid name (letters, digits, - and _, "
                        + "not starting with - or _) (line 1)",
                """
                cluster: "%s"
                nodes:
                  - {id: n1, host: h, clusterPort: 1, grpcPort: 2, metricsPort: 3, poolSize: 1gb}
                """.formatted(name));
    }

    @Test
    void shouldRejectAMissingClusterNameWithoutALine() {
        assertOnlyProblem("cluster: missing", """
                nodes:
                  - {id: n1, host: h, clusterPort: 1, grpcPort: 2, metricsPort: 3, poolSize: 1gb}
                """);
    }

    @ParameterizedTest(name = "directoryRanges: {0}")
    @ValueSource(ints = {0, -1, 65537})
    void shouldRejectDirectoryRangesOutOfRange(int ranges) {
        assertOnlyProblem("directoryRanges: " + ranges + " is out of range (1..65536) (line 2)", """
                cluster: c
                directoryRanges: %d
                nodes:
                  - {id: n1, host: h, clusterPort: 1, grpcPort: 2, metricsPort: 3, poolSize: 1gb}
                """.formatted(ranges));
    }

    @Test
    void shouldRejectAKeyGivenTwice() {
        assertOnlyProblem("nodes[0].grpcPort: duplicate key (first on line 6) (line 9)", """
                cluster: c
                nodes:
                  - id: n1
                    host: h
                    clusterPort: 1
                    grpcPort: 2
                    metricsPort: 3
                    poolSize: 1gb
                    grpcPort: 4
                """);
    }

    @Test
    void shouldRejectYamlAliases() {
        assertEquals(
                List.of(
                        "defaults: unknown key (allowed: cluster, directoryRanges, nodes) (line 2)",
                        "nodes[0]: expected a mapping with keys id, host, clusterPort, grpcPort, metricsPort, transportPort, poolSize, "
                                + "transport, gpus, rdma, transportFallback, found an alias (*base; aliases are not supported) (line 4)"),
                problemsOf("""
                cluster: c
                defaults: &base {id: n1, host: h, clusterPort: 1, grpcPort: 2, metricsPort: 3, poolSize: 1gb}
                nodes:
                  - *base
                """));
    }

    @Test
    void shouldLoadAnAnchorThatNoAliasUses() throws TopologyException {
        Topology topology = parse("""
                cluster: c
                nodes:
                  - &first {id: n1, host: h, clusterPort: 1, grpcPort: 2, metricsPort: 3, poolSize: 1gb}
                """);
        assertEquals(List.of("n1"), topology.ids());
    }

    @Test
    void shouldHonourYamlCoreTags() throws TopologyException {
        NodeSpec node = parse("""
                cluster: !!str c
                nodes: !!seq
                  - !!map {id: !!str 1, host: h, clusterPort: !!int "25520", grpcPort: 2, metricsPort: 3, poolSize: 1gb}
                """).requireNode("1");
        assertEquals(25520, node.clusterPort());
    }

    @Test
    void shouldRejectOtherTagsNamingThem() {
        String notSupported =
                " (tags other than !!str, !!int, !!float, !!bool, !!null, !!map, !!seq are not supported)";
        assertEquals(
                List.of(
                        "nodes[0].poolSize: expected a size, found a value tagged !!binary" + notSupported
                                + " (line 3)",
                        "nodes[1]: expected a mapping with keys id, host, clusterPort, grpcPort, metricsPort, transportPort, poolSize, "
                                + "transport, gpus, rdma, transportFallback, found a value tagged !node" + notSupported
                                + " (line 4)"),
                problemsOf("""
                cluster: c
                nodes:
                  - {id: n1, host: h, clusterPort: 1, grpcPort: 2, metricsPort: 3, poolSize: !!binary MTAyNA==}
                  - !node {id: n2, host: h, clusterPort: 4, grpcPort: 5, metricsPort: 6, poolSize: 1gb}
                """));
    }

    @Test
    void shouldRejectAMappingKeyThatIsNotAPlainValue() {
        assertOnlyProblem("(file): a mapping key must be a plain value, found a list (line 3)", """
                cluster: c
                nodes:
                  - {[id]: n1, host: h, clusterPort: 1, grpcPort: 2, metricsPort: 3, poolSize: 1gb}
                """);
    }

    @Test
    void shouldRejectAKeyGivenTwiceInAFlowMapping() {
        assertOnlyProblem("nodes[0].host: duplicate key (first on line 3) (line 3)", """
                cluster: c
                nodes:
                  - {id: n1, host: h, host: i, clusterPort: 1, grpcPort: 2, metricsPort: 3, poolSize: 1gb}
                """);
    }

    @Test
    void shouldRejectMoreThanOneDocument() {
        assertOnlyProblem(
                "(file): more than one YAML document (a second one has content here); "
                        + "a topology file holds exactly one (line 5)",
                """
                cluster: c
                nodes:
                  - {id: n1, host: h, clusterPort: 1, grpcPort: 2, metricsPort: 3, poolSize: 1gb}
                ---
                cluster: d
                """);
    }

    @Test
    void shouldRejectATopLevelThatIsNotAMapping() {
        assertOnlyProblem(
                "(file): expected a mapping with keys cluster, directoryRanges, nodes, found a list (line 1)",
                "- n1\n- n2\n");
    }

    // ---- many problems at once ----

    @Test
    void shouldListEveryProblemOfAFileAtOnce() {
        String yaml = """
                cluster: pegaflow demo
                colour: red
                nodes:
                  - id: n1
                    host: 127.0.0.1
                    clusterPort: abc
                    grpcPort: 70000
                    metricsPort: 9091
                    poolSize: 10zb
                    transport: ib
                  - id: n1
                    clusterPort: 25521
                    grpcPort: 50055
                    metricsPort: 9091
                    poolSize: 1gb
                  - id: n3
                    host: 127.0.0.1
                    clusterPort: 25523
                    grpcPort: 9091
                    metricsPort: 9093
                    poolSize: 256mb
                """;
        TopologyException e = assertThrows(TopologyException.class, () -> TopologyLoader.parse(yaml, "demo.yaml"));

        List<String> expected = List.of(
                "colour: unknown key (allowed: cluster, directoryRanges, nodes) (line 2)",
                "cluster: \"pegaflow demo\" is not a valid name (letters, digits, - and _, not starting with - or _) "
                        + "(line 1)",
                "nodes[0].clusterPort: \"abc\" is not an integer (line 6)",
                "nodes[0].grpcPort: 70000 is not a port (1..65535) (line 7)",
                "nodes[0].poolSize: \"10zb\" is not a size (use bytes or a number with b, kb, mb, gb, tb) (line 9)",
                "nodes[0].transport: \"ib\" is not one of rdma, tcp (line 10)",
                "nodes[1].id: duplicate id \"n1\" (also nodes[0]) (line 11)",
                "nodes[1].host: missing (line 11)",
                "nodes[2].grpcPort: port 9091 on 127.0.0.1 already used by nodes[0].metricsPort (line 19)");
        assertEquals(expected, e.problems());
        assertEquals("demo.yaml: 9 problems:\n  - " + String.join("\n  - ", expected), e.getMessage());
    }
}
