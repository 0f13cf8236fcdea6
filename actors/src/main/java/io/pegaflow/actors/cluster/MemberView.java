package io.pegaflow.actors.cluster;

import java.util.Set;

/**
 * One cluster member as seen by this node.
 *
 * @param address {@code pekko://system@host:port}
 * @param nodeId topology id, or "" when the address is not in the topology
 * @param status Pekko's member status name (Joining, Up, Leaving, ...)
 * @param roles the member's roles
 */
public record MemberView(String address, String nodeId, String status, Set<String> roles) {
    public MemberView {
        roles = Set.copyOf(roles);
    }
}
