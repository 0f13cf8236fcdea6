package io.pegaflow.fabric.transfer;

import io.pegaflow.config.NodeSpec;
import io.pegaflow.rdma.RdmaNic;
import io.pegaflow.rdma.RdmaSettings;
import io.pegaflow.rdma.RdmaTransports;
import io.pegaflow.transport.Transport;
import io.pegaflow.transport.TransportException;
import io.pegaflow.transport.TransportSettings;
import java.util.List;

/**
 * From a node's topology entry to {@code transport-rdma}: its {@code rdma} NICs (device, port, GID index, queue pairs
 * per peer, queue depth) become {@link RdmaSettings} with the transport's other defaults, and "RDMA unavailable" becomes {@link RdmaUnavailableException}.
 */
public final class TopologyRdma {
    /** How {@link RdmaTransports#create}'s messages start when the machine cannot run what the settings name. */
    static final String UNAVAILABLE_PREFIX = "RDMA unavailable: ";

    private TopologyRdma() {}

    /** The RDMA settings for {@code self}'s NICs, in topology order. */
    public static RdmaSettings settings(NodeSpec self) {
        return RdmaSettings.of("", 1, 0).withNics(nics(self));
    }

    /** {@code self}'s NICs as {@code transport-rdma} names them, possibly none. */
    public static List<RdmaNic> nics(NodeSpec self) {
        return self.rdmaNics().stream()
                .map(n -> new RdmaNic(n.device(), n.port(), n.gidIndex(), n.qpsPerPeer(), n.queueDepth()))
                .toList();
    }

    /** @see RdmaOpener#open */
    public static Transport open(TransportSettings settings, NodeSpec self) throws RdmaUnavailableException {
        try {
            return RdmaTransports.create(settings, settings(self));
        } catch (TransportException e) {
            String message = e.getMessage() == null ? "" : e.getMessage();
            if (message.startsWith(UNAVAILABLE_PREFIX)) {
                throw new RdmaUnavailableException(message.substring(UNAVAILABLE_PREFIX.length()), e);
            }
            throw e;
        }
    }
}
