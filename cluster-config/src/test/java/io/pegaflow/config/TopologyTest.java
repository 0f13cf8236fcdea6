package io.pegaflow.config;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import org.junit.jupiter.api.Test;

class TopologyTest {

    private static NodeSpec node(String id, String host, int clusterPort) {
        return new NodeSpec(
                id, host, clusterPort, clusterPort + 1, clusterPort + 2, List.of(), List.of(), 1 << 20, Transport.TCP);
    }

    private static final Topology THREE = new Topology(
            "demo",
            256,
            List.of(node("n1", "10.0.0.1", 25520), node("n2", "10.0.0.2", 25520), node("n3", "10.0.0.1", 25530)));

    @Test
    void shouldDescribeOneLocalTcpNodeByDefault() {
        Topology local = Topology.localDefault("127.0.0.1", 50055, 1L << 30);

        assertEquals("pegaflow", local.clusterName());
        assertEquals(256, local.directoryRanges());
        assertEquals(
                List.of(new NodeSpec(
                        "n1", "127.0.0.1", 25520, 50055, 9091, List.of(), List.of(), 1L << 30, Transport.TCP)),
                local.nodes());
    }

    @Test
    void shouldFindNodesById() {
        assertEquals("10.0.0.2", THREE.node("n2").orElseThrow().host());
        assertEquals(Optional.empty(), THREE.node("n9"));
        assertEquals("n3", THREE.requireNode("n3").id());
    }

    @Test
    void shouldNameTheIdAndListKnownIdsWhenARequiredNodeIsUnknown() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> THREE.requireNode("n9"));
        assertEquals("unknown node \"n9\" in cluster demo (known: n1, n2, n3)", e.getMessage());
    }

    @Test
    void shouldFindNodesByArteryAddress() {
        assertEquals("n1", THREE.nodeAt("10.0.0.1", 25520).orElseThrow().id());
        assertEquals("n2", THREE.nodeAt("10.0.0.2", 25520).orElseThrow().id());
        assertEquals("n3", THREE.nodeAt("10.0.0.1", 25530).orElseThrow().id());
        assertEquals(Optional.empty(), THREE.nodeAt("10.0.0.1", 25521), "a gRPC port is not an Artery address");
        assertEquals(Optional.empty(), THREE.nodeAt("10.0.0.3", 25520));
    }

    @Test
    void shouldKeepImmutableCopiesOfLists() {
        List<Integer> gpus = new ArrayList<>(List.of(0, 1));
        List<RdmaNic> nics = new ArrayList<>(List.of(new RdmaNic("mlx5_0", 1, 3)));
        NodeSpec spec = new NodeSpec("n1", "h", 1, 2, 3, gpus, nics, 1, Transport.RDMA);
        List<NodeSpec> nodes = new ArrayList<>(List.of(spec));
        Topology topology = new Topology("c", 1, nodes);

        gpus.add(2);
        nics.clear();
        nodes.clear();

        assertEquals(List.of(0, 1), spec.gpus());
        assertEquals(1, spec.rdmaNics().size());
        assertEquals(1, topology.nodes().size());
        assertThrows(UnsupportedOperationException.class, () -> topology.nodes().add(spec));
        assertThrows(UnsupportedOperationException.class, () -> spec.gpus().add(7));
        assertTrue(topology.ids().contains("n1"));
    }
}
