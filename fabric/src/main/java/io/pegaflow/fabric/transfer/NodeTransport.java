package io.pegaflow.fabric.transfer;

import io.pegaflow.config.NodeSpec;
import io.pegaflow.config.Topology;
import io.pegaflow.transport.LocalRegion;
import io.pegaflow.transport.PeerAddress;
import io.pegaflow.transport.Transport;
import io.pegaflow.transport.TransportSettings;
import io.pegaflow.transport.tcp.TcpTransport;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;

/**
 * The node's transport from the topology: {@code tcp} listens on the node's {@code transportPort} (any port on a
 * single-node cluster, which no peer dials) and dials every other node's; {@code rdma} is refused until [10 of 12]
 * builds it. The pool's memory is registered once as the region peers read from and fetches write into.
 */
public final class NodeTransport implements AutoCloseable {
    private final Transport transport;
    private final LocalRegion poolRegion;

    private NodeTransport(Transport transport, LocalRegion poolRegion) {
        this.transport = transport;
        this.poolRegion = poolRegion;
    }

    /**
     * Starts the transport of {@code self} and registers {@code pool}.
     *
     * @throws IllegalStateException when the topology asks for a transport not built yet (rdma)
     */
    public static NodeTransport start(Topology topology, NodeSpec self, MemorySegment pool) {
        switch (self.transport()) {
            case TCP -> {}
            case RDMA ->
                throw new IllegalStateException("node " + self.id()
                        + ": transport rdma is not built yet ([10 of 12] not built); use transport: tcp");
        }
        List<PeerAddress> peers = new ArrayList<>();
        for (NodeSpec n : topology.nodes()) {
            if (!n.id().equals(self.id())) {
                peers.add(new PeerAddress(n.id(), n.host(), n.transportPort()));
            }
        }
        int port = peers.isEmpty() ? 0 : self.transportPort();
        Transport transport = new TcpTransport(TransportSettings.of(self.id(), self.host(), port, peers));
        try {
            LocalRegion region = transport.registerRegion(pool);
            transport.start();
            return new NodeTransport(transport, region);
        } catch (RuntimeException e) {
            transport.close();
            throw e;
        }
    }

    public Transport transport() {
        return transport;
    }

    public LocalRegion poolRegion() {
        return poolRegion;
    }

    /** After this no transport thread touches the pool: call before the pool is freed. */
    @Override
    public void close() {
        transport.close();
    }
}
