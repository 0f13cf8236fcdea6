package io.pegaflow.rdma;

import io.pegaflow.transport.PeerAddress;
import io.pegaflow.transport.PeerCounters;
import io.pegaflow.transport.PeerState;
import io.pegaflow.transport.TransferStatus;
import java.io.BufferedInputStream;
import java.io.BufferedOutputStream;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.EOFException;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.locks.LockSupport;

/**
 * This node's side of one peer of the static list: its in-flight slots, counters and the current connection (a
 * side-channel socket, the queue pairs this node posts to, the peer's announced regions). The connector thread
 * builds connections; whoever sees one fail (a poller on an error completion or a timeout, the side-channel reader on
 * EOF) {@link #breakConnection breaks} it; the connector tears it down once every queue pair is drained, then dials
 * again with back-off.
 */
final class PeerLink {
    private static final System.Logger LOG = System.getLogger(PeerLink.class.getName());
    /** How long the connector waits for a poller to let go of a queue pair before leaving it allocated. */
    private static final long REMOVE_WAIT_NS = 10_000_000_000L;

    final RdmaTransport transport;
    final PeerAddress address;
    final String nodeId;
    final PeerCounters counters = new PeerCounters();
    final Transfer[] slots;
    final AtomicInteger inFlight = new AtomicInteger();
    volatile PeerState state = PeerState.CONNECTING;
    volatile Connection connection;
    long nextAttemptNs;
    long backoffMs = 10;
    /** The socket of the connection attempt in progress (connector thread), for close to cut a blocked handshake. */
    private volatile Socket dialling;

    private int stripe;

    /** One connection attempt's resources. */
    static final class Connection {
        final Socket socket;
        final QueuePair[] qps; // [nic * qpsPerNic + i]
        final ConcurrentHashMap<Integer, Handshake.RegionAdvert> regions = new ConcurrentHashMap<>();
        final AtomicBoolean broken = new AtomicBoolean();
        Thread reader;

        Connection(Socket socket, QueuePair[] qps) {
            this.socket = socket;
            this.qps = qps;
        }

        boolean drained() {
            for (QueuePair qp : qps) {
                if (!qp.drained) {
                    return false;
                }
            }
            return true;
        }
    }

    PeerLink(RdmaTransport transport, PeerAddress address, int maxInFlight, int maxDescriptors, int maxParts) {
        this.transport = transport;
        this.address = address;
        this.nodeId = address.nodeId();
        slots = new Transfer[maxInFlight];
        for (int i = 0; i < maxInFlight; i++) {
            slots[i] = new Transfer(this, maxDescriptors, maxParts);
        }
    }

    /** A free slot; one exists because {@link #inFlight} was raised below the bound first. */
    Transfer claimSlot() {
        int start = java.util.concurrent.ThreadLocalRandom.current().nextInt(slots.length);
        for (int k = 0; ; k++) {
            Transfer t = slots[(start + k) % slots.length];
            if (!t.claimed.get() && t.claimed.compareAndSet(false, true)) {
                return t;
            }
            if (k % slots.length == slots.length - 1) {
                Thread.onSpinWait();
            }
        }
    }

    void releaseSlot(Transfer t) {
        t.live = false;
        t.clear();
        t.claimed.set(false);
        inFlight.decrementAndGet();
    }

    /** Releases the slot of a transfer that was published to the pollers and has completed. */
    private void releaseCompleted(Transfer t) {
        releaseSlot(t);
        transport.transferEnded();
    }

    /** Which queue pair the next single-part transfer goes to: round robin over all of the connection's. */
    int nextStripe(int qpCount) {
        int s = stripe++;
        return Math.floorMod(s, qpCount);
    }

    /** The last part of {@code t} is done: every work request completed or was flushed. Any poller thread. */
    void complete(Transfer t) {
        TransferStatus status = t.status();
        long bytes = t.bytes.get();
        long latency = System.nanoTime() - t.submitNs;
        for (int i = 0; i < t.count; i++) {
            t.local[i].unpin();
        }
        synchronized (counters) { // single-writer counters, but parts may finish on different NICs' pollers
            counters.recordCompletion(t.op, status, bytes, latency);
        }
        io.pegaflow.transport.CompletionHandler handler = t.handler;
        long id = t.correlationId;
        releaseCompleted(t);
        try {
            handler.onComplete(id, status, bytes);
        } catch (RuntimeException e) {
            transport.handlerFailed();
        }
    }

