package io.pegaflow.actors.directory;

import io.pegaflow.store.HashList;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Objects;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.atomic.AtomicIntegerArray;
import org.apache.pekko.actor.typed.ActorRef;

/**
 * The node-side way to ask the directory where blocks live, for the fabric's gRPC handlers and the transfer
 * coordinator. Groups the hashes by range, asks all ranges concerned at once, and assembles holders per hash, the
 * prefix available in the cluster, and whether the answer is complete.
 *
 * <p>How it asks: a range running on this node is read from its table in the caller's thread ({@link
 * RangeState#readLookup}, as the relays do on their hosts), unless it is not complete or was being written. A range
 * whose host it believes it knows (its home node, {@link HomeRangeAllocation}, until a reply names another) is asked
 * through that host's {@link LookupRelay}, all of that host's ranges in one message, the reply coming back to this
 * node's one {@link RelayReplies} actor under a request id; any other range directly, through its sharding {@link
 * org.apache.pekko.cluster.sharding.typed.javadsl.EntityRef} (the ask pattern). A wrong guess costs an extra hop, never
 * a wrong answer; a relay that does not answer makes its ranges unknown again, so the next call asks them directly.
 *
 * <p>Thread-safe and non-blocking: {@link #locate} returns at once; the stage completes on a Pekko thread within
 * about {@code timeout}, and never exceptionally because a range did not answer — that range's hashes come back
 * without holders and {@code complete = false}.
 */
public final class DirectoryClient {
    /** Share of the caller's timeout a relay gives the ranges it asks, so its partial answer still arrives in time. */
    private static final double RELAY_SHARE = 0.8;

    private final DirectoryNodes nodes;
    private final RangeRefs ranges;
    private final int maxPerMessage;
    private final RelayTable relays;
    private final RelayReplies replies;
    private final ActorRef<LookupRelay.RelayReply> repliesRef;
    private final AtomicIntegerArray hostOf;
    private final LocalRanges local;
    private final DirectoryCounters counters;

    /**
     * @param relays each node's relay, or null to ask every range directly
     * @param replies where relay replies are awaited, and {@code repliesRef} its actor (null when {@code relays} is)
     * @param local the ranges running on this node, read in the caller's thread (null: ask them as any other)
     * @param counters counts the lookups answered from {@code local} (null when {@code local} is)
     */
    DirectoryClient(
            DirectoryNodes nodes,
            RangeRefs ranges,
            int maxPerMessage,
            RelayTable relays,
            RelayReplies replies,
            ActorRef<LookupRelay.RelayReply> repliesRef,
            LocalRanges local,
            DirectoryCounters counters) {
        this.local = local;
        this.counters = counters;
        this.nodes = nodes;
        this.ranges = ranges;
        this.maxPerMessage = maxPerMessage;
        this.relays = relays;
        this.replies = replies;
        this.repliesRef = repliesRef;
        this.hostOf = new AtomicIntegerArray(ranges.rangeCount());
        // Where a range runs once the cluster is settled (HomeRangeAllocation); replies correct a wrong guess, and a
        // relay that does not host the range asks it through sharding, so the guess costs at most a hop.
        for (int r = 0; r < ranges.rangeCount(); r++) {
            hostOf.set(r, HomeRangeAllocation.homeOf(r, nodes.size()));
        }
    }

    /**
     * Holders of each block {@code (namespace, hashes[i])}.
     *
     * @throws IllegalArgumentException naming the argument when {@code namespace}, {@code hashes} or an element of it
     *     is null or empty, or {@code timeout} is not positive
     */
    public CompletionStage<LocateResult> locate(String namespace, byte[][] hashes, Duration timeout) {
        if (namespace == null || namespace.isEmpty()) {
            throw new IllegalArgumentException("namespace must be a non-empty string");
        }
        if (hashes == null) {
            throw new IllegalArgumentException("hashes must not be null");
        }
        long seed = Fingerprints.namespaceSeed(namespace);
        long[] fps = new long[hashes.length];
        for (int i = 0; i < hashes.length; i++) {
            if (hashes[i] == null || hashes[i].length == 0) {
                throw new IllegalArgumentException("hashes[" + i + "] must be a non-empty byte string");
            }
            fps[i] = Fingerprints.of(seed, hashes[i]);
        }
        return locate(fps, timeout);
    }

    /**
     * Holders of each block {@code (namespace, hashes[i])}, the hashes read in place (no array per hash): what the
     * gRPC handler passes for a request of 1,000 packed hashes.
     *
     * @throws IllegalArgumentException naming the argument when {@code namespace} is null or empty, a hash is empty,
     *     or {@code timeout} is not positive
     */
    public CompletionStage<LocateResult> locate(String namespace, HashList hashes, Duration timeout) {
        if (namespace == null || namespace.isEmpty()) {
            throw new IllegalArgumentException("namespace must be a non-empty string");
        }
        Objects.requireNonNull(hashes, "hashes");
        long seed = Fingerprints.namespaceSeed(namespace);
        byte[] data = hashes.data();
        long[] fps = new long[hashes.size()];
        for (int i = 0; i < fps.length; i++) {
            int length = hashes.length(i);
            if (length == 0) {
                throw new IllegalArgumentException("hashes[" + i + "] must be a non-empty byte string");
            }
            fps[i] = Fingerprints.of(seed, data, hashes.start(i), length);
        }
        return locate(fps, timeout);
    }

