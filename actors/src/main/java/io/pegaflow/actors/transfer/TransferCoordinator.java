package io.pegaflow.actors.transfer;

import io.pegaflow.actors.CborSerializable;
import io.pegaflow.actors.directory.DirectoryClient;
import io.pegaflow.actors.directory.LocateResult;
import io.pegaflow.config.Topology;
import io.pegaflow.store.BlockDescriptor;
import io.pegaflow.store.BlockStore;
import io.pegaflow.store.IncomingBlock;
import io.pegaflow.store.NamespaceLayout;
import io.pegaflow.store.PoolFullException;
import io.pegaflow.store.QueryResult;
import io.pegaflow.transport.DescriptorList;
import io.pegaflow.transport.LocalRegion;
import io.pegaflow.transport.RemoteRegion;
import io.pegaflow.transport.TransferStatus;
import io.pegaflow.transport.Transport;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Executor;
import java.util.concurrent.RejectedExecutionException;
import org.apache.pekko.actor.NoSerializationVerificationNeeded;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.PostStop;
import org.apache.pekko.actor.typed.javadsl.AbstractBehavior;
import org.apache.pekko.actor.typed.javadsl.ActorContext;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.actor.typed.javadsl.Receive;
import org.apache.pekko.actor.typed.receptionist.Receptionist;
import org.apache.pekko.actor.typed.receptionist.ServiceKey;

/**
 * One per node: serves leases on this node's blocks to peers, and fetches blocks this node lacks from peers.
 *
 * <p>Holder side: a {@link Command.LeaseRequest} takes a store lease on the contiguous prefix of the asked hashes that
 * this store holds and replies with where those blocks lie in this node's registered pool region; the lease keeps them
 * in place until the requester ends it ({@link Command.ConfirmRelease} after a transfer that completed OK, {@link
 * Command.ReleaseLease} otherwise) or its TTL passes (the store's sweep).
 *
 * <p>Requester side, one {@link Command.Fetch}: the directory names holders; one attempt asks the untried holder
 * holding the most of the still-missing hashes for a lease, reserves pool space here ({@link
 * BlockStore#reserveIncoming}, which may evict, so on the bounded {@code storeExecutor}), and moves the bytes with one
 * transport READ whose completion arrives as a {@link Command} told from the transport's thread. After an OK
 * completion the holder confirms that the lease was still live when it ended (so no slot could have been reused under
 * the read); only then are the blocks committed. Anything else aborts them: nothing half-copied is ever sealed. A
 * failed attempt (lease refused or timed out, a transfer refused or failed, the lease gone before the confirmation)
 * moves on to the next holder; so does an attempt that left hashes another holder has. At most {@code maxAttempts}
 * attempts and {@code fetchDeadline} per fetch; then the requester is answered with which hashes are sealed here. At
 * most {@code maxFetchesInFlight} fetches run; more are refused at once.
 *
 * <p>{@link Command.Drain} (node shutdown) cancels every transfer through the transport, aborts every reservation as
 * soon as the transport's completion says the memory is free, and answers once no fetch is left.
 *
 * <p>Finds peers' coordinators through the receptionist under {@link #SERVICE_KEY}; maps each to its node id by its
 * cluster address in the topology.
 */
public final class TransferCoordinator extends AbstractBehavior<TransferCoordinator.Command> {
    /** The actor name under the node guardian. */
    public static final String NAME = "transfer-coordinator";

    /** A transfer starts only while the remote lease has its timeout plus this much left. */
    static final long LEASE_MARGIN_MS = 1_000;

    /** An attempt starts only with at least this much of the fetch's deadline left for its transfer. */
    static final long MIN_TRANSFER_MS = 200;

    /** Every node's coordinator registers under this key. */
    public static final ServiceKey<Command> SERVICE_KEY =
            ServiceKey.create(Command.class, "pegaflow-transfer-coordinator");

