package io.pegaflow.fabric.transfer;

import io.pegaflow.config.NodeSpec;
import io.pegaflow.config.Topology;
import io.pegaflow.config.TransportFallback;
import io.pegaflow.transport.LocalRegion;
import io.pegaflow.transport.PeerAddress;
import io.pegaflow.transport.Transport;
import io.pegaflow.transport.TransportSettings;
import io.pegaflow.transport.tcp.TcpTransport;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The node's transport from the topology: {@code tcp}, or {@code rdma} over the node's {@code rdma} NICs. It listens on
 * the node's {@code transportPort} (any port on a single-node cluster, which no peer dials) and dials every other
 * node's. The pool's memory is registered once as the region peers read from and fetches write into.
 *
 * <p>{@code rdma} on a machine without a usable device refuses to start, naming why, unless the node says {@code
 * transportFallback: tcp}: then it logs the reason and runs TCP, and {@link #fallbackReason()} says so (metrics show
 * it).
 */
public final class NodeTransport implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(NodeTransport.class);

    private final Transport transport;
    private final LocalRegion poolRegion;
    private final io.pegaflow.config.Transport requested;
    private final String fallbackReason;

    private NodeTransport(
            Transport transport,
            LocalRegion poolRegion,
            io.pegaflow.config.Transport requested,
            String fallbackReason) {
        this.transport = transport;
        this.poolRegion = poolRegion;
        this.requested = requested;
        this.fallbackReason = fallbackReason;
    }

    /**
     * Starts the transport of {@code self} with the RDMA transport of {@code transport-rdma} and registers {@code
     * pool}.
     *
     * @throws IllegalStateException when the topology asks for rdma, this machine cannot run it and the node allows no
     *     fallback (the message names the reason and the fix), or the transport cannot start
     */
    public static NodeTransport start(Topology topology, NodeSpec self, MemorySegment pool) {
        return start(topology, self, pool, TopologyRdma::open);
    }

    /** As {@link #start(Topology, NodeSpec, MemorySegment)}, with the RDMA transport built by {@code rdma}. */
    public static NodeTransport start(Topology topology, NodeSpec self, MemorySegment pool, RdmaOpener rdma) {
        List<PeerAddress> peers = new ArrayList<>();
        for (NodeSpec n : topology.nodes()) {
            if (!n.id().equals(self.id())) {
                peers.add(new PeerAddress(n.id(), n.host(), n.transportPort()));
            }
        }
        int port = peers.isEmpty() ? 0 : self.transportPort();
        TransportSettings settings = TransportSettings.of(self.id(), self.host(), port, peers);
        String fallbackReason = null;
        Transport transport;
        if (self.transport() == io.pegaflow.config.Transport.RDMA) {
            try {
                transport = rdma.open(settings, self);
            } catch (RdmaUnavailableException e) {
                if (self.transportFallback() != TransportFallback.TCP) {
                    throw new IllegalStateException("transport rdma cannot run here: "
                            + e.getMessage() + " (run ./pegaflow rdma-check; or set transportFallback: tcp on this"
                            + " node to run TCP instead, or transport: tcp)");
                }
                fallbackReason = e.getMessage();
                log.warn(
                        "node {}: transport rdma cannot run here ({}); falling back to tcp (transportFallback: tcp)",
                        self.id(),
                        fallbackReason);
                transport = new TcpTransport(settings);
            }
        } else {
            transport = new TcpTransport(settings);
        }
        try {
            LocalRegion region = transport.registerRegion(pool);
            transport.start();
            NodeTransport started = new NodeTransport(transport, region, self.transport(), fallbackReason);
            log.info(
                    "node {}: transport={} requested={} listening on {}{}",
                    self.id(),
                    transport.name(),
                    self.transport().yamlName(),
                    transport.localAddress(),
                    fallbackReason == null ? "" : " (fallback: " + fallbackReason + ")");
            return started;
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

    /** What the topology asked for ({@code transport}); {@link #transport()}'s name says what runs. */
    public io.pegaflow.config.Transport requested() {
        return requested;
    }

    /** Why rdma was asked for but tcp runs; empty when the node runs what it asked for. */
    public Optional<String> fallbackReason() {
        return Optional.ofNullable(fallbackReason);
    }

    /** After this no transport thread touches the pool: call before the pool is freed. */
    @Override
    public void close() {
        transport.close();
    }
}
