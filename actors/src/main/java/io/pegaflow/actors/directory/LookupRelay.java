package io.pegaflow.actors.directory;

import io.pegaflow.actors.CborSerializable;
import java.time.Duration;
import java.util.Arrays;
import java.util.concurrent.CompletableFuture;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.actor.typed.receptionist.Receptionist;
import org.apache.pekko.actor.typed.receptionist.ServiceKey;

/**
 * One per node, registered with the Receptionist under {@link #SERVICE_KEY}: takes the lookups of many ranges in one
 * message and asks each range through this node's sharding region. A {@link DirectoryClient} that knows which node
 * hosts which range sends one {@link Command.RelayLookup} per host instead of one ask per range, so a locate of a thousand
 * hashes over 256 ranges costs a couple of remote round trips, the per-range asks staying inside the host.
 *
 * <p>Correct whatever the client believes: a range that has moved is still reached (through sharding), only with an
 * extra hop, and its reply names its real host, which the client learns. Holds no state; replies from the callback
 * of the combined asks (a {@code tell}, safe from any thread).
 */
public final class LookupRelay {
    public static final ServiceKey<Command> SERVICE_KEY =
            ServiceKey.create(Command.class, "pegaflow-directory-lookup-relay");

    /** Messages the relay accepts. */
    public interface Command {
        /**
         * Lookups for several ranges: range {@code ranges[i]} gets the next {@code counts[i]} fingerprints.
         *
         * @param timeoutMs how long the relay waits for each range (the caller waits a little longer)
         */
        record RelayLookup(
                int[] ranges, int[] counts, long[] fingerprints, long timeoutMs, ActorRef<RelayReply> replyTo)
                implements Command, CborSerializable {}
    }

    /**
     * @param holderMasks per fingerprint, in request order; 0 for a range that did not answer
     * @param complete per range: answered, and complete
     * @param hostNodes per range: the node it answered from, -1 when it did not answer
     */
    public record RelayReply(long[] holderMasks, boolean[] complete, int[] hostNodes) implements CborSerializable {}

    private LookupRelay() {}

    static Behavior<Command> create(RangeRefs ranges) {
        return Behaviors.setup(context -> {
            context.getSystem().receptionist().tell(Receptionist.register(SERVICE_KEY, context.getSelf()));
            return Behaviors.receive(Command.class)
                    .onMessage(Command.RelayLookup.class, lookup -> onRelayLookup(lookup, ranges))
                    .build();
        });
    }

    private static Behavior<Command> onRelayLookup(Command.RelayLookup lookup, RangeRefs ranges) {
        int n = lookup.ranges().length;
        if (lookup.counts().length != n
                || Arrays.stream(lookup.counts()).asLongStream().sum() != lookup.fingerprints().length) {
            lookup.replyTo().tell(new RelayReply(new long[lookup.fingerprints().length], new boolean[n], filled(n)));
            return Behaviors.same();
        }
        Duration timeout = Duration.ofMillis(Math.max(1, lookup.timeoutMs()));
        @SuppressWarnings("unchecked")
        CompletableFuture<BlockRange.LookupReply>[] replies = new CompletableFuture[n];
        int[] offset = new int[n + 1];
        for (int i = 0; i < n; i++) {
            offset[i + 1] = offset[i] + lookup.counts()[i];
            int range = lookup.ranges()[i];
            if (range < 0 || range >= ranges.rangeCount()) {
                replies[i] = CompletableFuture.completedFuture(null);
                continue;
            }
            long[] batch = Arrays.copyOfRange(lookup.fingerprints(), offset[i], offset[i + 1]);
            replies[i] = ranges.get(range)
                    .<BlockRange.LookupReply>ask(replyTo -> new BlockRange.Command.Lookup(batch, replyTo), timeout)
                    .toCompletableFuture()
                    .exceptionally(failure -> null);
        }
        CompletableFuture.allOf(replies).thenRun(() -> lookup.replyTo().tell(combine(replies, offset)));
        return Behaviors.same();
    }

    private static RelayReply combine(CompletableFuture<BlockRange.LookupReply>[] replies, int[] offset) {
        int n = replies.length;
        long[] masks = new long[offset[n]];
        boolean[] complete = new boolean[n];
        int[] hosts = filled(n);
        for (int i = 0; i < n; i++) {
            BlockRange.LookupReply reply = replies[i].join();
            if (reply == null || reply.holderMasks().length != offset[i + 1] - offset[i]) {
                continue;
            }
            System.arraycopy(reply.holderMasks(), 0, masks, offset[i], reply.holderMasks().length);
            complete[i] = reply.complete();
            hosts[i] = reply.hostNode();
        }
        return new RelayReply(masks, complete, hosts);
    }

    private static int[] filled(int n) {
        int[] a = new int[n];
        Arrays.fill(a, -1);
        return a;
    }
}
