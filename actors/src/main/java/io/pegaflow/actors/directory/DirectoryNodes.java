package io.pegaflow.actors.directory;

import io.pegaflow.actors.cluster.ClusterSettings;
import io.pegaflow.config.NodeSpec;
import io.pegaflow.config.Topology;
import java.util.ArrayList;
import java.util.List;
import org.apache.pekko.actor.Address;
import org.apache.pekko.cluster.Member;

/**
 * The directory's node numbering: a node's index is its position in the static topology (file order), and a set of
 * holders is a bitmask over those indices. A {@code long} mask caps the cluster at {@value #MAX_NODES} nodes; a larger
 * topology is refused when the directory starts.
 *
 * <p>Immutable; safe from any thread.
 */
public final class DirectoryNodes {
    /** Holder masks are one {@code long}. */
    public static final int MAX_NODES = Long.SIZE;

    private final Topology topology;
    private final List<String> ids;

    /**
     * @throws IllegalArgumentException when the topology names more than {@value #MAX_NODES} nodes or none, or its
     *     directory range count is not positive
     */
    public DirectoryNodes(Topology topology) {
        int n = topology.nodes().size();
        if (n == 0) {
            throw new IllegalArgumentException("topology " + topology.clusterName() + " names no nodes");
        }
        if (n > MAX_NODES) {
            throw new IllegalArgumentException("the block directory supports at most " + MAX_NODES
                    + " nodes (holders are a 64-bit mask), but topology " + topology.clusterName() + " names " + n);
        }
        if (topology.directoryRanges() < 1) {
            throw new IllegalArgumentException("directoryRanges must be >= 1, got " + topology.directoryRanges()
                    + " in " + topology.clusterName());
        }
        this.topology = topology;
        this.ids = topology.ids();
    }

    public Topology topology() {
        return topology;
    }

    /** Number of nodes in the topology. */
    public int size() {
        return ids.size();
    }

    /** Range count of the directory (from the topology). */
    public int rangeCount() {
        return topology.directoryRanges();
    }

    /** Node ids in index order. */
    public List<String> ids() {
        return ids;
    }

    public String idOf(int index) {
        return ids.get(index);
    }

    /**
     * Index of {@code nodeId}.
     *
     * @throws IllegalArgumentException naming the known ids when the topology has no such node
     */
    public int requireIndex(String nodeId) {
        int i = ids.indexOf(nodeId);
        if (i < 0) {
            topology.requireNode(nodeId); // throws with the list of known ids
        }
        return i;
    }

    /** Index of a cluster member: from its {@code node-id:} role, else its address; -1 when not in the topology. */
    public int indexOf(Member member) {
        for (String role : member.getRoles()) {
            if (role.startsWith(ClusterSettings.NODE_ID_ROLE_PREFIX)) {
                return ids.indexOf(role.substring(ClusterSettings.NODE_ID_ROLE_PREFIX.length()));
            }
        }
        return indexOf(member.address());
    }

    /** Index of the node whose Artery address is {@code address}; -1 when none (or a local address). */
    public int indexOf(Address address) {
        if (address.getHost().isEmpty() || address.getPort().isEmpty()) {
            return -1;
        }
        return topology.nodeAt(address.getHost().get(), address.getPort().get())
                .map(this::indexOf)
                .orElse(-1);
    }

    private int indexOf(NodeSpec node) {
        return ids.indexOf(node.id());
    }

    /** The bit of node {@code index} in a holder mask. */
    public static long bit(int index) {
        return 1L << index;
    }

    /** Node ids named by {@code mask}, in index order. */
    public List<String> holders(long mask) {
        List<String> out = new ArrayList<>(Long.bitCount(mask));
        for (long m = mask; m != 0; m &= m - 1) {
            int i = Long.numberOfTrailingZeros(m);
            if (i < ids.size()) {
                out.add(ids.get(i));
            }
        }
        return out;
    }
}
