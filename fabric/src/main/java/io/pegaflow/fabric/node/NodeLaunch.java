package io.pegaflow.fabric.node;

import io.pegaflow.config.NodeSpec;
import io.pegaflow.config.Topology;

/**
 * Everything a node needs to start, resolved from the topology and the command line.
 *
 * @param topology the whole static topology
 * @param self this node's entry
 * @param grpcBindHost the address the gRPC server binds ({@code self.host()} unless {@code --addr} widened it)
 * @param poolSizeBytes size of the block pool
 * @param devices the GPUs to serve: listed ones (the node refuses to start without CUDA), none, or every visible one
 *     (none without CUDA); one pool pinned for all of them, a CUDA copy engine per GPU
 * @param logLevel root log level
 * @param partialTimeoutMs how long a block may wait for its missing slots before it is dropped
 */
public record NodeLaunch(
        Topology topology,
        NodeSpec self,
        String grpcBindHost,
        long poolSizeBytes,
        DeviceSelection devices,
        String logLevel,
        long partialTimeoutMs) {}
