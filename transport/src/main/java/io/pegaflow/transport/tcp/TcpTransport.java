package io.pegaflow.transport.tcp;

import io.pegaflow.transport.CompletionHandler;
import io.pegaflow.transport.DescriptorList;
import io.pegaflow.transport.LocalRegion;
import io.pegaflow.transport.PeerAddress;
import io.pegaflow.transport.PeerSnapshot;
import io.pegaflow.transport.PeerState;
import io.pegaflow.transport.TransferArguments;
import io.pegaflow.transport.TransferOp;
import io.pegaflow.transport.TransferStatus;
import io.pegaflow.transport.Transport;
import io.pegaflow.transport.TransportException;
import io.pegaflow.transport.TransportSettings;
import io.pegaflow.transport.TransportSnapshot;
import java.io.IOException;
import java.lang.System.Logger.Level;
import java.lang.foreign.MemorySegment;
import java.security.SecureRandom;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.LongAdder;

/**
 * The TCP transport: one-sided READ and WRITE emulated over TCP, with the same contract as the RDMA transport
 * ({@link Transport}). The passive side is a serving thread per inbound connection that moves bytes straight between
 * the socket and its registered regions; the requesting side is one I/O thread over the connections to all peers.
 * Labelled {@code "tcp"} in logs and metrics. See the package documentation for the threads.
 */
public final class TcpTransport implements Transport {

    /** {@link #name()}: the {@code transport} tag of every metric and log line. */
    public static final String NAME = "tcp";

    private static final System.Logger LOG = System.getLogger(TcpTransport.class.getName());

    /** Stands for the transport's threads when asking whether a segment is confined to its owner. */
    private static final Thread ANY_OTHER_THREAD = Thread.ofPlatform().unstarted(() -> {});

    private static final int NEW = 0;
    private static final int STARTED = 1;
    private static final int CLOSED = 2;

    private final TransportSettings settings;
    private final RegionTable regionTable = new RegionTable();
    private final PeerLink[] links;
    private final Map<String, PeerLink> linksById = new HashMap<>();
    private final List<String> peerIds;
    private final TransferSlot[] slots;
    private final int maxInFlight;
    private final TcpClientAgent agent;
    private final PeerConnector connector;
    private final TcpServer server;
    private final AtomicInteger lifecycle = new AtomicInteger(NEW);
    private final SecureRandom keys = new SecureRandom();
    private final LongAdder servedRequests = new LongAdder();
    private final LongAdder servedBytes = new LongAdder();
    private final LongAdder servedRefusals = new LongAdder();
    private volatile TcpTestHook testHook = TcpTestHook.NONE;

    public TcpTransport(TransportSettings settings) {
        this.settings = Objects.requireNonNull(settings, "settings");
        this.maxInFlight = settings.maxInFlightPerPeer();
        List<PeerAddress> peers = settings.peers();
        this.links = new PeerLink[peers.size()];
        List<String> ids = new ArrayList<>();
        for (int i = 0; i < links.length; i++) {
            links[i] = new PeerLink(i, peers.get(i));
            linksById.put(peers.get(i).nodeId(), links[i]);
            ids.add(peers.get(i).nodeId());
        }
        this.peerIds = List.copyOf(ids);
        long slotCount = (long) links.length * maxInFlight;
        if (slotCount > TransferSlot.SLOT_MASK) {
            throw new IllegalArgumentException(
                    "peers × maxInFlightPerPeer must be at most " + TransferSlot.SLOT_MASK + ", got " + slotCount);
        }
        this.slots = new TransferSlot[(int) slotCount];
        for (int i = 0; i < slots.length; i++) {
            slots[i] = new TransferSlot(i, i / maxInFlight, settings.maxDescriptorsPerTransfer());
        }
        String node = settings.localNodeId();
        try {
            this.agent = new TcpClientAgent(
                    this, links, slots, maxInFlight, settings.maxDescriptorsPerTransfer(), "pegaflow-tcp-io-" + node);
        } catch (IOException e) {
            throw new TransportException("transport=tcp node " + node + " cannot open a selector", e);
        }
        this.connector = new PeerConnector(
                node,
                links,
                agent,
                settings.connectTimeoutMs(),
                settings.reconnectBackoffMaxMs(),
                "pegaflow-tcp-connect-" + node);
        this.server = new TcpServer(this, node);
    }

    @Override
    public String name() {
        return NAME;
    }

    @Override
    public String localNodeId() {
        return settings.localNodeId();
    }

    TransportSettings settings() {
        return settings;
    }

