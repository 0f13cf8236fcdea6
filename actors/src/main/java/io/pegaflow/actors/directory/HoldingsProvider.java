package io.pegaflow.actors.directory;

import java.util.ArrayDeque;
import java.util.Arrays;
import java.util.HashMap;
import java.util.Iterator;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Executor;
import org.apache.pekko.actor.NoSerializationVerificationNeeded;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.javadsl.AbstractBehavior;
import org.apache.pekko.actor.typed.javadsl.ActorContext;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.actor.typed.javadsl.Receive;
import org.apache.pekko.actor.typed.receptionist.Receptionist;
import org.apache.pekko.actor.typed.receptionist.ServiceKey;

/**
 * One per node, registered with the Receptionist under {@link #SERVICE_KEY}: answers a rebuilding {@link BlockRange}
 * with this node's holdings in its slice, read from {@link LocalHoldings} on a separate executor (at most {@code
 * parallelism} scans at once; further requests wait in a queue, one per asking range), labelled with the last publish
 * sequence sent to that range <em>before</em> the read (see {@link RangeState} for why that label makes the answer
 * safe to combine with publishes). A range that asks again while its scan runs (a slow store) gets that scan's answer
 * under its newest request id rather than a second scan.
 */
public final class HoldingsProvider extends AbstractBehavior<HoldingsProvider.Command> {
    public static final ServiceKey<Command> SERVICE_KEY =
            ServiceKey.create(Command.class, "pegaflow-directory-holdings");

    /** Queued requests beyond this are dropped (the range asks again). */
    static final int MAX_QUEUED = 65_536;

    /** Messages the provider accepts. */
    public interface Command {
        /** Send this node's holdings in {@code range} to {@code replyTo} as {@link BlockRange.Command.Holdings} chunks. */
        record GetHoldings(int range, int rangeCount, long requestId, ActorRef<BlockRange.Command> replyTo)
                implements Command, DirectoryWire {}
    }

    private record Scanned(Command.GetHoldings request, long sequence, long[] fingerprints, Throwable failure)
            implements Command, NoSerializationVerificationNeeded {}

    private final int selfNode;
    private final long incarnation;
    private final LocalHoldings holdings;
    private final PublishSequence sequences;
    private final Executor executor;
    private final int parallelism;
    private final int chunkSize;
    private final ArrayDeque<Command.GetHoldings> queue = new ArrayDeque<>();
    /** Ranges whose scan runs → the request id its answer carries (the newest they sent). */
    private final Map<ActorRef<BlockRange.Command>, Long> scanning = new HashMap<>();

    /**
     * @param selfNode this node's index
     * @param incarnation this node's member uid (as its publisher sends it)
     * @param executor where {@link LocalHoldings} runs (the holdings dispatcher)
     * @param chunkSize fingerprints per {@link BlockRange.Command.Holdings} message
     */
    public static Behavior<Command> create(
            int selfNode,
            long incarnation,
            LocalHoldings holdings,
            PublishSequence sequences,
            Executor executor,
            int parallelism,
            int chunkSize) {
        return Behaviors.setup(context -> {
            context.getSystem().receptionist().tell(Receptionist.register(SERVICE_KEY, context.getSelf()));
            return new HoldingsProvider(
                    context, selfNode, incarnation, holdings, sequences, executor, parallelism, chunkSize);
        });
    }

    private HoldingsProvider(
            ActorContext<Command> context,
            int selfNode,
            long incarnation,
            LocalHoldings holdings,
            PublishSequence sequences,
            Executor executor,
            int parallelism,
            int chunkSize) {
        super(context);
        this.selfNode = selfNode;
        this.incarnation = incarnation;
        this.holdings = holdings;
        this.sequences = sequences;
        this.executor = executor;
        this.parallelism = parallelism;
        this.chunkSize = chunkSize;
    }

    @Override
    public Receive<Command> createReceive() {
        return newReceiveBuilder()
                .onMessage(Command.GetHoldings.class, this::onGetHoldings)
                .onMessage(Scanned.class, this::onScanned)
                .build();
    }

    private Behavior<Command> onGetHoldings(Command.GetHoldings request) {
        if (request.rangeCount() < 1 || request.range() < 0 || request.range() >= request.rangeCount()) {
            getContext()
                    .getLog()
                    .warn("ignoring holdings request for range {} of {}", request.range(), request.rangeCount());
            return this;
        }
        if (scanning.containsKey(request.replyTo())) {
            scanning.put(request.replyTo(), request.requestId());
            return this;
        }
        // A newer request from the same range supersedes a queued older one.
        for (Iterator<Command.GetHoldings> it = queue.iterator(); it.hasNext(); ) {
            if (it.next().replyTo().equals(request.replyTo())) {
                it.remove();
            }
        }
        if (queue.size() >= MAX_QUEUED) {
            getContext().getLog().debug("holdings queue full; range {} will ask again", request.range());
            return this;
        }
        queue.addLast(request);
        startScans();
        return this;
    }

    private void startScans() {
        while (scanning.size() < parallelism && !queue.isEmpty()) {
            Command.GetHoldings request = queue.pollFirst();
            long label = sequences.lastSequence(request.range()); // read before the store: see RangeState rule 3
            scanning.put(request.replyTo(), request.requestId());
            getContext()
                    .pipeToSelf(
                            CompletableFuture.supplyAsync(
                                    () -> holdings.fingerprintsInRange(request.range(), request.rangeCount()),
                                    executor),
                            (fps, failure) -> new Scanned(request, label, fps, failure));
        }
    }

    private Behavior<Command> onScanned(Scanned scanned) {
        Command.GetHoldings request = scanned.request();
        long answerAs = scanning.remove(request.replyTo());
        if (scanned.failure() != null || scanned.fingerprints() == null) {
            getContext()
                    .getLog()
                    .warn(
                            "reading local holdings of range {} failed; it will ask again",
                            request.range(),
                            scanned.failure());
        } else {
            send(
                    request,
                    answerAs,
                    scanned.sequence(),
                    inRange(scanned.fingerprints(), request.range(), request.rangeCount()));
        }
        startScans();
        return this;
    }

    private void send(Command.GetHoldings request, long requestId, long label, long[] fps) {
        int chunks = Math.max(1, (fps.length + chunkSize - 1) / chunkSize);
        for (int c = 0; c < chunks; c++) {
            int from = c * chunkSize;
            int to = Math.min(fps.length, from + chunkSize);
            request.replyTo()
                    .tell(new BlockRange.Command.Holdings(
                            selfNode,
                            incarnation,
                            requestId,
                            label,
                            c,
                            c == chunks - 1,
                            Arrays.copyOfRange(fps, from, to)));
        }
    }

    /** The answer holds only fingerprints of the asked range (an implementation's stray ones are dropped). */
    private static long[] inRange(long[] fps, int range, int rangeCount) {
        int n = 0;
        long[] out = new long[fps.length];
        for (long fp : fps) {
            if (fp != 0 && Fingerprints.rangeOf(fp, rangeCount) == range) {
                out[n++] = fp;
            }
        }
        return n == out.length ? out : Arrays.copyOf(out, n);
    }
}