    /** The coordinator's protocol. */
    public interface Command {
        /** A peer asks for a lease on blocks of {@code namespace} this node holds (the contiguous held prefix). */
        record LeaseRequest(String namespace, byte[][] hashes, long ttlMs, ActorRef<LeaseReply> replyTo)
                implements Command, CborSerializable {}

        /** A peer is done with a lease (transfer failed or given up). */
        record ReleaseLease(long leaseId, String namespace) implements Command, CborSerializable {}

        /**
         * A peer's transfer completed OK: end the lease and say whether it was still live (not expired), i.e. whether
         * the blocks stayed in place for the whole read.
         */
        record ConfirmRelease(long leaseId, String namespace, ActorRef<ReleaseConfirmed> replyTo)
                implements Command, CborSerializable {}

        /** Fetch blocks of {@code layout}'s namespace into this node's store; local only. */
        record Fetch(NamespaceLayout layout, byte[][] hashes, ActorRef<FetchResult> replyTo) implements LocalCommand {}

        /**
         * Shutdown: refuse new fetches, cancel every transfer through the transport and abort every reservation;
         * {@code replyTo} is answered once no fetch of this coordinator can touch the pool any more.
         */
        record Drain(ActorRef<Drained> replyTo) implements LocalCommand {}
    }

    /**
     * The holder's answer.
     *
     * @param leaseId 0 when nothing was leased ({@code granted} is then 0)
     * @param granted how many of the asked hashes, from the first, are leased
     * @param region the holder's registered pool region (null when nothing was granted)
     * @param offsets per granted block, its offset in {@code region}
     * @param lengths per granted block, its length in bytes
     * @param expiresAtMs the holder's wall-clock expiry of the lease
     */
    public record LeaseReply(
            String holder,
            long leaseId,
            int granted,
            RemoteRegion region,
            long[] offsets,
            long[] lengths,
            long expiresAtMs,
            String error)
            implements CborSerializable {}

    /** The holder's answer to {@link Command.ConfirmRelease}: whether the lease was live until it ended now. */
    public record ReleaseConfirmed(boolean wasLive) implements CborSerializable {}

    /** The answer to {@link Command.Drain}: how many fetches it ended. */
    public record Drained(int fetchesEnded) implements NoSerializationVerificationNeeded {}

    /**
     * What a fetch achieved.
     *
     * @param fetched per asked hash, whether it is now sealed in this node's store (committed by this fetch)
     * @param failureReason null when every asked block was fetched, else why some were not
     */
    public record FetchResult(boolean[] fetched, String failureReason) implements NoSerializationVerificationNeeded {}

    /** Messages that never leave this node. */
    public interface LocalCommand extends Command, NoSerializationVerificationNeeded {}

    private record Listed(Receptionist.Listing listing) implements LocalCommand {}

    private record Located(long fetchId, LocateResult result, Throwable error) implements LocalCommand {}

    private record LeaseGot(long fetchId, int attempt, String namespace, LeaseReply reply, Throwable error)
            implements LocalCommand {}

    private record Reserved(long fetchId, int attempt, IncomingBlock[] blocks, Throwable error)
            implements LocalCommand {}

    private record TransferDone(long fetchId, int attempt, TransferStatus status, long bytes) implements LocalCommand {}

    private record Confirmed(long fetchId, int attempt, ReleaseConfirmed reply, Throwable error)
            implements LocalCommand {}

