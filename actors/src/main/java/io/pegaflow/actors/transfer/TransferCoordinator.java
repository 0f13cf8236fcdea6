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
import java.util.List;
import java.util.Map;
import java.util.Optional;
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
 * in place until the requester sends {@link Command.ReleaseLease} or the lease's TTL passes (the store's sweep).
 *
 * <p>Requester side, one {@link Command.Fetch}: the directory names holders; the holder holding the most of the
 * hashes is asked for a lease; pool space is reserved here ({@link BlockStore#reserveIncoming}, which may evict, so on
 * the bounded {@code storeExecutor}); one transport READ of the descriptor list moves the bytes; its completion arrives
 * as a {@link Command} told from the transport's thread; the blocks are committed (OK) or aborted (anything else), the
 * remote lease released and the requester answered with which hashes are now sealed here. Nothing half-copied is
 * committed: a block is sealed only after its transfer completed OK. At most {@code maxFetchesInFlight} fetches run;
 * more are refused at once (all their blocks failed, counted).
 *
 * <p>Finds peers' coordinators through the receptionist under {@link #SERVICE_KEY}; maps each to its node id by its
 * cluster address in the topology.
 */
public final class TransferCoordinator extends AbstractBehavior<TransferCoordinator.Command> {
    /** The actor name under the node guardian. */
    public static final String NAME = "transfer-coordinator";

    /** A transfer starts only while the remote lease has its timeout plus this much left. */
    static final long LEASE_MARGIN_MS = 1_000;

    /** Every node's coordinator registers under this key. */
    public static final ServiceKey<Command> SERVICE_KEY =
            ServiceKey.create(Command.class, "pegaflow-transfer-coordinator");

    /** The coordinator's protocol. */
    public interface Command {
        /** A peer asks for a lease on blocks of {@code namespace} this node holds (the contiguous held prefix). */
        record LeaseRequest(String namespace, byte[][] hashes, long ttlMs, ActorRef<LeaseReply> replyTo)
                implements Command, CborSerializable {}

        /** A peer is done with a lease (transfer completed, failed or given up). */
        record ReleaseLease(long leaseId, String namespace) implements Command, CborSerializable {}

        /** Fetch blocks of {@code layout}'s namespace into this node's store; local only. */
        record Fetch(NamespaceLayout layout, byte[][] hashes, ActorRef<FetchResult> replyTo) implements LocalCommand {}
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

    private record LeaseGot(long fetchId, LeaseReply reply, Throwable error) implements LocalCommand {}

    private record Reserved(long fetchId, IncomingBlock[] blocks, Throwable error) implements LocalCommand {}

    private record TransferDone(long fetchId, TransferStatus status, long bytes) implements LocalCommand {}

    /** How the coordinator behaves; timeouts bound every step so a dead holder ends as failed blocks. */
    public record Settings(
            Duration locateTimeout,
            Duration leaseTimeout,
            long leaseTtlMs,
            long transferTimeoutMs,
            int maxFetchesInFlight) {
        public static Settings defaults() {
            return new Settings(Duration.ofSeconds(2), Duration.ofSeconds(3), 15_000, 5_000, 64);
        }
    }

    /** One fetch on its way through locate → lease → reserve → transfer → commit. */
    private static final class FetchJob {
        final long id;
        final Command.Fetch request;
        String holder;
        int[] positions; // indexes into request.hashes of the blocks asked from the holder
        LeaseReply lease;
        long leaseReceivedNs;
        IncomingBlock[] incoming; // per granted block, null where not reserved

        FetchJob(long id, Command.Fetch request) {
            this.id = id;
            this.request = request;
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
    private long nextFetchId = 1;

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
                .onMessage(Command.Fetch.class, this::onFetch)
                .onMessage(Listed.class, this::onListed)
                .onMessage(Located.class, this::onLocated)
                .onMessage(LeaseGot.class, this::onLeaseGot)
                .onMessage(Reserved.class, this::onReserved)
                .onMessage(TransferDone.class, this::onTransferDone)
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
        if (fetches.size() >= settings.maxFetchesInFlight()) {
            counters.refusedBusy.increment();
            fail(fetch, "too many fetches in flight (" + fetches.size() + ")");
            return this;
        }
        FetchJob job = new FetchJob(nextFetchId++, fetch);
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
            return end(job, "directory lookup failed: " + located.error());
        }
        LocateResult where = located.result();
        // The peer holding the most of the hashes, among those whose coordinator is known.
        Map<String, Integer> held = new HashMap<>();
        for (int i = 0; i < where.size(); i++) {
            for (String holder : where.holders(i)) {
                if (peers.containsKey(holder)) {
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
            return end(job, "no reachable peer holds the blocks");
        }
        job.holder = best;
        List<Integer> positions = new ArrayList<>();
        for (int i = 0; i < where.size(); i++) {
            if (where.holders(i).contains(best)) {
                positions.add(i);
            }
        }
        int count = Math.min(positions.size(), transport.maxDescriptorsPerTransfer());
        job.positions = new int[count];
        byte[][] asked = new byte[count][];
        for (int k = 0; k < count; k++) {
            job.positions[k] = positions.get(k);
            asked[k] = job.request.hashes()[job.positions[k]];
        }
        String namespace = job.request.layout().namespace();
        long ttl = settings.leaseTtlMs();
        context.ask(
                LeaseReply.class,
                peers.get(best),
                settings.leaseTimeout(),
                replyTo -> new Command.LeaseRequest(namespace, asked, ttl, replyTo),
                (reply, error) -> new LeaseGot(job.id, reply, error));
        return this;
    }

    private Behavior<Command> onLeaseGot(LeaseGot got) {
        FetchJob job = fetches.get(got.fetchId());
        if (job == null) {
            // Given up already: let the holder go at once.
            if (got.reply() != null && got.reply().leaseId() != 0) {
                releaseRemote(got.reply().holder(), got.reply().leaseId(), null);
            }
            return this;
        }
        if (got.error() != null) {
            counters.leaseFailures.increment();
            return end(job, "lease from " + job.holder + " failed: " + got.error());
        }
        LeaseReply reply = got.reply();
        if (reply.leaseId() == 0 || reply.granted() == 0) {
            counters.leaseFailures.increment();
            return end(job, "lease from " + job.holder + " refused: " + reply.error());
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
            return end(job, "store executor busy");
        }
        context.pipeToSelf(reserved, (blocks, error) -> new Reserved(job.id, blocks, error));
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
        FetchJob job = fetches.get(reserved.fetchId());
        if (job == null) {
            abortAll(reserved.blocks());
            return this;
        }
        if (reserved.error() != null) {
            return end(job, "reserving pool space failed: " + reserved.error());
        }
        job.incoming = reserved.blocks();
        // The holder may evict the blocks once its lease expires: a transfer that could still run then must not start
        // (it could read a reused slot). The lease was granted before we received it, so our clock only errs late.
        long leftMs = settings.leaseTtlMs() - (System.nanoTime() - job.leaseReceivedNs) / 1_000_000;
        if (leftMs < settings.transferTimeoutMs() + LEASE_MARGIN_MS) {
            counters.leaseFailures.increment();
            return end(
                    job,
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
            return end(job, "no pool space reserved");
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
        TransferStatus submitted;
        try {
            submitted = transport.read(
                    list,
                    settings.transferTimeoutMs(),
                    fetchId,
                    (id, status, bytes) -> self.tell(new TransferDone(id, status, bytes)));
        } catch (RuntimeException e) {
            counters.transferFailures.increment();
            return end(job, "transfer refused: " + e);
        }
        if (submitted != TransferStatus.OK) {
            if (submitted == TransferStatus.BACK_PRESSURED) {
                counters.backPressured.increment();
            } else {
                counters.transferFailures.increment();
            }
            return end(job, "transfer from " + job.holder + " refused: " + submitted);
        }
        return this;
    }

    private Behavior<Command> onTransferDone(TransferDone done) {
        FetchJob job = fetches.get(done.fetchId());
        if (job == null) {
            return this;
        }
        if (done.status() != TransferStatus.OK) {
            counters.transferFailures.increment();
            return end(job, "transfer from " + job.holder + " ended " + done.status());
        }
        boolean[] fetched = new boolean[job.request.hashes().length];
        int committed = 0;
        for (int k = 0; k < job.incoming.length; k++) {
            IncomingBlock b = job.incoming[k];
            if (b != null) {
                store.commitIncoming(b);
                job.incoming[k] = null;
                fetched[job.positions[k]] = true;
                committed++;
            }
        }
        counters.blocksFetched.add(committed);
        counters.bytesFetched.add(done.bytes());
        finish(job);
        int asked = fetched.length;
        job.request
                .replyTo()
                .tell(new FetchResult(
                        fetched, committed == asked ? null : (asked - committed) + " of " + asked + " not held"));
        return this;
    }

    /** Ends a fetch that failed: aborts what it reserved, lets the holder go, answers with every block failed. */
    private Behavior<Command> end(FetchJob job, String reason) {
        counters.fetchesFailed.increment();
        counters.blocksFailed.add(job.request.hashes().length);
        context.getLog().debug("fetch {} failed: {}", job.id, reason);
        abortAll(job.incoming);
        finish(job);
        fail(job.request, reason);
        return this;
    }

    private void finish(FetchJob job) {
        fetches.remove(job.id);
        if (job.lease != null && job.lease.leaseId() != 0) {
            releaseRemote(job.holder, job.lease.leaseId(), job.request.layout().namespace());
        }
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

    private static void fail(Command.Fetch fetch, String reason) {
        fetch.replyTo().tell(new FetchResult(new boolean[fetch.hashes().length], reason));
    }

    /**
     * Stopping with transfers in flight: their reservations stay until the transport closes (it completes them, and
     * nothing is written after close), so they are only given up here; the store is freed with the node.
     */
    private Behavior<Command> onPostStop(PostStop signal) {
        for (FetchJob job : List.copyOf(fetches.values())) {
            transport.cancel(job.id);
            fail(job.request, "node stopping");
        }
        fetches.clear();
        return this;
    }
}
