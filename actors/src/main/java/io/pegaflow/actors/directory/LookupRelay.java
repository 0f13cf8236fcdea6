package io.pegaflow.actors.directory;

import java.time.Duration;
import java.util.Arrays;
import java.util.Map;
import java.util.TreeMap;
import org.apache.pekko.actor.NoSerializationVerificationNeeded;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.javadsl.ActorContext;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.actor.typed.javadsl.TimerScheduler;
import org.apache.pekko.actor.typed.receptionist.Receptionist;
import org.apache.pekko.actor.typed.receptionist.ServiceKey;

/**
 * One per node, registered with the Receptionist under {@link #SERVICE_KEY}: takes the lookups of many ranges in one
 * message and asks each range through this node's sharding region. A {@link DirectoryClient} that knows which node
 * hosts which range sends one {@link Command.RelayLookup} per host instead of one ask per range, so a locate of a thousand
 * hashes over 256 ranges costs a couple of remote round trips, the per-range asks staying inside the host.
 *
 * <p>A range running on this node ({@link LocalRanges}) is answered in the relay's own handler, from the range's
 * table ({@link RangeState#readLookup}: an optimistic read validated against the entity's writes): for a locate of a
 * thousand hashes that is ~85 ranges per host whose messages, mailboxes and wake-ups used to be most of the
 * directory's CPU. A range that is not complete (rebuilding), whose table was being changed during the read, or that
 * does not run here is asked by message as before, so "incomplete" keeps its meaning.
 *
 * <p>Correct whatever the client believes: a range that has moved is still reached (through sharding), only with an
 * extra hop, and its reply names its real host, which the client learns. It tells each range a {@link
 * BlockRange.Command.Lookup} whose request id names the relayed lookup and the segment, the ranges answer through one
 * message adapter, and one timer per relayed lookup bounds the wait: no temporary actor or timeout per range (the
 * ask pattern's cost dominated a relayed lookup). A second timer, only for a lookup with ranges asked by message,
 * asks the silent ones again with a doubling wait (a range's hand-off drops what its old region had buffered). State:
 * the lookups in flight, owned by the relay.
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
         * @param requestId echoed in the reply, so that one long-lived {@code replyTo} serves every lookup of a node
         *     (a temporary ask actor per lookup cost its path's resolution on the relay's node at every call)
         */
        record RelayLookup(
                int[] ranges,
                int[] counts,
                long[] fingerprints,
                long timeoutMs,
                long requestId,
                ActorRef<RelayReply> replyTo)
                implements Command, DirectoryWire {
            /** A lookup with request id 0 (for a replyTo of its own). */
            public RelayLookup(
                    int[] ranges, int[] counts, long[] fingerprints, long timeoutMs, ActorRef<RelayReply> replyTo) {
                this(ranges, counts, fingerprints, timeoutMs, 0, replyTo);
            }
        }
    }

    /**
     * @param requestId the lookup's {@code requestId}
     * @param holderMasks per fingerprint, in request order; 0 for a range that did not answer
     * @param complete per range: answered, and complete
     * @param hostNodes per range: the node it answered from, -1 when it did not answer
     */
    public record RelayReply(long requestId, long[] holderMasks, boolean[] complete, int[] hostNodes)
            implements DirectoryWire {
        /** A reply with request id 0. */
        public RelayReply(long[] holderMasks, boolean[] complete, int[] hostNodes) {
            this(0, holderMasks, complete, hostNodes);
        }
    }

    /** A range's answer, through this relay's one adapter. */
    private record RangeAnswered(BlockRange.LookupReply reply) implements Command, NoSerializationVerificationNeeded {}

    /** A relayed lookup's time is up: reply with the ranges that answered. */
    private record Expired(long base) implements Command, NoSerializationVerificationNeeded {}

    /** Ask again the ranges of a relayed lookup that have not answered yet. */
    private record AskAgain(long base) implements Command, NoSerializationVerificationNeeded {}

    /** The key of a lookup's {@link AskAgain} timer (its {@link Expired} timer's key is its base). */
    private record AskAgainKey(long base) {}

    /**
     * One relayed lookup waiting for its ranges. Segment {@code i} (range {@code ranges[i]}) was asked with request id
     * {@code base + i}, so a range's reply finds its lookup and its place without a temporary actor per ask.
     */
    private static final class Pending {
        final long base;
        final Command.RelayLookup lookup;
        final int[] offset;
        final long[] masks;
        final boolean[] complete;
        final int[] hosts;
        final boolean[] answered;
        int remaining;
        /** The wait before the next ask-again: doubles each time, so a silent range costs a few messages. */
        Duration askAgainIn;

        Pending(long base, Command.RelayLookup lookup, int[] offset) {
            int n = offset.length - 1;
            this.base = base;
            this.lookup = lookup;
            this.offset = offset;
            this.masks = new long[offset[n]];
            this.complete = new boolean[n];
            this.hosts = filled(n);
            this.answered = new boolean[n];
            this.remaining = n;
        }

        void answer(int segment, BlockRange.LookupReply reply) {
            if (answered[segment]) {
                return;
            }
            answered[segment] = true;
            remaining--;
            int size = offset[segment + 1] - offset[segment];
            if (reply.holderMasks().length != size) {
                return;
            }
            System.arraycopy(reply.holderMasks(), 0, masks, offset[segment], size);
            complete[segment] = reply.complete();
            hosts[segment] = reply.hostNode();
        }

        /** Segment {@code segment} was read from a complete range's table on {@code host} (masks already in place). */
        void answeredHere(int segment, int host) {
            answered[segment] = true;
            remaining--;
            complete[segment] = true;
            hosts[segment] = host;
        }

        RelayReply reply() {
            return new RelayReply(lookup.requestId(), masks, complete, hosts);
        }
    }

    private LookupRelay() {}

    /**
     * @param selfNode this node's index (the host named for the ranges read here)
     * @param counters counts the lookups answered from a range's table here, as the range counts those it answers
     * @param askAgainAfter when the ranges asked by message that have not answered are first asked again (then after
     *     twice that, and so on): Pekko drops the messages its region buffered for a range whose hand-off starts, and
     *     the lookup would wait for its whole timeout
     */
    static Behavior<Command> create(
            RangeRefs ranges, LocalRanges local, int selfNode, DirectoryCounters counters, Duration askAgainAfter) {
        return Behaviors.setup(context -> {
            context.getSystem().receptionist().tell(Receptionist.register(SERVICE_KEY, context.getSelf()));
            return Behaviors.withTimers(
                    timers -> new State(context, timers, ranges, local, selfNode, counters, askAgainAfter).behavior());
        });
    }

    /** The relay's lookups in flight, keyed by their first request id. Touched only by the relay's own thread. */
    private static final class State {
        private final ActorContext<Command> context;
        private final TimerScheduler<Command> timers;
        private final RangeRefs ranges;
        private final LocalRanges local;
        private final int selfNode;
        private final DirectoryCounters counters;
        private final Duration askAgainAfter;
        private final ActorRef<BlockRange.LookupReply> answers;
        private final TreeMap<Long, Pending> pending = new TreeMap<>();
        private long nextId = 1;

        State(
                ActorContext<Command> context,
                TimerScheduler<Command> timers,
                RangeRefs ranges,
                LocalRanges local,
                int selfNode,
                DirectoryCounters counters,
                Duration askAgainAfter) {
            this.context = context;
            this.askAgainAfter = askAgainAfter;
            this.local = local;
            this.selfNode = selfNode;
            this.counters = counters;
            this.timers = timers;
            this.ranges = ranges;
            this.answers = context.messageAdapter(BlockRange.LookupReply.class, RangeAnswered::new);
        }

        Behavior<Command> behavior() {
            return Behaviors.receive(Command.class)
                    .onMessage(Command.RelayLookup.class, this::onRelayLookup)
                    .onMessage(RangeAnswered.class, this::onAnswered)
                    .onMessage(Expired.class, this::onExpired)
                    .onMessage(AskAgain.class, this::onAskAgain)
                    .build();
        }

        private Behavior<Command> onRelayLookup(Command.RelayLookup lookup) {
            int n = lookup.ranges().length;
            int[] offset = offsets(lookup.counts(), n, lookup.fingerprints().length);
            if (offset == null) {
                lookup.replyTo()
                        .tell(new RelayReply(
                                lookup.requestId(), new long[lookup.fingerprints().length], new boolean[n], filled(n)));
                return Behaviors.same();
            }
            long base = nextId;
            nextId += Math.max(1, n);
            Pending p = new Pending(base, lookup, offset);
            long[] fps = lookup.fingerprints();
            long now = System.nanoTime();
            for (int i = 0; i < n; i++) {
                int range = lookup.ranges()[i];
                if (range < 0 || range >= ranges.rangeCount()) {
                    p.answered[i] = true;
                    p.remaining--;
                    continue;
                }
                LocalRanges.Entry here = local.get(range);
                if (here != null
                        && here.view().readLookup(fps, null, offset[i], offset[i + 1], p.masks, now)
                                == RangeState.READ_COMPLETE) {
                    // Read from the range's table in this handler: no message, no wake-up of the entity.
                    p.answeredHere(i, selfNode);
                    counters.lookedUp(offset[i + 1] - offset[i]);
                    continue;
                }
                // Rebuilding, being written, or not here: the entity answers (and says whether it is complete).
                long[] batch = Arrays.copyOfRange(fps, offset[i], offset[i + 1]);
                BlockRange.Command.Lookup ask = new BlockRange.Command.Lookup(batch, base + i, answers);
                if (here != null) {
                    here.ref().tell(ask); // running on this node: skip the sharding region's hops
                } else {
                    ranges.get(range).tell(ask);
                }
            }
            if (p.remaining == 0) {
                lookup.replyTo().tell(p.reply());
                return Behaviors.same();
            }
            pending.put(base, p);
            Duration timeout = Duration.ofMillis(Math.max(1, lookup.timeoutMs()));
            timers.startSingleTimer(base, new Expired(base), timeout);
            if (askAgainAfter.compareTo(timeout) < 0) {
                p.askAgainIn = askAgainAfter;
                timers.startSingleTimer(new AskAgainKey(base), new AskAgain(base), askAgainAfter);
            }
            return Behaviors.same();
        }

        /**
         * The unanswered ranges of a lookup, asked again through sharding (a duplicate answer is ignored), then again
         * after twice the wait, until the lookup expires: 100, 200, 400, 800 ms for the default 1.6 s.
         */
        private Behavior<Command> onAskAgain(AskAgain again) {
            Pending p = pending.get(again.base());
            if (p == null) {
                return Behaviors.same();
            }
            for (int i = 0; i < p.answered.length; i++) {
                if (!p.answered[i]) {
                    long[] batch = Arrays.copyOfRange(p.lookup.fingerprints(), p.offset[i], p.offset[i + 1]);
                    ranges.get(p.lookup.ranges()[i]).tell(new BlockRange.Command.Lookup(batch, p.base + i, answers));
                    counters.askedAgain();
                }
            }
            p.askAgainIn = p.askAgainIn.multipliedBy(2);
            timers.startSingleTimer(new AskAgainKey(p.base), new AskAgain(p.base), p.askAgainIn);
            return Behaviors.same();
        }

        private Behavior<Command> onAnswered(RangeAnswered answered) {
            long id = answered.reply().requestId();
            Map.Entry<Long, Pending> entry = pending.floorEntry(id);
            if (entry == null) {
                return Behaviors.same(); // late: that lookup already replied
            }
            Pending p = entry.getValue();
            long segment = id - p.base;
            if (segment >= p.answered.length) {
                return Behaviors.same();
            }
            p.answer((int) segment, answered.reply());
            if (p.remaining == 0) {
                pending.remove(p.base);
                timers.cancel(p.base);
                timers.cancel(new AskAgainKey(p.base));
                p.lookup.replyTo().tell(p.reply());
            }
            return Behaviors.same();
        }

        private Behavior<Command> onExpired(Expired expired) {
            Pending p = pending.remove(expired.base());
            timers.cancel(new AskAgainKey(expired.base()));
            if (p != null) {
                context.getLog()
                        .debug("relayed lookup: {} of {} ranges did not answer in time", p.remaining, p.hosts.length);
                p.lookup.replyTo().tell(p.reply());
            }
            return Behaviors.same();
        }
    }

    /** Where each segment starts, or null when the counts are not {@code n} non-negative counts summing to total. */
    private static int[] offsets(int[] counts, int n, int total) {
        if (counts.length != n) {
            return null;
        }
        int[] offset = new int[n + 1];
        long sum = 0;
        for (int i = 0; i < n; i++) {
            if (counts[i] < 0) {
                return null;
            }
            sum += counts[i];
            offset[i + 1] = (int) Math.min(sum, Integer.MAX_VALUE);
        }
        return sum == total ? offset : null;
    }

    private static int[] filled(int n) {
        int[] a = new int[n];
        Arrays.fill(a, -1);
        return a;
    }
}
