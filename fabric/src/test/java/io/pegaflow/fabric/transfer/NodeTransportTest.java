package io.pegaflow.fabric.transfer;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.pegaflow.config.NodeSpec;
import io.pegaflow.config.RdmaNic;
import io.pegaflow.config.Topology;
import io.pegaflow.config.Transport;
import io.pegaflow.config.TransportFallback;
import io.pegaflow.fabric.TestPorts;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.List;
import java.util.Optional;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

@Timeout(30)
class NodeTransportTest {

    private static NodeSpec node(String id, Transport transport) {
        return node(id, transport, TransportFallback.NONE);
    }

    private static NodeSpec node(String id, Transport transport, TransportFallback fallback) {
        int port = TestPorts.free(1)[0];
        List<RdmaNic> nics = transport == Transport.RDMA ? List.of(new RdmaNic("rxe0", 1, 1)) : List.of();
        return new NodeSpec(id, "127.0.0.1", 0, 0, 0, List.of(), nics, 1 << 20, transport, port, fallback);
    }

    @Test
    void shouldGiveTheTransportEachNicsQueuePairsPerPeerAndQueueDepthFromTheTopology() {
        NodeSpec self = new NodeSpec(
                "n1",
                "127.0.0.1",
                0,
                0,
                0,
                List.of(),
                List.of(new RdmaNic("mlx5_0", 1, 3, 8, 1024), new RdmaNic("mlx5_1", 1, 3)),
                1 << 20,
                Transport.RDMA,
                TestPorts.free(1)[0],
                TransportFallback.NONE);

        io.pegaflow.rdma.RdmaSettings settings = TopologyRdma.settings(self);

        assertEquals(8, settings.qpsPerPeer(0));
        assertEquals(1024, settings.queueDepth(0));
        assertEquals(RdmaNic.DEFAULT_QPS_PER_PEER, settings.qpsPerPeer(1));
        assertEquals(RdmaNic.DEFAULT_QUEUE_DEPTH, settings.queueDepth(1));
    }

    @Test
    void shouldRefuseRdmaWithoutADeviceNamingTheReasonAndTheFallbackSetting() {
        NodeSpec self = node("n1", Transport.RDMA);
        Topology topology = new Topology("c", 16, List.of(self));
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment pool = arena.allocate(1 << 16);
            IllegalStateException e =
                    assertThrows(IllegalStateException.class, () -> NodeTransport.start(topology, self, pool));
            assertTrue(e.getMessage().contains("transport rdma cannot run here"), e.getMessage());
            assertTrue(e.getMessage().contains("transportFallback: tcp"), e.getMessage());
            assertTrue(e.getMessage().contains("rdma-check"), e.getMessage());
        }
    }

    @Test
    void shouldFallBackToTcpWithTheReasonWhenTheTopologyAllowsIt() {
        NodeSpec self = node("n1", Transport.RDMA, TransportFallback.TCP);
        Topology topology = new Topology("c", 16, List.of(self, node("n2", Transport.TCP)));
        try (Arena arena = Arena.ofShared()) {
            MemorySegment pool = arena.allocate(1 << 16);
            try (NodeTransport transport = NodeTransport.start(topology, self, pool)) {
                assertEquals("tcp", transport.transport().name());
                assertEquals(Transport.RDMA, transport.requested());
                assertTrue(transport.fallbackReason().isPresent());
                assertEquals(List.of("n2"), transport.transport().peers());
            }
        }
    }

    @Test
    void shouldNotFallBackWhenTheRdmaTransportFailsForAnotherReason() {
        NodeSpec self = node("n1", Transport.RDMA, TransportFallback.TCP);
        Topology topology = new Topology("c", 16, List.of(self));
        RdmaOpener broken = (settings, spec) -> {
            throw new IllegalArgumentException("bad queue depth");
        };
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment pool = arena.allocate(1 << 16);
            IllegalArgumentException e = assertThrows(
                    IllegalArgumentException.class, () -> NodeTransport.start(topology, self, pool, broken));
            assertEquals("bad queue depth", e.getMessage());
        }
    }

    @Test
    void shouldStartTcpWithThePoolRegisteredAndEveryOtherNodeAsPeer() {
        NodeSpec self = node("n1", Transport.TCP);
        Topology topology = new Topology("c", 16, List.of(self, node("n2", Transport.TCP)));
        try (Arena arena = Arena.ofShared()) {
            MemorySegment pool = arena.allocate(1 << 16);
            try (NodeTransport transport = NodeTransport.start(topology, self, pool)) {
                assertEquals("tcp", transport.transport().name());
                assertEquals(Transport.TCP, transport.requested());
                assertEquals(Optional.empty(), transport.fallbackReason());
                assertEquals(List.of("n2"), transport.transport().peers());
                assertEquals(pool.byteSize(), transport.poolRegion().describe().lengthBytes());
            }
        }
    }
}
