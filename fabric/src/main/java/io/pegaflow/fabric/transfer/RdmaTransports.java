package io.pegaflow.fabric.transfer;

import io.pegaflow.config.NodeSpec;
import io.pegaflow.transport.Transport;
import io.pegaflow.transport.TransportSettings;

/** The adapter from the topology's NICs to {@code transport-rdma}'s factory. */
final class RdmaTransports {
    private RdmaTransports() {}

    /** @see RdmaOpener#open */
    static Transport open(TransportSettings settings, NodeSpec self) throws RdmaUnavailableException {
        // Replaced by the call into transport-rdma's factory once that lands (issue 13's binding).
        throw new RdmaUnavailableException("transport-rdma has no RdmaTransport factory in this build");
    }
}
