package io.pegaflow.actors.cluster;

import io.pegaflow.actors.CborSerializable;
import io.pegaflow.config.Topology;
import java.util.Comparator;
import java.util.List;
import java.util.Set;
import java.util.stream.Collectors;
import java.util.stream.StreamSupport;
import org.apache.pekko.actor.Address;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.cluster.ClusterEvent;
import org.apache.pekko.cluster.Member;
import org.apache.pekko.cluster.typed.Cluster;

/**
 * A snapshot of cluster membership as this node sees it. Reads Pekko's cluster state without asking an actor, so it
 * is cheap and safe from any thread (gRPC handlers, metric samplers). Crosses nodes as a reply to the node
 * guardian's {@code GetClusterView}.
 */
public record ClusterView(
        String selfAddress, String selfStatus, List<MemberView> members, List<String> unreachable, String leader)
        implements CborSerializable {

    public ClusterView {
        members = List.copyOf(members);
        unreachable = List.copyOf(unreachable);
    }

    public static ClusterView of(ActorSystem<?> system, Topology topology) {
        Cluster cluster = Cluster.get(system);
        ClusterEvent.CurrentClusterState state = cluster.state();
        List<MemberView> members = StreamSupport.stream(state.getMembers().spliterator(), false)
                .map(m -> view(m, topology))
                .sorted(Comparator.comparing(MemberView::address))
                .toList();
        List<String> unreachable = state.getUnreachable().stream()
                .map(m -> m.address().toString())
                .sorted()
                .toList();
        String leader = state.getLeader() == null ? "" : state.getLeader().toString();
        return new ClusterView(
                cluster.selfMember().address().toString(),
                cluster.selfMember().status().toString(),
                members,
                unreachable,
                leader);
    }

    /** Number of members per status name, e.g. {@code {Up=3}}. */
    public java.util.Map<String, Long> countByStatus() {
        return members.stream().collect(Collectors.groupingBy(MemberView::status, Collectors.counting()));
    }

    private static MemberView view(Member member, Topology topology) {
        Set<String> roles = member.getRoles();
        return new MemberView(
                member.address().toString(),
                nodeId(member.address(), roles, topology),
                member.status().toString(),
                roles);
    }

    /** The id from the member's role, else from its address in the topology, else "". */
    static String nodeId(Address address, Set<String> roles, Topology topology) {
        for (String role : roles) {
            if (role.startsWith(ClusterSettings.NODE_ID_ROLE_PREFIX)) {
                return role.substring(ClusterSettings.NODE_ID_ROLE_PREFIX.length());
            }
        }
        if (address.getHost().isPresent() && address.getPort().isPresent()) {
            return topology.nodeAt(address.getHost().get(), address.getPort().get())
                    .map(n -> n.id())
                    .orElse("");
        }
        return "";
    }
}