    /**
     * How the coordinator behaves; timeouts bound every step so a dead holder ends as failed blocks.
     *
     * @param locateTimeout bound on the directory lookup
     * @param leaseTimeout bound on a lease ask and on the holder's confirmation
     * @param leaseTtlMs the lease asked from a holder
     * @param transferTimeoutMs the transport timeout of one attempt's READ (less when the deadline is nearer)
     * @param maxFetchesInFlight fetches beyond this are refused at once
     * @param maxAttempts holders tried per fetch, at most
     * @param fetchDeadline no attempt starts past this, counted from the fetch's arrival
     */
    public record Settings(
            Duration locateTimeout,
            Duration leaseTimeout,
            long leaseTtlMs,
            long transferTimeoutMs,
            int maxFetchesInFlight,
            int maxAttempts,
            Duration fetchDeadline) {
        public Settings {
            if (maxAttempts < 1) {
                throw new IllegalArgumentException("maxAttempts must be >= 1, got " + maxAttempts);
            }
            if (maxFetchesInFlight < 1) {
                throw new IllegalArgumentException("maxFetchesInFlight must be >= 1, got " + maxFetchesInFlight);
            }
        }

        /** 2 s locate, 3 s lease ask, 15 s lease, 5 s transfer, 64 fetches, 3 holders, 11 s per fetch. */
        public static Settings defaults() {
            return new Settings(
                    Duration.ofSeconds(2), Duration.ofSeconds(3), 15_000, 5_000, 64, 3, Duration.ofSeconds(11));
        }
    }

    private enum Phase {
        LOCATING,
        LEASING,
        RESERVING,
        TRANSFERRING,
        CONFIRMING
    }

    /** One fetch on its way through locate, then per attempt lease → reserve → transfer → confirm → commit. */
    private static final class FetchJob {
        final long id;
        final Command.Fetch request;
        final long startNs;
        final boolean[] fetched;
        final Set<String> tried = new HashSet<>();
        LocateResult where;
        int attempts;
        String lastReason;
        Phase phase = Phase.LOCATING;
        boolean draining;
        // The current attempt.
        String holder;
        int[] positions; // indexes into request.hashes of the blocks asked from the holder
        LeaseReply lease;
        long leaseReceivedNs;
        IncomingBlock[] incoming; // per granted block, null where not reserved
        long correlationId;

        FetchJob(long id, Command.Fetch request, long startNs) {
            this.id = id;
            this.request = request;
            this.startNs = startNs;
            this.fetched = new boolean[request.hashes().length];
        }

        int fetchedCount() {
            int n = 0;
            for (boolean f : fetched) {
                if (f) {
                    n++;
                }
            }
            return n;
        }
    }

    private final ActorContext<Command> context;
    private final BlockStore store;
    private final Transport transport;
    private final LocalRegion poolRegion;
    private final DirectoryClient directory;
    private final Topology topology;
    private final Executor storeExecutor;
    private final Settings settings;
    private final TransferCounters counters;
    private final Map<String, ActorRef<Command>> peers = new HashMap<>();
    private final Map<Long, FetchJob> fetches = new HashMap<>();
    private final List<ActorRef<Drained>> drainWaiters = new ArrayList<>();
    private boolean draining;
    private int drainedFetches;
    private long nextFetchId = 1;
    private long nextCorrelationId = 1;

    public static Behavior<Command> create(
            BlockStore store,
            Transport transport,
            LocalRegion poolRegion,
            DirectoryClient directory,
            Topology topology,
            Executor storeExecutor,
            Settings settings,
            TransferCounters counters) {
        return Behaviors.setup(ctx -> new TransferCoordinator(
                ctx, store, transport, poolRegion, directory, topology, storeExecutor, settings, counters));
    }

    private TransferCoordinator(
            ActorContext<Command> context,
            BlockStore store,
            Transport transport,
            LocalRegion poolRegion,
            DirectoryClient directory,
            Topology topology,
            Executor storeExecutor,
            Settings settings,
            TransferCounters counters) {
        super(context);
        this.context = context;
        this.store = store;
        this.transport = transport;
        this.poolRegion = poolRegion;
        this.directory = directory;
        this.topology = topology;
        this.storeExecutor = storeExecutor;
        this.settings = settings;
        this.counters = counters;
        var receptionist = context.getSystem().receptionist();
        receptionist.tell(Receptionist.register(SERVICE_KEY, context.getSelf()));
        ActorRef<Receptionist.Listing> adapter = context.messageAdapter(Receptionist.Listing.class, Listed::new);
        receptionist.tell(Receptionist.subscribe(SERVICE_KEY, adapter));
    }