    /** Marks the current connection broken (once): its queue pairs go to ERR and drain; a reconnect follows. */
    void breakConnection(String reason) {
        Connection c = connection;
        if (c == null || !c.broken.compareAndSet(false, true)) {
            return;
        }
        if (state == PeerState.CONNECTED) {
            state = transport.isClosing() ? PeerState.CLOSED : PeerState.DISCONNECTED;
            LOG.log(
                    System.Logger.Level.INFO,
                    "transport=rdma node={0} peer={1} connection lost: {2}",
                    transport.localNodeId(),
                    nodeId,
                    reason);
        }
        for (QueuePair qp : c.qps) {
            qp.broken = true;
            qp.nic.wake();
        }
        wakeConnector();
    }

    void wakeConnector() {
        transport.wakeConnector();
    }

    /**
     * Connector thread: tears down a broken connection once drained; dials when due. Returns whether anything
     * happened.
     */
    boolean tend(long now) {
        Connection c = connection;
        if (c != null) {
            if (!c.broken.get() || !c.drained()) {
                return false;
            }
            teardown(c);
            connection = null;
            nextAttemptNs = now + backoffMs * 1_000_000L;
            return true;
        }
        if (transport.isClosing() || now - nextAttemptNs < 0) {
            return false;
        }
        try {
            connect();
            backoffMs = 10;
        } catch (IOException | Handshake.BadHandshake | RuntimeException e) {
            if (state != PeerState.CLOSED) {
                state = state == PeerState.CONNECTED ? PeerState.DISCONNECTED : state;
            }
            LOG.log(
                    System.Logger.Level.DEBUG,
                    "transport=rdma node={0} peer={1} connect failed: {2}",
                    transport.localNodeId(),
                    nodeId,
                    e.toString());
            nextAttemptNs = System.nanoTime() + backoffMs * 1_000_000L;
            backoffMs = Math.min(backoffMs * 2, transport.settings().reconnectBackoffMaxMs());
        }
        return true;
    }

    private void connect() throws IOException, Handshake.BadHandshake {
        RdmaSettings rdma = transport.rdma();
        Socket socket = new Socket();
        List<QueuePair> created = new ArrayList<>();
        boolean ok = false;
        dialling = socket;
        try {
            if (transport.isClosing()) {
                throw new IOException("transport closing"); // close may have looked at dialling before it was set
            }
            int timeout = (int) Math.min(Integer.MAX_VALUE, transport.settings().connectTimeoutMs());
            socket.connect(new InetSocketAddress(address.host(), address.port()), timeout);
            socket.setTcpNoDelay(true);
            socket.setSoTimeout(timeout);
            DataOutputStream out = new DataOutputStream(new BufferedOutputStream(socket.getOutputStream()));
            DataInputStream in = new DataInputStream(new BufferedInputStream(socket.getInputStream()));
            List<Handshake.QpParams> mine = new ArrayList<>();
            List<Integer> qpsPerNic = new ArrayList<>();
            for (Nic nic : transport.nics()) {
                qpsPerNic.add(rdma.qpsPerPeer(nic.index));
                for (int i = 0; i < rdma.qpsPerPeer(nic.index); i++) {
                    QueuePair qp = QueuePair.create(
                            nic,
                            this,
                            rdma.queueDepth(nic.index),
                            transport.settings().maxInFlightPerPeer());
                    created.add(qp);
                    mine.add(qp.params());
                }
            }
            Handshake.writeHello(out, new Handshake.Hello(transport.localNodeId(), qpsPerNic, mine));
            Handshake.Reply reply;
            try {
                reply = Handshake.readReply(in);
            } catch (EOFException e) {
                throw Handshake.truncated(e);
            }
            if (!reply.nodeId().equals(nodeId)) {
                throw new Handshake.BadHandshake("the peer at " + address.host() + ":" + address.port() + " is node "
                        + reply.nodeId() + ", the topology says " + nodeId);
            }
            if (reply.qps().size() != created.size()) {
                throw new Handshake.BadHandshake(
                        "the peer answered with " + reply.qps().size() + " queue pairs, expected " + created.size());
            }
            for (int i = 0; i < created.size(); i++) {
                created.get(i).connect(reply.qps().get(i), rdma.ackTimeoutExponent(), rdma.retryCount());
            }
            socket.setSoTimeout(0);
            Connection c = new Connection(socket, created.toArray(new QueuePair[0]));
            for (Handshake.RegionAdvert r : reply.regions()) {
                if (r.rkeys().length != transport.nics().size()) {
                    throw new Handshake.BadHandshake("region " + r.regionId() + " has rkeys for " + r.rkeys().length
                            + " NICs, expected " + transport.nics().size());
                }
                c.regions.put(r.regionId(), r);
            }
            for (QueuePair qp : created) {
                qp.nic.addQp(qp);
            }
            connection = c;
            c.reader = Thread.ofPlatform()
                    .daemon()
                    .name("pegaflow-rdma-link-" + transport.localNodeId() + "-" + nodeId)
                    .start(() -> readAnnouncements(c, in));
            counters.recordConnect();
            state = PeerState.CONNECTED;
            ok = true;
            LOG.log(
                    System.Logger.Level.INFO,
                    "transport=rdma node={0} peer={1} connected: {2} queue pairs",
                    transport.localNodeId(),
                    nodeId,
                    created.size());
        } finally {
            dialling = null;
            if (!ok) {
                for (QueuePair qp : created) {
                    qp.destroy(); // never added to a poller: no thread but this one has seen them
                }
                socket.close();
            }
        }
    }

