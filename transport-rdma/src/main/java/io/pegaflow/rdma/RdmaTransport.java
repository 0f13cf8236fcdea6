package io.pegaflow.rdma;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import io.pegaflow.rdma.verbs.Verbs;
import io.pegaflow.rdma.verbs.VerbsLayout;
import io.pegaflow.rdma.verbs.VerbsLayoutException;
import io.pegaflow.transport.CompletionHandler;
import io.pegaflow.transport.DescriptorList;
import io.pegaflow.transport.LocalRegion;
import io.pegaflow.transport.PeerAddress;
import io.pegaflow.transport.PeerSnapshot;
import io.pegaflow.transport.PeerState;
import io.pegaflow.transport.RemoteRegion;
import io.pegaflow.transport.TransferArguments;
import io.pegaflow.transport.TransferOp;
import io.pegaflow.transport.TransferStatus;
import io.pegaflow.transport.Transport;
import io.pegaflow.transport.TransportException;
import io.pegaflow.transport.TransportSettings;
import io.pegaflow.transport.TransportSnapshot;
import java.io.IOException;
import java.lang.System.Logger.Level;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.security.SecureRandom;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.LockSupport;

/**
 * The RDMA verbs implementation of the transport SPI: one-sided RDMA READ and WRITE over RC queue pairs, several per
 * peer and per NIC, a transfer striped across them.
 *
 * <h2>Connect</h2>
 * Each node dials each peer of its static list over TCP (the peer's {@code PeerAddress} port, the same listener a
 * TCP transport would use) and exchanges, once: node ids, every queue pair's QPN, PSN, LID, GID and MTU, and the
 * peer's regions with their rkeys ({@link Handshake}). Both sides then move their queue pairs INIT → RTR → RTS. The
 * dialler posts; the listener's queue pairs only respond (its NIC serves the READs and WRITEs). The socket stays open:
 * it carries region announcements, and its EOF says the peer is gone.
 *
 * <h2>Data path</h2>
 * Submission checks the descriptors, claims a preallocated slot, copies the list, splits it into one part per queue
 * pair (transfers under {@link RdmaSettings#stripeMinBytes()} use one queue pair, round robin) and offers the parts
 * to the NICs' pollers: nothing is allocated per block or per transfer. A descriptor naming a region or key the peer
 * never announced is accepted and completes as {@code REMOTE_ERROR} without touching the queue pairs. Each NIC's
 * poller ({@code pegaflow-rdma-poll-<node>-<device>}) owns its CQ and queue pairs ({@link Nic}).
 *
 * <h2>Failures and the memory guarantee</h2>
 * The NIC, not a thread, writes the memory, so a transfer is only completed once every one of its work requests has
 * completed or been flushed. A timeout or cancel (decided by NIC 0's poller), an error completion (bad key, retries
 * exhausted: a dead peer), a failed post or the side channel's EOF breaks the connection: its queue pairs go to ERR,
 * their outstanding requests flush, and only then do their transfers complete (TIMED_OUT, CANCELLED, REMOTE_ERROR;
 * those never posted NOT_CONNECTED). The connector thread then destroys the queue pairs and dials again with back-off,
 * so a dead or restarted peer is rebuilt in the background. A full ring or a full in-flight bound is back-pressure,
 * never a reason to drop a healthy connection. Regions stay registered throughout.
 *
 * <h2>Threads</h2>
 * {@code pegaflow-rdma-poll-<node>-<device>} per NIC, {@code pegaflow-rdma-connect-<node>} (dialling, teardown),
 * {@code pegaflow-rdma-accept-<node>}, {@code pegaflow-rdma-serve-<node>-<n>} per inbound connection,
 * {@code pegaflow-rdma-link-<node>-<peer>} per outbound side channel. Completions run on a poller thread.
 */
public final class RdmaTransport implements Transport {
    private static final System.Logger LOG = System.getLogger(RdmaTransport.class.getName());
    private static final Thread ANY_OTHER_THREAD = Thread.ofPlatform().unstarted(() -> {});
    private static final int NEW = 0;
    private static final int STARTED = 1;
    private static final int CLOSED = 2;