    @Override
    public Receive<Command> createReceive() {
        return newReceiveBuilder()
                .onMessage(Command.LeaseRequest.class, this::onLeaseRequest)
                .onMessage(Command.ReleaseLease.class, this::onReleaseLease)
                .onMessage(Command.ConfirmRelease.class, this::onConfirmRelease)
                .onMessage(Command.Fetch.class, this::onFetch)
                .onMessage(Command.Drain.class, this::onDrain)
                .onMessage(Listed.class, this::onListed)
                .onMessage(Located.class, this::onLocated)
                .onMessage(LeaseGot.class, this::onLeaseGot)
                .onMessage(Reserved.class, this::onReserved)
                .onMessage(TransferDone.class, this::onTransferDone)
                .onMessage(Confirmed.class, this::onConfirmed)
                .onSignal(PostStop.class, this::onPostStop)
                .build();
    }

    // ---- holder side ----

    private Behavior<Command> onLeaseRequest(Command.LeaseRequest request) {
        String self = transport.localNodeId();
        QueryResult result;
        try {
            result = store.query(request.namespace(), request.hashes(), Math.max(1, request.ttlMs()));
        } catch (RuntimeException e) {
            request.replyTo().tell(new LeaseReply(self, 0, 0, null, null, null, 0, e.toString()));
            return this;
        }
        if (result.leaseId() == 0) {
            counters.leasesRefused.increment();
            request.replyTo().tell(new LeaseReply(self, 0, 0, null, null, null, 0, "no block held"));
            return this;
        }
        Optional<List<BlockDescriptor>> blocks = store.leasedBlocks(result.leaseId(), request.namespace());
        if (blocks.isEmpty()) {
            counters.leasesRefused.increment();
            request.replyTo().tell(new LeaseReply(self, 0, 0, null, null, null, 0, "lease ended at once"));
            return this;
        }
        List<BlockDescriptor> list = blocks.get();
        long[] offsets = new long[list.size()];
        long[] lengths = new long[list.size()];
        for (int i = 0; i < offsets.length; i++) {
            offsets[i] = list.get(i).poolOffset();
            lengths[i] = list.get(i).lengthBytes();
        }
        counters.leasesGranted.increment();
        request.replyTo()
                .tell(new LeaseReply(
                        self,
                        result.leaseId(),
                        offsets.length,
                        poolRegion.describe(),
                        offsets,
                        lengths,
                        System.currentTimeMillis() + request.ttlMs(),
                        null));
        return this;
    }

    private Behavior<Command> onReleaseLease(Command.ReleaseLease release) {
        store.release(release.leaseId(), release.namespace());
        return this;
    }

    private Behavior<Command> onConfirmRelease(Command.ConfirmRelease confirm) {
        // Live (not past its expiry, even if not swept yet) means its blocks were pinned the whole time.
        boolean live =
                store.leasedBlocks(confirm.leaseId(), confirm.namespace()).isPresent();
        store.release(confirm.leaseId(), confirm.namespace());
        if (!live) {
            counters.leasesExpiredBeforeRelease.increment();
        }
        confirm.replyTo().tell(new ReleaseConfirmed(live));
        return this;
    }

    // ---- requester side ----

    private Behavior<Command> onListed(Listed listed) {
        peers.clear();
        for (ActorRef<Command> ref : listed.listing().getServiceInstances(SERVICE_KEY)) {
            var address = ref.path().address();
            if (address.host().isEmpty() || address.port().isEmpty()) {
                continue; // this node's own coordinator
            }
            topology.nodeAt(address.host().get(), (Integer) address.port().get())
                    .ifPresent(node -> peers.put(node.id(), ref));
        }
        return this;
    }