    @Override
    public void start() {
        if (!lifecycle.compareAndSet(NEW, STARTED)) {
            throw new IllegalStateException("transport=tcp node " + localNodeId() + " was already started or closed");
        }
        server.bind(settings.bindHost(), settings.listenPort());
        String node = localNodeId();
        agent.start(connector);
        connector.start();
        server.start("pegaflow-tcp-accept-" + node);
        LOG.log(Level.INFO, "transport=tcp node={0} started with {1} peers", node, links.length);
    }

    @Override
    public PeerAddress localAddress() {
        PeerAddress bound = server.boundAddress();
        if (bound == null) {
            throw new IllegalStateException("transport=tcp node " + localNodeId() + " is not started");
        }
        return bound;
    }

    // ---------------------------------------------------------------- regions

    @Override
    public LocalRegion registerRegion(MemorySegment segment) {
        Objects.requireNonNull(segment, "segment");
        if (!segment.isNative()) {
            throw new IllegalArgumentException("segment must be native (off-heap) memory, got a heap segment");
        }
        if (segment.byteSize() == 0) {
            throw new IllegalArgumentException("segment must not be empty");
        }
        if (!segment.isAccessibleBy(ANY_OTHER_THREAD)) {
            throw new IllegalArgumentException(
                    "segment must be reachable from the transport's threads (a shared or global arena), got a"
                            + " confined one");
        }
        if (lifecycle.get() == CLOSED) {
            throw new IllegalStateException("transport=tcp node " + localNodeId() + " is closed");
        }
        synchronized (regionTable) {
            int id = regionTable.freeId();
            TcpRegion region = new TcpRegion(this, localNodeId(), id, segment, nonZeroKey());
            regionTable.put(region);
            LOG.log(
                    Level.INFO,
                    "transport=tcp node={0} registered region {1} ({2,number,#} bytes)",
                    localNodeId(),
                    id,
                    segment.byteSize());
            return region;
        }
    }

    @Override
    public void deregisterRegion(LocalRegion region) {
        if (!(region instanceof TcpRegion tcp) || !tcp.belongsTo(this) || regionTable.get(tcp.regionId()) != tcp) {
            throw new IllegalArgumentException("region " + region + " is not registered with this transport");
        }
        if (!tcp.tryDeregister()) {
            throw new IllegalStateException("region " + tcp.regionId()
                    + " is in use by an in-flight transfer or a peer's request; retry after its completion");
        }
        regionTable.remove(tcp);
        LOG.log(Level.INFO, "transport=tcp node={0} deregistered region {1}", localNodeId(), tcp.regionId());
    }

    @Override
    public long maxRegionBytes() {
        return Long.MAX_VALUE;
    }

    private long nonZeroKey() {
        long key;
        do {
            key = keys.nextLong();
        } while (key == 0);
        return key;
    }

    RegionTable regionTable() {
        return regionTable;
    }

    // ---------------------------------------------------------------- peers

    @Override
    public List<String> peers() {
        return peerIds;
    }

    @Override
    public PeerState peerState(String nodeId) {
        if (lifecycle.get() == CLOSED) {
            return PeerState.CLOSED;
        }
        PeerLink link = linksById.get(nodeId);
        return link == null ? PeerState.UNKNOWN : link.state;
    }

    // ---------------------------------------------------------------- transfers

    @Override
    public TransferStatus read(
            DescriptorList descriptors, long timeoutMs, long correlationId, CompletionHandler handler) {
        return submit(TransferOp.READ, descriptors, timeoutMs, correlationId, handler);
    }

    @Override
    public TransferStatus write(
            DescriptorList descriptors, long timeoutMs, long correlationId, CompletionHandler handler) {
        return submit(TransferOp.WRITE, descriptors, timeoutMs, correlationId, handler);
    }

    private TransferStatus submit(
            TransferOp op, DescriptorList descriptors, long timeoutMs, long correlationId, CompletionHandler handler) {
        TransferArguments.require(descriptors, timeoutMs, handler);
        int state = lifecycle.get();
        if (state == CLOSED) {
            return TransferStatus.CLOSED;
        }
        if (!TransferArguments.countWithin(descriptors, settings.maxDescriptorsPerTransfer())) {
            return TransferStatus.BAD_DESCRIPTOR;
        }
        int count = descriptors.size();
        PeerLink link = linksById.get(descriptors.remoteRegion(0).nodeId());
        if (link == null) {
            return TransferStatus.NOT_CONNECTED;
        }
        if (!descriptorsValid(descriptors, link.nodeId())) {
            return refuse(link, TransferStatus.BAD_DESCRIPTOR);
        }
        if (state != STARTED || link.state != PeerState.CONNECTED) {
            return refuse(link, TransferStatus.NOT_CONNECTED);
        }
        if (link.inFlight.incrementAndGet() > maxInFlight) {
            link.inFlight.decrementAndGet();
            return refuse(link, TransferStatus.BACK_PRESSURED);
        }
        TransferSlot slot = claimSlot(link);
        slot.fill(op, descriptors, correlationId, handler, System.nanoTime(), timeoutMs, settings.verifyChecksums());
        if (!slot.pinLocalRegions()) {
            slot.release();
            link.inFlight.decrementAndGet();
            return refuse(link, TransferStatus.BAD_DESCRIPTOR); // a local region was deregistered meanwhile
        }
        if (!agent.submit(slot)) {
            slot.unpinLocalRegions(slot.count);
            slot.release();
            link.inFlight.decrementAndGet();
            return refuse(link, TransferStatus.CLOSED);
        }
        return TransferStatus.OK;
    }