    private final TransportSettings settings;
    private final RdmaSettings rdma;
    private final List<Nic> nics;
    private final List<PeerLink> links = new ArrayList<>();
    private final Map<String, PeerLink> linksById = new LinkedHashMap<>();
    private final PeerLink[] linkArray;
    private final ConcurrentHashMap<Integer, RdmaRegion> regions = new ConcurrentHashMap<>();
    private final Set<Inbound> inbounds = ConcurrentHashMap.newKeySet();
    private final AtomicInteger lifecycle = new AtomicInteger(NEW);
    private final AtomicLong lateBytes = new AtomicLong();
    private final AtomicLong handlerFailures = new AtomicLong();
    private final AtomicInteger inFlightTotal = new AtomicInteger();
    private final SecureRandom keys = new SecureRandom();
    private final long chunkBytes;
    private volatile boolean closing;
    private volatile boolean leakedOnClose;
    /** Each bounded wait of close: the connector, the drain, the pollers. */
    private static final long CLOSE_WAIT_MS = 10_000;

    private ServerSocket listener;
    private Thread acceptor;
    private Thread connector;
    private final AtomicInteger serveThreads = new AtomicInteger();

    RdmaTransport(TransportSettings settings, RdmaSettings rdma, RdmaProbeResult.Devices devices) {
        this.settings = Objects.requireNonNull(settings, "settings");
        this.rdma = Objects.requireNonNull(rdma, "rdma");
        try {
            VerbsLayout.verify();
        } catch (VerbsLayoutException e) {
            throw new TransportException("RDMA unavailable: " + e.getMessage(), e);
        }
        Verbs verbs = Verbs.load()
                .verbs()
                .orElseThrow(() -> new TransportException(
                        "RDMA unavailable: " + Verbs.load().reason()));
        int maxParts = rdma.totalQpsPerPeer();
        int peerCount = settings.peers().size();
        int cqe = Math.max(1024, (peerCount + 1) * maxParts * rdma.maxQueueDepth() * 2);
        int submitCapacity = Math.max(64, (peerCount + 1) * settings.maxInFlightPerPeer() * maxParts);
        nics = openNics(verbs, devices, cqe, submitCapacity);
        long chunk = rdma.maxRegistrationBytes() == 0 ? Long.MAX_VALUE : rdma.maxRegistrationBytes();
        for (Nic nic : nics) {
            chunk = Math.min(chunk, nic.maxMrSize);
        }
        chunkBytes = Math.min(chunk, 1L << 40);
        for (PeerAddress peer : settings.peers()) {
            PeerLink link = new PeerLink(
                    this, peer, settings.maxInFlightPerPeer(), settings.maxDescriptorsPerTransfer(), maxParts);
            links.add(link);
            linksById.put(peer.nodeId(), link);
        }
        linkArray = links.toArray(new PeerLink[0]);
    }