    private Behavior<Command> onFetch(Command.Fetch fetch) {
        if (draining) {
            fetch.replyTo().tell(new FetchResult(new boolean[fetch.hashes().length], "node stopping"));
            return this;
        }
        if (fetches.size() >= settings.maxFetchesInFlight()) {
            counters.refusedBusy.increment();
            counters.blocksFailed.add(fetch.hashes().length);
            fetch.replyTo()
                    .tell(new FetchResult(
                            new boolean[fetch.hashes().length], "too many fetches in flight (" + fetches.size() + ")"));
            return this;
        }
        FetchJob job = new FetchJob(nextFetchId++, fetch, System.nanoTime());
        fetches.put(job.id, job);
        counters.fetchesStarted.increment();
        context.pipeToSelf(
                directory.locate(fetch.layout().namespace(), fetch.hashes(), settings.locateTimeout()),
                (result, error) -> new Located(job.id, result, error));
        return this;
    }

    private Behavior<Command> onLocated(Located located) {
        FetchJob job = fetches.get(located.fetchId());
        if (job == null) {
            return this;
        }
        if (located.error() != null) {
            return finish(job, "directory lookup failed: " + located.error());
        }
        job.where = located.result();
        return nextAttempt(job);
    }

    /** Starts the next attempt on the best untried holder of what is still missing, or answers the fetch. */
    private Behavior<Command> nextAttempt(FetchJob job) {
        clearAttempt(job);
        if (draining || job.draining) {
            return finish(job, "node stopping");
        }
        long leftMs = remainingMs(job);
        if (job.attempts >= settings.maxAttempts()
                || leftMs < settings.leaseTimeout().toMillis() + MIN_TRANSFER_MS) {
            return finish(job, job.lastReason);
        }
        LocateResult where = job.where;
        Map<String, Integer> held = new HashMap<>();
        for (int i = 0; i < where.size(); i++) {
            if (job.fetched[i]) {
                continue;
            }
            for (String holder : where.holders(i)) {
                if (peers.containsKey(holder) && !job.tried.contains(holder)) {
                    held.merge(holder, 1, Integer::sum);
                }
            }
        }
        String best = null;
        for (var e : held.entrySet()) {
            if (best == null || e.getValue() > held.get(best)) {
                best = e.getKey();
            }
        }
        if (best == null) {
            return finish(
                    job,
                    job.lastReason != null
                            ? job.lastReason
                            : (job.attempts == 0 ? "no reachable peer holds the blocks" : null));
        }
        if (job.attempts > 0) {
            counters.retries.increment();
        }
        job.attempts++;
        job.tried.add(best);
        job.holder = best;
        job.phase = Phase.LEASING;
        List<Integer> positions = new ArrayList<>();
        for (int i = 0; i < where.size() && positions.size() < transport.maxDescriptorsPerTransfer(); i++) {
            if (!job.fetched[i] && where.holders(i).contains(best)) {
                positions.add(i);
            }
        }
        job.positions = new int[positions.size()];
        byte[][] asked = new byte[positions.size()][];
        for (int k = 0; k < asked.length; k++) {
            job.positions[k] = positions.get(k);
            asked[k] = job.request.hashes()[job.positions[k]];
        }
        String namespace = job.request.layout().namespace();
        long ttl = settings.leaseTtlMs();
        int attempt = job.attempts;
        context.ask(
                LeaseReply.class,
                peers.get(best),
                settings.leaseTimeout(),
                replyTo -> new Command.LeaseRequest(namespace, asked, ttl, replyTo),
                (reply, error) -> new LeaseGot(job.id, attempt, namespace, reply, error));
        return this;
    }

    /** The job of a message if it is still at that attempt; else null (the message is late). */
    private FetchJob current(long fetchId, int attempt) {
        FetchJob job = fetches.get(fetchId);
        return job != null && job.attempts == attempt ? job : null;
    }