    /**
     * Holders of each fingerprint ({@link Fingerprints#of}).
     *
     * @throws IllegalArgumentException when a fingerprint is 0 or {@code timeout} is not positive
     */
    public CompletionStage<LocateResult> locate(long[] fingerprints, Duration timeout) {
        Objects.requireNonNull(fingerprints, "fingerprints");
        if (timeout == null || timeout.isNegative() || timeout.isZero()) {
            throw new IllegalArgumentException("timeout must be > 0, got " + timeout);
        }
        int n = fingerprints.length;
        if (n == 0) {
            return CompletableFuture.completedFuture(new LocateResult(new long[0], 0, true, nodes.ids()));
        }
        Plan plan = plan(fingerprints);
        if (plan.units.isEmpty()) {
            return CompletableFuture.completedFuture(assemble(plan, List.of()));
        }
        List<CompletableFuture<Answer>> answers = new ArrayList<>(plan.units.size());
        for (Unit unit : plan.units) {
            answers.add(unit.relay == null ? askDirect(plan, unit, timeout) : askRelay(plan, unit, timeout));
        }
        return CompletableFuture.allOf(answers.toArray(CompletableFuture[]::new))
                .thenApply(done -> assemble(plan, answers));
    }

    /** Relayed lookups waiting for their reply (tests: none is left behind). */
    int relayRepliesWaiting() {
        return replies == null ? 0 : replies.waiting();
    }

    /** Which fingerprints go to which range, and which ranges go together to one relay. */
    private static final class Plan {
        final long[] fingerprints;
        final int[] order; // positions of the request, grouped by range
        final List<Unit> units = new ArrayList<>();
        /** The result, by request position: the local ranges' masks are read into it at once, the rest on reply. */
        final long[] masks;

        Plan(long[] fingerprints, int[] order) {
            this.fingerprints = fingerprints;
            this.order = order;
            this.masks = new long[fingerprints.length];
        }
    }

    /** One message: segments {@code [from, to)} of {@code order}, each all of one range's positions (or a chunk). */
    private record Unit(ActorRef<LookupRelay.Command> relay, int[] range, int[] from, int[] to) {
        int size() {
            int s = 0;
            for (int i = 0; i < range.length; i++) {
                s += to[i] - from[i];
            }
            return s;
        }
    }

    /** One unit's reply: masks in segment order; per segment complete and host (-1: no answer). */
    private record Answer(long[] masks, boolean[] complete, int[] hosts) {}

    private Plan plan(long[] fingerprints) {
        int n = fingerprints.length;
        int rangeCount = ranges.rangeCount();
        int[] rangeOf = new int[n];
        int[] count = new int[rangeCount];
        for (int i = 0; i < n; i++) {
            if (fingerprints[i] == 0) {
                throw new IllegalArgumentException("fingerprints[" + i + "] is 0 (reserved)");
            }
            rangeOf[i] = Fingerprints.rangeOf(fingerprints[i], rangeCount);
            count[rangeOf[i]]++;
        }
        int[] start = new int[rangeCount + 1];
        for (int r = 0; r < rangeCount; r++) {
            start[r + 1] = start[r] + count[r];
        }
        int[] order = new int[n];
        int[] fill = Arrays.copyOf(start, rangeCount);
        for (int i = 0; i < n; i++) {
            order[fill[rangeOf[i]]++] = i;
        }
        Plan plan = new Plan(fingerprints, order);
        boolean[] done = readLocal(plan, count, start);
        // Per host: the ranges to relay, flushed into a unit when a message would exceed maxPerMessage.
        int nodeCount = nodes.size();
        List<List<Integer>> byHost = new ArrayList<>(nodeCount);
        int[] hostLoad = new int[nodeCount];
        for (int h = 0; h < nodeCount; h++) {
            byHost.add(new ArrayList<>());
        }
        for (int r = 0; r < rangeCount; r++) {
            if (count[r] == 0 || (done != null && done[r])) {
                continue;
            }
            int host = hostOf.get(r);
            ActorRef<LookupRelay.Command> relay = relays == null ? null : relays.relayOf(host);
            if (relay == null || count[r] > maxPerMessage) {
                for (int from = start[r]; from < start[r + 1]; from += maxPerMessage) {
                    int to = Math.min(start[r + 1], from + maxPerMessage);
                    plan.units.add(new Unit(null, new int[] {r}, new int[] {from}, new int[] {to}));
                }
                continue;
            }
            if (hostLoad[host] + count[r] > maxPerMessage) {
                plan.units.add(relayUnit(relay, byHost.get(host), start));
                byHost.get(host).clear();
                hostLoad[host] = 0;
            }
            byHost.get(host).add(r);
            hostLoad[host] += count[r];
        }
        for (int h = 0; h < nodeCount; h++) {
            if (!byHost.get(h).isEmpty()) {
                plan.units.add(relayUnit(relays.relayOf(h), byHost.get(h), start));
            }
        }
        return plan;
    }

