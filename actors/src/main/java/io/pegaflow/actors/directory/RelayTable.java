package io.pegaflow.actors.directory;

import java.util.concurrent.atomic.AtomicReferenceArray;
import org.apache.pekko.actor.NoSerializationVerificationNeeded;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.actor.typed.receptionist.Receptionist;

/**
 * Each node's {@link LookupRelay} as the Receptionist lists it (reachable ones only), by node index. Written by the
 * {@link #tracker} actor, read by {@link DirectoryClient} from any thread.
 */
final class RelayTable {
    private final AtomicReferenceArray<ActorRef<LookupRelay.Command>> relays;

    RelayTable(int nodeCount) {
        relays = new AtomicReferenceArray<>(nodeCount);
    }

    /** The relay of node {@code node}, null when none is listed. */
    ActorRef<LookupRelay.Command> relayOf(int node) {
        return node < 0 || node >= relays.length() ? null : relays.get(node);
    }

    private record Listed(Receptionist.Listing listing) implements NoSerializationVerificationNeeded {}

    /** The actor that keeps {@code table} up to date. */
    static Behavior<Object> tracker(RelayTable table, DirectoryNodes nodes, int selfNode) {
        return Behaviors.setup(context -> {
            context.getSystem()
                    .receptionist()
                    .tell(Receptionist.subscribe(
                            LookupRelay.SERVICE_KEY, context.messageAdapter(Receptionist.Listing.class, Listed::new)));
            return Behaviors.receive(Object.class)
                    .onMessage(Listed.class, listed -> onListed(context, listed, table, nodes, selfNode))
                    .build();
        });
    }

    private static Behavior<Object> onListed(
            org.apache.pekko.actor.typed.javadsl.ActorContext<Object> context,
            Listed listed,
            RelayTable table,
            DirectoryNodes nodes,
            int selfNode) {
        @SuppressWarnings("unchecked")
        ActorRef<LookupRelay.Command>[] byNode = new ActorRef[table.relays.length()];
        StringBuilder listedNodes = new StringBuilder();
        for (ActorRef<LookupRelay.Command> ref : listed.listing().getServiceInstances(LookupRelay.SERVICE_KEY)) {
            int node = ref.path().address().hasGlobalScope()
                    ? nodes.indexOf(ref.path().address())
                    : selfNode;
            if (node >= 0 && node < byNode.length) {
                byNode[node] = ref;
            }
            listedNodes.append(' ').append(ref.path()).append(" -> ").append(node);
        }
        context.getLog().info("directory lookup relays listed:{}", listedNodes);
        for (int i = 0; i < byNode.length; i++) {
            table.relays.set(i, byNode[i]);
        }
        return Behaviors.same();
    }
}