    private Behavior<Command> onLeaseGot(LeaseGot got) {
        FetchJob job = current(got.fetchId(), got.attempt());
        if (job == null || job.phase != Phase.LEASING) {
            // Given up already: let the holder go at once.
            LeaseReply late = got.reply();
            if (late != null && late.leaseId() != 0) {
                releaseRemote(late.holder(), late.leaseId(), got.namespace());
            }
            return this;
        }
        if (got.error() != null) {
            counters.leaseFailures.increment();
            return attemptFailed(job, "lease_failed", "lease from " + job.holder + " failed: " + got.error());
        }
        LeaseReply reply = got.reply();
        if (reply.leaseId() == 0 || reply.granted() == 0) {
            counters.leaseFailures.increment();
            return attemptFailed(job, "lease_refused", "lease from " + job.holder + " refused: " + reply.error());
        }
        job.lease = reply;
        job.leaseReceivedNs = System.nanoTime();
        NamespaceLayout layout = job.request.layout();
        byte[][] hashes = job.request.hashes();
        int[] positions = job.positions;
        int granted = Math.min(reply.granted(), positions.length);
        CompletableFuture<IncomingBlock[]> reserved;
        try {
            reserved = CompletableFuture.supplyAsync(
                    () -> reserve(layout, hashes, positions, granted, reply.lengths()), storeExecutor);
        } catch (RejectedExecutionException e) {
            counters.refusedBusy.increment();
            return finish(job, "store executor busy");
        }
        job.phase = Phase.RESERVING;
        int attempt = job.attempts;
        context.pipeToSelf(reserved, (blocks, error) -> new Reserved(job.id, attempt, blocks, error));
        return this;
    }

    /** On the store executor: reserves the granted blocks whose sizes match; stops at the first full pool. */
    private IncomingBlock[] reserve(
            NamespaceLayout layout, byte[][] hashes, int[] positions, int granted, long[] lengths) {
        IncomingBlock[] blocks = new IncomingBlock[granted];
        for (int k = 0; k < granted; k++) {
            if (lengths[k] != layout.blockBytes()) {
                continue; // another layout on the holder: not this namespace's block size
            }
            try {
                blocks[k] = store.reserveIncoming(layout, hashes[positions[k]]).orElse(null);
            } catch (PoolFullException e) {
                break;
            }
        }
        return blocks;
    }

    private Behavior<Command> onReserved(Reserved reserved) {
        FetchJob job = current(reserved.fetchId(), reserved.attempt());
        if (job == null || job.phase != Phase.RESERVING) {
            abortAll(reserved.blocks());
            return this;
        }
        if (reserved.error() != null) {
            return finish(job, "reserving pool space failed: " + reserved.error());
        }
        job.incoming = reserved.blocks();
        if (job.draining) {
            return nextAttempt(job); // aborts what was reserved, then answers
        }
        // The holder may evict the blocks once its lease expires: a transfer that could still run then must not start
        // (it could read a reused slot). The lease was granted before we received it, so our clock only errs late.
        long timeoutMs = Math.min(
                settings.transferTimeoutMs(),
                remainingMs(job) - settings.leaseTimeout().toMillis());
        long leftMs = settings.leaseTtlMs() - (System.nanoTime() - job.leaseReceivedNs) / 1_000_000;
        if (timeoutMs < MIN_TRANSFER_MS || leftMs < timeoutMs + LEASE_MARGIN_MS) {
            counters.leaseFailures.increment();
            return attemptFailed(
                    job,
                    "lease_short",
                    "lease from " + job.holder + " would expire before the transfer's timeout (" + leftMs
                            + " ms left)");
        }
        int count = 0;
        for (IncomingBlock b : job.incoming) {
            if (b != null) {
                count++;
            }
        }
        if (count == 0) {
            return finish(job, "no pool space reserved");
        }
        DescriptorList list = new DescriptorList(count);
        RemoteRegion region = job.lease.region();
        for (int k = 0; k < job.incoming.length; k++) {
            IncomingBlock b = job.incoming[k];
            if (b != null) {
                list.add(
                        region,
                        job.lease.offsets()[k],
                        poolRegion,
                        b.descriptor().poolOffset(),
                        b.descriptor().lengthBytes());
            }
        }
        ActorRef<Command> self = context.getSelf();
        long fetchId = job.id;
        int attempt = job.attempts;
        job.correlationId = nextCorrelationId++;
        TransferStatus submitted;
        try {
            submitted = transport.read(
                    list,
                    timeoutMs,
                    job.correlationId,
                    (id, status, bytes) -> self.tell(new TransferDone(fetchId, attempt, status, bytes)));
        } catch (RuntimeException e) {
            counters.transferFailures.increment();
            return attemptFailed(job, "transfer_error", "transfer refused: " + e);
        }
        if (submitted != TransferStatus.OK) {
            if (submitted == TransferStatus.BACK_PRESSURED) {
                counters.backPressured.increment();
            } else {
                counters.transferFailures.increment();
            }
            return attemptFailed(
                    job,
                    submitted.name().toLowerCase(Locale.ROOT),
                    "transfer from " + job.holder + " refused: " + submitted);
        }
        job.phase = Phase.TRANSFERRING;
        return this;
    }