    /**
     * Reads the ranges running on this node from their tables in the caller's thread ({@link RangeState#readLookup}),
     * as the relay does on each host, straight into the result's masks: no message for this node's share. Returns the
     * ranges answered (complete), or null when none was; the others are asked by message.
     */
    private boolean[] readLocal(Plan plan, int[] count, int[] start) {
        if (local == null) {
            return null;
        }
        boolean[] done = null;
        long now = System.nanoTime();
        for (int r = 0; r < count.length; r++) {
            LocalRanges.Entry here = count[r] == 0 ? null : local.get(r);
            if (here != null
                    && here.view().readLookup(plan.fingerprints, plan.order, start[r], start[r + 1], plan.masks, now)
                            == RangeState.READ_COMPLETE) {
                if (done == null) {
                    done = new boolean[count.length];
                }
                done[r] = true;
                counters.lookedUp(count[r]);
            }
        }
        return done;
    }

    private static Unit relayUnit(ActorRef<LookupRelay.Command> relay, List<Integer> rangeList, int[] start) {
        int k = rangeList.size();
        int[] range = new int[k];
        int[] from = new int[k];
        int[] to = new int[k];
        for (int i = 0; i < k; i++) {
            int r = rangeList.get(i);
            range[i] = r;
            from[i] = start[r];
            to[i] = start[r + 1];
        }
        return new Unit(relay, range, from, to);
    }

    private static long[] fingerprintsOf(Plan plan, Unit unit) {
        long[] out = new long[unit.size()];
        int k = 0;
        for (int s = 0; s < unit.range.length; s++) {
            for (int p = unit.from[s]; p < unit.to[s]; p++) {
                out[k++] = plan.fingerprints[plan.order[p]];
            }
        }
        return out;
    }

    private CompletableFuture<Answer> askDirect(Plan plan, Unit unit, Duration timeout) {
        long[] batch = fingerprintsOf(plan, unit);
        return ranges.get(unit.range[0])
                .<BlockRange.LookupReply>ask(replyTo -> new BlockRange.Command.Lookup(batch, replyTo), timeout)
                .toCompletableFuture()
                .thenApply(reply -> reply.holderMasks().length != batch.length
                        ? null
                        : new Answer(
                                reply.holderMasks(), new boolean[] {reply.complete()}, new int[] {reply.hostNode()}))
                .exceptionally(failure -> null);
    }

    private CompletableFuture<Answer> askRelay(Plan plan, Unit unit, Duration timeout) {
        long[] batch = fingerprintsOf(plan, unit);
        int[] counts = new int[unit.range.length];
        for (int s = 0; s < counts.length; s++) {
            counts[s] = unit.to[s] - unit.from[s];
        }
        long relayTimeoutMs = Math.max(1, (long) (timeout.toMillis() * RELAY_SHARE));
        RelayReplies.Waiter waiter = replies.register(timeout);
        unit.relay.tell(new LookupRelay.Command.RelayLookup(
                unit.range, counts, batch, relayTimeoutMs, waiter.requestId(), repliesRef));
        return waiter.reply()
                .thenApply(r -> r == null
                                || r.holderMasks().length != batch.length
                                || r.complete().length != counts.length
                                || r.hostNodes().length != counts.length
                        ? null
                        : new Answer(r.holderMasks(), r.complete(), r.hostNodes()))
                .exceptionally(failure -> null);
    }

    private LocateResult assemble(Plan plan, List<CompletableFuture<Answer>> answers) {
        int n = plan.fingerprints.length;
        long[] masks = plan.masks;
        boolean complete = true;
        for (int u = 0; u < answers.size(); u++) {
            Unit unit = plan.units.get(u);
            Answer answer = answers.get(u).join();
            if (answer == null) {
                complete = false;
                if (unit.relay != null) {
                    for (int r : unit.range) {
                        hostOf.set(r, -1); // ask it directly next time
                    }
                }
                continue;
            }
            int k = 0;
            for (int s = 0; s < unit.range.length; s++) {
                int host = answer.hosts[s];
                hostOf.set(unit.range[s], host);
                complete &= host >= 0 && answer.complete[s];
                for (int p = unit.from[s]; p < unit.to[s]; p++) {
                    masks[plan.order[p]] = answer.masks[k++];
                }
            }
        }
        int prefix = 0;
        while (prefix < n && masks[prefix] != 0) {
            prefix++;
        }
        return new LocateResult(masks, prefix, complete, nodes.ids());
    }
}