    private List<Nic> openNics(Verbs verbs, RdmaProbeResult.Devices devices, int cqe, int submitCapacity) {
        List<Nic> opened = new ArrayList<>();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment num = arena.allocate(JAVA_INT);
            MemorySegment capture = Verbs.newErrnoCapture(arena);
            MemorySegment list = verbs.getDeviceList(num, capture);
            if (list.equals(MemorySegment.NULL)) {
                throw new TransportException(
                        "RDMA unavailable: ibv_get_device_list: " + Verbs.strerror(Verbs.errno(capture)));
            }
            try {
                int count = num.get(JAVA_INT, 0);
                MemorySegment array = list.reinterpret(ADDRESS.byteSize() * count);
                for (int n = 0; n < rdma.nics().size(); n++) {
                    RdmaNic nic = rdma.nics().get(n);
                    String name = RdmaProbe.resolve(devices, nic)
                            .map(RdmaDevice::name)
                            .orElseThrow(() -> new TransportException("RDMA unavailable: no device for " + nic));
                    MemorySegment device = MemorySegment.NULL;
                    for (int i = 0; i < count; i++) {
                        MemorySegment d = array.getAtIndex(ADDRESS, i);
                        if (verbs.deviceName(d).equals(name)) {
                            device = d;
                        }
                    }
                    if (device.equals(MemorySegment.NULL)) {
                        throw new TransportException("RDMA unavailable: device " + name + " disappeared");
                    }
                    opened.add(new Nic(this, verbs, n, device, name, nic, cqe, submitCapacity));
                }
            } catch (RuntimeException e) {
                for (Nic nic : opened) {
                    nic.stop();
                }
                if (e instanceof VerbsLayoutException) {
                    throw new TransportException("RDMA unavailable: " + e.getMessage(), e);
                }
                throw e;
            } finally {
                verbs.freeDeviceList(list);
            }
        }
        return List.copyOf(opened);
    }

    // ------------------------------------------------------------------------------------------ accessors

    TransportSettings settings() {
        return settings;
    }

    RdmaSettings rdma() {
        return rdma;
    }

    List<Nic> nics() {
        return nics;
    }

    boolean isClosing() {
        return closing;
    }

    boolean hasInFlight() {
        return inFlightTotal.get() > 0;
    }

    void lateBytes(long bytes) {
        lateBytes.addAndGet(bytes);
    }

    void handlerFailed() {
        handlerFailures.incrementAndGet();
    }

    void wakeConnector() {
        Thread t = connector;
        if (t != null) {
            LockSupport.unpark(t);
        }
    }

    List<Handshake.RegionAdvert> regionAdverts() {
        List<Handshake.RegionAdvert> out = new ArrayList<>();
        for (RdmaRegion r : regions.values()) {
            if (r.isRegistered()) {
                out.add(r.advert());
            }
        }
        return out;
    }

    void inboundEnded(Inbound inbound) {
        inbounds.remove(inbound);
    }

    @Override
    public String name() {
        return "rdma";
    }

    @Override
    public String localNodeId() {
        return settings.localNodeId();
    }

    /** The NIC devices in use, in the settings' order (for logs and rdma-check). */
    public List<String> deviceNames() {
        return nics.stream().map(n -> n.name).toList();
    }

    // ------------------------------------------------------------------------------------------ life cycle

    @Override
    public void start() {
        if (!lifecycle.compareAndSet(NEW, STARTED)) {
            throw new IllegalStateException("transport=rdma node " + localNodeId() + " already started or closed");
        }
        try {
            listener = new ServerSocket();
            listener.setReuseAddress(true);
            listener.bind(new InetSocketAddress(settings.bindHost(), settings.listenPort()));
        } catch (IOException e) {
            lifecycle.set(CLOSED);
            throw new TransportException(
                    "transport=rdma node " + localNodeId() + " cannot listen on " + settings.bindHost() + ":"
                            + settings.listenPort(),
                    e);
        }
        for (Nic nic : nics) {
            nic.start(localNodeId());
        }
        acceptor = Thread.ofPlatform()
                .daemon()
                .name("pegaflow-rdma-accept-" + localNodeId())
                .start(this::accept);
        connector = Thread.ofPlatform()
                .daemon()
                .name("pegaflow-rdma-connect-" + localNodeId())
                .start(this::tend);
        LOG.log(
                Level.INFO,
                "transport=rdma node={0} listening on {1}:{2,number,#} with {3}, queue pairs per peer per NIC {4},"
                        + " queue depth per NIC {5}",
                localNodeId(),
                settings.bindHost(),
                listener.getLocalPort(),
                deviceNames(),
                perNic(rdma::qpsPerPeer),
                perNic(rdma::queueDepth));
    }

    private List<Integer> perNic(java.util.function.IntUnaryOperator value) {
        List<Integer> out = new ArrayList<>(nics.size());
        for (int n = 0; n < nics.size(); n++) {
            out.add(value.applyAsInt(n));
        }
        return out;
    }

    private void accept() {
        while (!closing) {
            try {
                Socket s = listener.accept();
                Inbound inbound = new Inbound(this, s);
                inbounds.add(inbound);
                Thread.ofPlatform()
                        .daemon()
                        .name("pegaflow-rdma-serve-" + localNodeId() + "-" + serveThreads.incrementAndGet())
                        .start(inbound);
            } catch (IOException e) {
                if (!closing) {
                    LOG.log(Level.WARNING, "transport=rdma node={0} accept failed: {1}", localNodeId(), e);
                }
            }
        }
    }

    private void tend() {
        while (!closing) {
            long now = System.nanoTime();
            for (PeerLink link : links) {
                link.tend(now);
            }
            LockSupport.parkNanos(5_000_000L);
        }
    }

    @Override
    public PeerAddress localAddress() {
        ServerSocket l = listener;
        if (l == null) {
            throw new IllegalStateException("transport=rdma node " + localNodeId() + " is not started");
        }
        return new PeerAddress(localNodeId(), settings.bindHost(), l.getLocalPort());
    }

    /**
     * Ends every transfer (CLOSED) and frees every native resource, in an order that never frees memory a thread or
     * the NIC may still use: the connector and acceptor end first (a blocked handshake is cut); the connections drain
     * (bounded); the inbound responder queue pairs go; the pollers end; only then the queue pairs, the
     * registrations, and the CQs, PDs and contexts. If a thread does not end within the bound (a completion handler
     * that blocks the poller), nothing is freed: the queue pairs go to ERR and the resources are leaked, logged.
     */
    @Override
    public void close() {
        closeWithin(CLOSE_WAIT_MS);
    }

    /** {@link #close} with each bounded wait at most {@code waitMs} (tests make the leak case fast). */
    void closeWithin(long waitMs) {
        int was = lifecycle.getAndSet(CLOSED);
        if (was == CLOSED) {
            return;
        }
        closing = true;
        if (was == STARTED) {
            try {
                listener.close();
            } catch (IOException ignored) {
                // closing anyway
            }
            for (PeerLink link : links) {
                link.abortDial();
            }
            wakeConnector();
            List<String> alive = new ArrayList<>();
            joinOrName(connector, waitMs, alive);
            joinOrName(acceptor, waitMs, alive);
            long deadline = System.nanoTime() + waitMs * 1_000_000L;
            for (PeerLink link : links) {
                if (!link.drainForClose(deadline)) {
                    LOG.log(
                            Level.WARNING,
                            "transport=rdma node={0} peer={1}: the connection did not drain within {2} ms of close",
                            localNodeId(),
                            link.nodeId,
                            waitMs);
                }
            }
            for (Inbound inbound : inbounds) {
                inbound.close();
            }
            for (Nic nic : nics) {
                if (!nic.stopPoller(waitMs)) {
                    alive.add(nic.pollerName());
                }
            }
            if (!alive.isEmpty()) {
                leakedOnClose = true;
                for (PeerLink link : links) {
                    link.stopNicWritesForLeak();
                }
                LOG.log(
                        Level.WARNING,
                        "transport=rdma node={0} closed WITHOUT freeing its queue pairs, registrations, CQs and"
                                + " devices: {1} did not end within {2} ms (a completion handler that blocks?); freeing"
                                + " them under a live thread could corrupt memory",
                        localNodeId(),
                        alive,
                        waitMs);
                return;
            }
            for (PeerLink link : links) {
                link.destroyAfterPollersEnded();
            }
        } else {
            for (PeerLink link : links) {
                link.state = PeerState.CLOSED;
            }
        }
        // Registrations go before their protection domains and device contexts do.
        for (RdmaRegion r : regions.values()) {
            deregisterMemory(r);
        }
        regions.clear();
        for (Nic nic : nics) {
            nic.free();
        }
        LOG.log(Level.INFO, "transport=rdma node={0} closed", localNodeId());
    }

    /** True when close could not free the native resources because a thread using them did not end (tests). */
    boolean leakedOnClose() {
        return leakedOnClose;
    }

    private static void joinOrName(Thread t, long waitMs, List<String> alive) {
        if (t == null) {
            return;
        }
        try {
            t.join(waitMs);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        if (t.isAlive()) {
            alive.add(t.getName());
        }
    }

    // ------------------------------------------------------------------------------------------ regions

    @Override
    public LocalRegion registerRegion(MemorySegment segment) {
        Objects.requireNonNull(segment, "segment");
        if (!segment.isNative()) {
            throw new IllegalArgumentException("segment must be native (off-heap) memory, got a heap segment");
        }
        if (segment.byteSize() == 0) {
            throw new IllegalArgumentException("segment must not be empty");
        }
        if (segment.byteSize() > maxRegionBytes()) {
            throw new IllegalArgumentException(
                    "segment of " + segment.byteSize() + " bytes is longer than " + maxRegionBytes());
        }
        if (!segment.isAccessibleBy(ANY_OTHER_THREAD)) {
            throw new IllegalArgumentException(
                    "segment must be reachable from the transport's threads (a shared or global arena), got a"
                            + " confined one");
        }
        if (lifecycle.get() == CLOSED) {
            throw new IllegalStateException("transport=rdma node " + localNodeId() + " is closed");
        }
        int chunks = (int) ((segment.byteSize() + chunkBytes - 1) / chunkBytes);
        MemorySegment[][] mrs = new MemorySegment[nics.size()][chunks];
        int[][] lkeys = new int[nics.size()][chunks];
        int[][] rkeys = new int[nics.size()][chunks];
        int access = Verbs.ACCESS_LOCAL_WRITE | Verbs.ACCESS_REMOTE_READ | Verbs.ACCESS_REMOTE_WRITE;
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment capture = Verbs.newErrnoCapture(arena);
            for (int n = 0; n < nics.size(); n++) {
                Nic nic = nics.get(n);
                for (int c = 0; c < chunks; c++) {
                    long off = c * chunkBytes;
                    long len = Math.min(chunkBytes, segment.byteSize() - off);
                    MemorySegment mr = nic.verbs.regMr(nic.pd, segment.asSlice(off, len), len, access, capture);
                    if (mr.equals(MemorySegment.NULL)) {
                        int errno = Verbs.errno(capture);
                        deregister(mrs);
                        throw new TransportException("ibv_reg_mr of " + len + " bytes on " + nic.name + " failed: "
                                + Verbs.strerror(errno)
                                + (errno == Verbs.ENOMEM ? " (raise the memlock limit: ulimit -l unlimited)" : ""));
                    }
                    mr = mr.reinterpret(io.pegaflow.rdma.verbs.VerbsLayout.MR_RKEY + 4);
                    mrs[n][c] = mr;
                    lkeys[n][c] = mr.get(JAVA_INT, io.pegaflow.rdma.verbs.VerbsLayout.MR_LKEY);
                    rkeys[n][c] = mr.get(JAVA_INT, io.pegaflow.rdma.verbs.VerbsLayout.MR_RKEY);
                    if (mr.get(JAVA_LONG, io.pegaflow.rdma.verbs.VerbsLayout.MR_LENGTH) != len) {
                        deregister(mrs);
                        throw new TransportException("RDMA unavailable: struct ibv_mr.length does not read back");
                    }
                }
            }
        }
        RdmaRegion region;
        synchronized (regions) {
            int id = 0;
            while (regions.containsKey(id)) {
                id++;
            }
            long key;
            do {
                key = keys.nextLong() & Long.MAX_VALUE;
            } while (key == 0);
            region = new RdmaRegion(this, localNodeId(), id, segment, key, chunkBytes, mrs, lkeys, rkeys);
            regions.put(id, region);
        }
        Handshake.RegionAdvert advert = region.advert();
        for (Inbound inbound : inbounds) {
            inbound.announceAdded(advert);
        }
        LOG.log(
                Level.INFO,
                "transport=rdma node={0} registered region {1} ({2,number,#} bytes, {3} registrations" + " per NIC)",
                localNodeId(),
                region.regionId(),
                segment.byteSize(),
                chunks);
        return region;
    }

    private void deregister(MemorySegment[][] mrs) {
        for (int n = 0; n < mrs.length; n++) {
            for (MemorySegment mr : mrs[n]) {
                if (mr != null) {
                    nics.get(n).verbs.deregMr(mr);
                }
            }
        }
    }

    private void deregisterMemory(RdmaRegion r) {
        deregister(r.mrs);
    }

    @Override
    public void deregisterRegion(LocalRegion region) {
        if (!(region instanceof RdmaRegion r) || r.owner != this || regions.get(r.regionId()) != r) {
            throw new IllegalArgumentException("region " + region + " is not registered with this transport");
        }
        if (!r.retire()) {
            throw new IllegalStateException(
                    "region " + r.regionId() + " is in use by an in-flight transfer; retry after its completion");
        }
        for (Inbound inbound : inbounds) {
            inbound.announceRemoved(r.regionId(), r.key);
        }
        regions.remove(r.regionId());
        deregisterMemory(r);
        LOG.log(Level.INFO, "transport=rdma node={0} deregistered region {1}", localNodeId(), r.regionId());
    }

    @Override
    public long maxRegionBytes() {
        return 1L << 46;
    }

    // ------------------------------------------------------------------------------------------ transfers

    @Override
    public List<String> peers() {
        return List.copyOf(linksById.keySet());
    }

    @Override
    public PeerState peerState(String nodeId) {
        PeerLink link = linksById.get(nodeId);
        if (link == null) {
            return PeerState.UNKNOWN;
        }
        return lifecycle.get() == CLOSED ? PeerState.CLOSED : link.state;
    }

    @Override
    public TransferStatus read(DescriptorList d, long timeoutMs, long correlationId, CompletionHandler handler) {
        return submit(TransferOp.READ, d, timeoutMs, correlationId, handler);
    }

    @Override
    public TransferStatus write(DescriptorList d, long timeoutMs, long correlationId, CompletionHandler handler) {
        return submit(TransferOp.WRITE, d, timeoutMs, correlationId, handler);
    }

    private TransferStatus submit(
            TransferOp op, DescriptorList list, long timeoutMs, long correlationId, CompletionHandler handler) {
        TransferArguments.require(list, timeoutMs, handler);
        int state = lifecycle.get();
        if (state == CLOSED) {
            return TransferStatus.CLOSED;
        }
        if (!TransferArguments.countWithin(list, settings.maxDescriptorsPerTransfer())) {
            return TransferStatus.BAD_DESCRIPTOR;
        }
        int count = list.size();
        PeerLink link = linksById.get(list.remoteRegion(0).nodeId());
        if (link == null) {
            return TransferStatus.NOT_CONNECTED;
        }
        if (!descriptorsValid(list, link.nodeId)) {
            return refuse(link, TransferStatus.BAD_DESCRIPTOR);
        }
        PeerLink.Connection c = link.connection;
        if (state != STARTED || link.state != PeerState.CONNECTED || c == null || c.broken.get()) {
            return refuse(link, TransferStatus.NOT_CONNECTED);
        }
        if (link.inFlight.incrementAndGet() > settings.maxInFlightPerPeer()) {
            link.inFlight.decrementAndGet();
            return refuse(link, TransferStatus.BACK_PRESSURED);
        }
        Transfer t = link.claimSlot();
        int pinned = 0;
        boolean refusedByPeer = false;
        for (int i = 0; i < count; i++) {
            RdmaRegion local = (RdmaRegion) list.localRegion(i);
            if (!local.pin()) {
                for (int k = 0; k < pinned; k++) {
                    t.local[k].unpin();
                }
                t.clear();
                link.releaseSlot(t);
                return refuse(link, TransferStatus.BAD_DESCRIPTOR); // deregistered meanwhile
            }
            pinned++;
            RemoteRegion remote = list.remoteRegion(i);
            Handshake.RegionAdvert advert = c.regions.get(remote.regionId());
            if (advert == null || !advert.matches(remote)) {
                refusedByPeer = true;
            }
            t.local[i] = local;
            t.localOffset[i] = list.localOffset(i);
            t.remote[i] = advert;
            t.remoteOffset[i] = list.remoteOffset(i);
            t.length[i] = list.lengthBytes(i);
        }
        t.count = count;
        t.op = op;
        t.correlationId = correlationId;
        t.handler = handler;
        t.submitNs = System.nanoTime();
        t.deadlineNs = t.submitNs + timeoutMs * 1_000_000L;
        t.refusedByPeerTable = refusedByPeer;
        split(t, c, link, list.totalBytes(), refusedByPeer);
        inFlightTotal.incrementAndGet();
        t.live = true;
        for (int p = 0; p < t.partCount; p++) {
            Part part = t.parts[p];
            Nic nic = part.qp.nic;
            if (!nic.submitted.offer(part)) {
                // Cannot happen: the queue holds every slot's parts. Fail the part on its own rather than the link.
                t.fail(TransferStatus.BACK_PRESSURED);
                part.done = true;
                t.partDone();
                continue;
            }
            nic.wake();
        }
        return TransferStatus.OK;
    }

    /** Splits the transfer into parts: one queue pair for small transfers, else runs of descriptors per queue pair. */
    private void split(Transfer t, PeerLink.Connection c, PeerLink link, long total, boolean refused) {
        QueuePair[] qps = c.qps;
        int parts = refused || total < rdma.stripeMinBytes() ? 1 : Math.min(qps.length, t.count);
        int first = link.nextStripe(qps.length);
        if (parts == 1) {
            t.parts[0].reset(qps[first], 0, t.count);
            t.partCount = 1;
            t.partsLeft.set(1);
            return;
        }
        long share = Math.max(rdma.stripeMinBytes(), (total + parts - 1) / parts);
        int from = 0;
        int n = 0;
        long acc = 0;
        for (int i = 0; i < t.count; i++) {
            acc += t.length[i];
            boolean last = i == t.count - 1;
            if (last || (acc >= share && n < parts - 1)) {
                t.parts[n].reset(qps[(first + n) % qps.length], from, i + 1);
                n++;
                from = i + 1;
                acc = 0;
            }
        }
        t.partCount = n;
        t.partsLeft.set(n);
    }

    private boolean descriptorsValid(DescriptorList list, String peerId) {
        for (int i = 0; i < list.size(); i++) {
            if (!TransferArguments.remoteSideValid(list, i, peerId)) {
                return false;
            }
            long length = list.lengthBytes(i);
            if (!(list.localRegion(i) instanceof RdmaRegion local)
                    || local.owner != this
                    || !local.isRegistered()
                    || !local.contains(list.localOffset(i), length)) {
                return false;
            }
        }
        return true;
    }

    private static TransferStatus refuse(PeerLink link, TransferStatus status) {
        link.counters.recordRefusal(status);
        return status;
    }

    /** NIC 0's poller, every millisecond: ends timed-out and cancelled transfers by breaking their connection. */
    void scanDeadlines(long now) {
        for (PeerLink link : linkArray) { // an array: no iterator per scan
            for (Transfer t : link.slots) {
                if (!t.live || t.ending) {
                    continue;
                }
                boolean cancelled = t.cancelRequested;
                if (cancelled || now - t.deadlineNs > 0) {
                    t.ending = true;
                    t.fail(cancelled ? TransferStatus.CANCELLED : TransferStatus.TIMED_OUT);
                    link.breakConnection(cancelled ? "a transfer was cancelled" : "a transfer timed out");
                }
            }
        }
    }

    /** Called by {@link PeerLink#releaseSlot}'s user: one fewer transfer in flight overall. */
    void transferEnded() {
        inFlightTotal.decrementAndGet();
    }

    @Override
    public boolean cancel(long correlationId) {
        boolean found = false;
        for (PeerLink link : links) {
            for (Transfer t : link.slots) {
                if (t.live && t.correlationId == correlationId && !t.ending) {
                    t.cancelRequested = true;
                    found = true;
                }
            }
        }
        if (found && !nics.isEmpty()) {
            nics.get(0).wake();
        }
        return found;
    }

    /** Work requests posted so far on each queue pair of the current connection to {@code peer} (tests, striping). */
    long[] postedPerQueuePair(String peer) {
        PeerLink link = linksById.get(peer);
        PeerLink.Connection c = link == null ? null : link.connection;
        if (c == null) {
            return new long[0];
        }
        long[] out = new long[c.qps.length];
        for (int i = 0; i < out.length; i++) {
            out[i] = c.qps[i].posted;
        }
        return out;
    }

    @Override
    public int maxInFlightPerPeer() {
        return settings.maxInFlightPerPeer();
    }

    @Override
    public int maxDescriptorsPerTransfer() {
        return settings.maxDescriptorsPerTransfer();
    }

    @Override
    public TransportSnapshot snapshot() {
        List<PeerSnapshot> peers = new ArrayList<>(links.size());
        for (PeerLink link : links) {
            peers.add(link.counters.snapshot(link.nodeId, peerState(link.nodeId)));
        }
        return new TransportSnapshot(name(), localNodeId(), peers, 0, 0, 0, lateBytes.get(), handlerFailures.get());
    }
}