    private Behavior<Command> onTransferDone(TransferDone done) {
        FetchJob job = current(done.fetchId(), done.attempt());
        if (job == null || job.phase != Phase.TRANSFERRING) {
            return this; // cannot happen: a transferring attempt ends only here
        }
        if (done.status() != TransferStatus.OK) {
            counters.transferFailures.increment();
            return attemptFailed(
                    job,
                    done.status().name().toLowerCase(Locale.ROOT),
                    "transfer from " + job.holder + " ended " + done.status());
        }
        counters.bytesFetched.add(done.bytes());
        if (job.draining) {
            return nextAttempt(job);
        }
        ActorRef<Command> peer = peers.get(job.holder);
        if (peer == null) {
            return attemptFailed(job, "confirm_failed", "holder " + job.holder + " left before confirming its lease");
        }
        job.phase = Phase.CONFIRMING;
        long leaseId = job.lease.leaseId();
        String namespace = job.request.layout().namespace();
        int attempt = job.attempts;
        context.ask(
                ReleaseConfirmed.class,
                peer,
                settings.leaseTimeout(),
                replyTo -> new Command.ConfirmRelease(leaseId, namespace, replyTo),
                (reply, error) -> new Confirmed(job.id, attempt, reply, error));
        return this;
    }

    private Behavior<Command> onConfirmed(Confirmed confirmed) {
        FetchJob job = current(confirmed.fetchId(), confirmed.attempt());
        if (job == null || job.phase != Phase.CONFIRMING) {
            return this; // ended meanwhile (drain): its blocks were aborted then
        }
        if (confirmed.error() != null || !confirmed.reply().wasLive()) {
            counters.leaseFailures.increment();
            if (confirmed.error() == null) {
                job.lease = null; // ended on the holder already
            }
            return attemptFailed(
                    job,
                    "lease_expired",
                    "lease from " + job.holder + " "
                            + (confirmed.error() != null
                                    ? "not confirmed: " + confirmed.error()
                                    : "expired during the transfer"));
        }
        job.lease = null; // ended by the confirmation
        int committed = 0;
        for (int k = 0; k < job.incoming.length; k++) {
            IncomingBlock b = job.incoming[k];
            if (b != null) {
                store.commitIncoming(b);
                job.incoming[k] = null;
                job.fetched[job.positions[k]] = true;
                committed++;
            }
        }
        counters.blocksFetched.add(committed);
        return nextAttempt(job); // answers when nothing is missing, or tries a holder of the rest
    }

    /** One attempt failed: counted against its holder; the next holder is tried. */
    private Behavior<Command> attemptFailed(FetchJob job, String reason, String detail) {
        counters.attemptFailed(job.holder, reason);
        context.getLog().debug("fetch {} attempt {} failed: {}", job.id, job.attempts, detail);
        job.lastReason = detail;
        return nextAttempt(job);
    }

