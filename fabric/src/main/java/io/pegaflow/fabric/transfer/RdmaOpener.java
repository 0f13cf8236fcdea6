package io.pegaflow.fabric.transfer;

import io.pegaflow.config.NodeSpec;
import io.pegaflow.transport.Transport;
import io.pegaflow.transport.TransportSettings;

/** Builds (does not start) a node's RDMA transport over the NICs its topology entry lists. */
@FunctionalInterface
public interface RdmaOpener {
    /**
     * @param settings the node's common transport settings (id, bind host, port, peers)
     * @param self the node's topology entry ({@code rdma} NICs with their port and GID index)
     * @throws RdmaUnavailableException when this machine has no usable RDMA device for those NICs
     */
    Transport open(TransportSettings settings, NodeSpec self) throws RdmaUnavailableException;
}