    /** Close: cuts a handshake the connector is blocked in (connect, or the peer's reply), so the connector ends. */
    void abortDial() {
        Socket s = dialling;
        if (s != null) {
            try {
                s.close();
            } catch (IOException ignored) {
                // closing anyway
            }
        }
    }

    /** The side channel after the handshake: region announcements until EOF, which means the peer is gone. */
    private void readAnnouncements(Connection c, DataInputStream in) {
        try {
            for (; ; ) {
                byte type = in.readByte();
                if (type == Handshake.REGION_ADDED) {
                    Handshake.RegionAdvert r = Handshake.readRegion(in);
                    c.regions.put(r.regionId(), r);
                } else if (type == Handshake.REGION_REMOVED) {
                    int id = in.readInt();
                    long key = in.readLong();
                    c.regions.computeIfPresent(id, (k, r) -> r.key() == key ? null : r);
                } else {
                    throw new Handshake.BadHandshake("unknown announcement " + type);
                }
            }
        } catch (IOException | Handshake.BadHandshake e) {
            breakConnection(c.broken.get() ? "closed" : "side channel: " + e);
        }
    }

    /**
     * Connector thread, once {@code c} is drained: frees its queue pairs once their poller has let go of them (a queue
     * pair the poller may still hold is left allocated rather than freed under it).
     */
    private void teardown(Connection c) {
        closeSocket(c);
        for (QueuePair qp : c.qps) {
            if (qp.nic.removeQp(qp, REMOVE_WAIT_NS)) {
                qp.destroy();
            }
        }
        joinReader(c);
    }

    private static void closeSocket(Connection c) {
        try {
            c.socket.close();
        } catch (IOException ignored) {
            // closing anyway
        }
    }

    private static void joinReader(Connection c) {
        if (c.reader != null) {
            try {
                c.reader.join(1_000);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
    }

    /**
     * Close, step 1 (the connector has ended): break the connection and wait, until {@code deadlineNs}, for the
     * pollers to drain it (its transfers complete there, CLOSED). False when it did not drain in time.
     */
    boolean drainForClose(long deadlineNs) {
        breakConnection("transport closed");
        Connection c = connection;
        while (c != null && !c.drained() && System.nanoTime() - deadlineNs < 0) {
            LockSupport.parkNanos(200_000L);
        }
        state = PeerState.CLOSED;
        return c == null || c.drained();
    }

    /**
     * Close, step 2, once every poller thread has ended: destroys the connection's queue pairs (drained or not: no
     * thread uses them any more, and once destroyed the NIC writes nothing more into the transfers' memory), then
     * completes what never drained as CLOSED. Only then may registrations and the pool go.
     */
    void destroyAfterPollersEnded() {
        Connection c = connection;
        if (c != null) {
            closeSocket(c);
            for (QueuePair qp : c.qps) {
                qp.destroy();
            }
            joinReader(c);
            connection = null;
        }
        for (Transfer t : slots) {
            if (t.live) {
                t.fail(TransferStatus.CLOSED);
                t.partsLeft.set(0);
                complete(t);
            }
        }
    }

    /**
     * Close when a thread that may still use the queue pairs did not end (a completion handler that blocks the
     * poller): nothing is freed, but the queue pairs go to ERR so the NIC stops writing into the transfers' memory.
     */
    void stopNicWritesForLeak() {
        Connection c = connection;
        if (c == null) {
            return;
        }
        closeSocket(c);
        try (Arena a = Arena.ofConfined()) {
            MemorySegment attr = a.allocate(io.pegaflow.rdma.verbs.VerbsLayout.SIZEOF_QP_ATTR, 8);
            for (QueuePair qp : c.qps) {
                qp.moveToError(attr);
            }
        }
    }
}