    /** Ends the current attempt: aborts what it reserved (its transfer is over), lets its lease go. */
    private void clearAttempt(FetchJob job) {
        abortAll(job.incoming);
        job.incoming = null;
        if (job.lease != null && job.lease.leaseId() != 0) {
            releaseRemote(job.holder, job.lease.leaseId(), job.request.layout().namespace());
        }
        job.lease = null;
        job.holder = null;
        job.positions = null;
    }

    /** Answers the fetch with what is sealed here now; nothing of it is in flight any more. */
    private Behavior<Command> finish(FetchJob job, String reason) {
        clearAttempt(job);
        fetches.remove(job.id);
        int asked = job.fetched.length;
        int got = job.fetchedCount();
        counters.blocksFailed.add(asked - got);
        if (got == asked) {
            counters.fetchesCompleted.increment();
            reason = null;
        } else if (got == 0) {
            counters.fetchesFailed.increment();
        } else {
            counters.fetchesPartial.increment();
        }
        if (got < asked && reason == null) {
            reason = (asked - got) + " of " + asked + " not held by any reachable peer";
        }
        counters.recordFetchLatency(System.nanoTime() - job.startNs);
        if (reason != null) {
            context.getLog().debug("fetch {} ended with {} of {} blocks: {}", job.id, got, asked, reason);
        }
        job.request.replyTo().tell(new FetchResult(job.fetched, reason));
        if (draining) {
            drainedFetches++;
            checkDrained();
        }
        return this;
    }

    private long remainingMs(FetchJob job) {
        return settings.fetchDeadline().toMillis() - (System.nanoTime() - job.startNs) / 1_000_000;
    }

    private void releaseRemote(String holder, long leaseId, String namespace) {
        ActorRef<Command> peer = peers.get(holder);
        if (peer != null && namespace != null) {
            peer.tell(new Command.ReleaseLease(leaseId, namespace));
        }
    }

    private void abortAll(IncomingBlock[] blocks) {
        if (blocks == null) {
            return;
        }
        for (int k = 0; k < blocks.length; k++) {
            if (blocks[k] != null) {
                store.abortIncoming(blocks[k]);
                blocks[k] = null;
            }
        }
    }

    // ---- shutdown ----

    private Behavior<Command> onDrain(Command.Drain drain) {
        draining = true;
        drainWaiters.add(drain.replyTo());
        for (FetchJob job : List.copyOf(fetches.values())) {
            job.draining = true;
            switch (job.phase) {
                // Nothing reserved yet, or the transfer is over (its completion freed the memory): end it now.
                case LOCATING, LEASING, CONFIRMING -> finish(job, "node stopping");
                // Ends when its reservation arrives (then aborted).
                case RESERVING -> {}
                // Ends when the transport's completion says nothing more lands in its reservation.
                case TRANSFERRING -> transport.cancel(job.correlationId);
            }
        }
        checkDrained();
        return this;
    }

    private void checkDrained() {
        if (draining && fetches.isEmpty() && !drainWaiters.isEmpty()) {
            for (ActorRef<Drained> waiter : drainWaiters) {
                waiter.tell(new Drained(drainedFetches));
            }
            drainWaiters.clear();
        }
    }

    /**
     * Stopping without a drain, with transfers in flight: their reservations stay until the transport closes (it
     * completes them, and nothing is written after close), so they are only given up here; the store is freed with
     * the node.
     */
    private Behavior<Command> onPostStop(PostStop signal) {
        for (FetchJob job : List.copyOf(fetches.values())) {
            if (job.phase == Phase.TRANSFERRING) {
                transport.cancel(job.correlationId);
            }
            job.request.replyTo().tell(new FetchResult(job.fetched, "node stopping"));
        }
        fetches.clear();
        return this;
    }
}
