package io.pegaflow.fabric.transfer;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.pegaflow.config.NodeSpec;
import io.pegaflow.config.Topology;
import io.pegaflow.config.Transport;
import io.pegaflow.fabric.TestPorts;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

@Timeout(30)
class NodeTransportTest {

    private static NodeSpec node(String id, Transport transport) {
        int port = TestPorts.free(1)[0];
        return new NodeSpec(id, "127.0.0.1", 0, 0, 0, List.of(), List.of(), 1 << 20, transport, port);
    }

    @Test
    void shouldRefuseRdmaAtStartNamingTheIssueThatBuildsIt() {
        NodeSpec self = node("n1", Transport.RDMA);
        Topology topology = new Topology("c", 16, List.of(self));
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment pool = arena.allocate(1 << 16);
            IllegalStateException e =
                    assertThrows(IllegalStateException.class, () -> NodeTransport.start(topology, self, pool));
            assertTrue(e.getMessage().contains("[10 of 12] not built"), e.getMessage());
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
                assertEquals(List.of("n2"), transport.transport().peers());
                assertEquals(pool.byteSize(), transport.poolRegion().describe().lengthBytes());
            }
        }
    }
}