    private boolean descriptorsValid(DescriptorList descriptors, String peerId) {
        for (int i = 0; i < descriptors.size(); i++) {
            long length = descriptors.lengthBytes(i);
            if (!TransferArguments.remoteSideValid(descriptors, i, peerId)
                    || length > TcpProtocol.MAX_DESCRIPTOR_BYTES) {
                return false;
            }
            if (!(descriptors.localRegion(i) instanceof TcpRegion local)
                    || !local.belongsTo(this)
                    || !local.isRegistered()
                    || !local.contains(descriptors.localOffset(i), length)) {
                return false;
            }
        }
        return true;
    }

    /** A free slot of the peer; one exists, because the in-flight count was raised below the bound first. */
    private TransferSlot claimSlot(PeerLink link) {
        int base = link.index * maxInFlight;
        int start = ThreadLocalRandom.current().nextInt(maxInFlight);
        for (int k = 0; ; k++) {
            TransferSlot slot = slots[base + (start + k) % maxInFlight];
            if (slot.tryClaim()) {
                return slot;
            }
            if (k % maxInFlight == maxInFlight - 1) {
                Thread.onSpinWait();
            }
        }
    }

    private static TransferStatus refuse(PeerLink link, TransferStatus status) {
        link.counters.recordRefusal(status);
        return status;
    }

    @Override
    public boolean cancel(long correlationId) {
        boolean found = false;
        for (TransferSlot slot : slots) {
            if (!slot.isClaimed()) {
                continue;
            }
            long id = slot.requestId;
            if (slot.correlationId == correlationId && slot.requestId == id && slot.isClaimed()) {
                slot.cancelRequestedId = id;
                found = true;
            }
        }
        if (found) {
            agent.requestCancel();
        }
        return found;
    }

    @Override
    public int maxInFlightPerPeer() {
        return maxInFlight;
    }

    @Override
    public int maxDescriptorsPerTransfer() {
        return settings.maxDescriptorsPerTransfer();
    }

    // ---------------------------------------------------------------- counters

    @Override
    public TransportSnapshot snapshot() {
        List<PeerSnapshot> peers = new ArrayList<>(links.length);
        for (PeerLink link : links) {
            peers.add(link.counters.snapshot(link.nodeId(), peerState(link.nodeId())));
        }
        return new TransportSnapshot(
                NAME,
                localNodeId(),
                peers,
                servedRequests.sum(),
                servedBytes.sum(),
                servedRefusals.sum(),
                agent.lateBytesDiscarded(),
                agent.handlerFailures());
    }

    void recordServed(long bytes) {
        servedRequests.increment();
        servedBytes.add(bytes);
    }

    void recordServedRefusal() {
        servedRefusals.increment();
    }

    // ---------------------------------------------------------------- test hooks

    /** Installs a {@link TcpTestHook}; for the contract tests only ({@link TcpTestHook#NONE} removes it). */
    public void setTestHook(TcpTestHook hook) {
        this.testHook = Objects.requireNonNull(hook, "hook");
    }

    TcpTestHook testHook() {
        return testHook;
    }

    // ---------------------------------------------------------------- close

    /**
     * {@inheritDoc}
     *
     * <p>Called from a completion handler (the I/O thread), it cannot wait for that thread: it starts the close and
     * finishes it on a thread of its own.
     */
    @Override
    public void close() {
        int previous = lifecycle.getAndSet(CLOSED);
        if (previous == CLOSED) {
            return;
        }
        if (agent.isAgentThread()) {
            Thread.ofPlatform()
                    .name("pegaflow-tcp-close-" + localNodeId())
                    .daemon(true)
                    .start(this::closeThreads);
            return;
        }
        closeThreads();
    }

    private void closeThreads() {
        try {
            agent.close();
            connector.close();
            server.close();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        LOG.log(Level.INFO, "transport=tcp node={0} closed", localNodeId());
    }
}
