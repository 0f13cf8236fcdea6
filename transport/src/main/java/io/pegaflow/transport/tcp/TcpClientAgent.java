package io.pegaflow.transport.tcp;

import io.pegaflow.transport.CompletionHandler;
import io.pegaflow.transport.PeerState;
import io.pegaflow.transport.TransferStatus;
import java.io.IOException;
import java.lang.System.Logger.Level;
import java.nio.ByteBuffer;
import java.nio.channels.SelectionKey;
import java.nio.channels.Selector;
import java.nio.channels.SocketChannel;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Consumer;
import java.util.zip.CRC32C;

/**
 * The I/O thread of the requesting side: one NIO selector over the connections to all peers. It adopts submitted
 * transfers, sends their requests, receives their replies into local memory, enforces deadlines and cancels, and
 * delivers every completion. Being the only thread that writes into transfer memory and the only one that decides a
 * transfer's end is what makes the memory guarantee hold without locks (see {@link ClientConnection}).
 *
 * <p>Other threads reach it only through the bounded submission queue (sized to the slot count, so an offer never
 * fails), the hand-off queue of new connections, the cancel flag and {@link Selector#wakeup()}.
 */
final class TcpClientAgent implements Runnable {

    private static final System.Logger LOG = System.getLogger(TcpTransport.class.getName());

    private static final int SCRATCH_BYTES = 256 * 1024;
    private static final long MAX_SELECT_WAIT_MS = 100;

    private final TcpTransport transport;
    private final PeerLink[] links;
    private final TransferSlot[] slots;
    private final ClientConnection[] connections;
    private final int maxInFlightPerPeer;
    private final int maxDescriptors;
    private final Selector selector;
    private final ArrayBlockingQueue<TransferSlot> submissions;
    private final ConcurrentLinkedQueue<Handoff> handoffs = new ConcurrentLinkedQueue<>();
    private final AtomicBoolean cancelPending = new AtomicBoolean();
    private final Consumer<SelectionKey> keyHandler = this::onKey;
    private final AtomicLong lateBytesDiscarded = new AtomicLong();
    private final AtomicLong handlerFailures = new AtomicLong();
    private final Thread thread;
    private PeerConnector connector;

    final RegionViews views = new RegionViews();
    final ByteBuffer scratch = ByteBuffer.allocateDirect(SCRATCH_BYTES);
    final ByteBuffer zeros = ByteBuffer.allocateDirect(SCRATCH_BYTES);
    private final CRC32C crc = new CRC32C();

    private volatile boolean closing;
    private volatile boolean terminated;
    private boolean anyDeadline;
    private long nextDeadlineNanos;

    private record Handoff(int peerIndex, SocketChannel channel) {}

    TcpClientAgent(
            TcpTransport transport,
            PeerLink[] links,
            TransferSlot[] slots,
            int maxInFlightPerPeer,
            int maxDescriptors,
            String threadName)
            throws IOException {
        this.transport = transport;
        this.links = links;
        this.slots = slots;
        this.connections = new ClientConnection[links.length];
        this.maxInFlightPerPeer = maxInFlightPerPeer;
        this.maxDescriptors = maxDescriptors;
        this.selector = Selector.open();
        this.submissions = new ArrayBlockingQueue<>(Math.max(1, slots.length));
        this.thread = Thread.ofPlatform().name(threadName).daemon(true).unstarted(this);
    }

    void start(PeerConnector peerConnector) {
        this.connector = peerConnector;
        thread.start();
    }

    boolean isAgentThread() {
        return Thread.currentThread() == thread;
    }

    // ---------------------------------------------------------------- called from other threads

    /**
     * Hands a filled, claimed slot over. False if the agent has already terminated and the slot was taken back (the
     * caller then refuses the submission as CLOSED); otherwise the agent completes it.
     */
    boolean submit(TransferSlot slot) {
        if (!submissions.offer(slot)) {
            throw new AssertionError("submission queue full: it is sized to the slot count");
        }
        if (terminated && submissions.remove(slot)) {
            return false;
        }
        selector.wakeup();
        return true;
    }

    void requestCancel() {
        cancelPending.set(true);
        selector.wakeup();
    }

    /** A connected, handshaken, non-blocking channel from the connector. */
    void handOff(int peerIndex, SocketChannel channel) {
        handoffs.add(new Handoff(peerIndex, channel));
        selector.wakeup();
        if (terminated) {
            closeHandoffs();
        }
    }

    long lateBytesDiscarded() {
        return lateBytesDiscarded.get();
    }

    long handlerFailures() {
        return handlerFailures.get();
    }

    /** Stops the thread: in-flight transfers complete as CLOSED. Waits for it unless called on it. */
    void close() throws InterruptedException {
        closing = true;
        selector.wakeup();
        if (thread.getState() == Thread.State.NEW) {
            shutdown(); // never started: nothing in flight, just release the selector
            return;
        }
        if (!isAgentThread()) {
            thread.join(TimeUnit.SECONDS.toMillis(10));
        }
    }

    // ---------------------------------------------------------------- the duty cycle

    @Override
    public void run() {
        try {
            while (!closing) {
                long waitMs = selectWaitMs();
                if (waitMs == 0) {
                    selector.selectNow(keyHandler);
                } else {
                    selector.select(keyHandler, waitMs);
                }
                adoptConnections();
                adoptSubmissions();
                if (cancelPending.getAndSet(false)) {
                    processCancels();
                }
                checkDeadlines(System.nanoTime());
            }
        } catch (Throwable t) {
            LOG.log(Level.ERROR, "transport=tcp I/O thread failed; closing its connections", t);
        } finally {
            shutdown();
        }
    }

    private long selectWaitMs() {
        if (!submissions.isEmpty() || !handoffs.isEmpty()) {
            return 0;
        }
        if (!anyDeadline) {
            return MAX_SELECT_WAIT_MS;
        }
        long untilNs = nextDeadlineNanos - System.nanoTime();
        if (untilNs <= 0) {
            return 0;
        }
        return Math.min(MAX_SELECT_WAIT_MS, Math.max(1, TimeUnit.NANOSECONDS.toMillis(untilNs + 999_999)));
    }

    private void onKey(SelectionKey key) {
        ClientConnection conn = (ClientConnection) key.attachment();
        try {
            if (key.isReadable()) {
                conn.onReadable();
            }
            if (!conn.isClosed() && key.isValid() && key.isWritable()) {
                conn.flush();
            }
        } catch (IOException | RuntimeException e) {
            lost(conn, e.toString());
        }
    }

    private void adoptConnections() {
        Handoff h;
        while ((h = handoffs.poll()) != null) {
            PeerLink link = links[h.peerIndex()];
            try {
                SelectionKey key = h.channel().register(selector, SelectionKey.OP_READ);
                ClientConnection conn =
                        new ClientConnection(link, h.channel(), key, this, maxInFlightPerPeer, maxDescriptors);
                key.attach(conn);
                connections[link.index] = conn;
                link.counters.recordConnect();
                link.state = PeerState.CONNECTED;
            } catch (IOException e) {
                closeQuietly(h.channel());
                link.lossReason = "could not register the connection: " + e;
                link.state = PeerState.DISCONNECTED;
                link.needsConnect = true;
                connector.wake();
            }
        }
    }

    private void adoptSubmissions() {
        TransferSlot slot;
        while ((slot = submissions.poll()) != null) {
            slot.ioState = TransferSlot.IO_QUEUED;
            slot.ioBytesDone = 0;
            if (slot.cancelRequestedId == slot.requestId) {
                complete(slot, TransferStatus.CANCELLED);
                continue;
            }
            ClientConnection conn = connections[slot.peerIndex];
            if (conn == null) {
                complete(slot, TransferStatus.NOT_CONNECTED);
                continue;
            }
            noteDeadline(slot.deadlineNanos);
            try {
                conn.enqueue(slot.requestId);
            } catch (IOException | RuntimeException e) {
                lost(conn, e.toString());
            }
        }
    }

    private void processCancels() {
        for (TransferSlot slot : slots) {
            if (slot.ioState != TransferSlot.IO_IDLE && slot.cancelRequestedId == slot.requestId) {
                complete(slot, TransferStatus.CANCELLED);
            }
        }
    }

    private void noteDeadline(long deadlineNanos) {
        if (!anyDeadline || deadlineNanos - nextDeadlineNanos < 0) {
            nextDeadlineNanos = deadlineNanos;
            anyDeadline = true;
        }
    }

    private void checkDeadlines(long now) {
        if (!anyDeadline || now - nextDeadlineNanos < 0) {
            return;
        }
        anyDeadline = false;
        for (TransferSlot slot : slots) {
            if (slot.ioState == TransferSlot.IO_IDLE) {
                continue;
            }
            if (now - slot.deadlineNanos >= 0) {
                complete(slot, TransferStatus.TIMED_OUT);
            } else {
                noteDeadline(slot.deadlineNanos);
            }
        }
    }

    /** Drops a connection: its transfers fail (never sent: NOT_CONNECTED; sent: REMOTE_ERROR); the connector redials. */
    private void lost(ClientConnection conn, String reason) {
        if (conn.isClosed()) {
            return;
        }
        conn.close();
        PeerLink link = conn.link;
        if (connections[link.index] == conn) {
            connections[link.index] = null;
        }
        link.state = PeerState.DISCONNECTED;
        failPeerTransfers(link.index, false);
        link.lossReason = reason;
        link.needsConnect = true;
        connector.wake();
    }

    private void failPeerTransfers(int peerIndex, boolean closed) {
        int base = peerIndex * maxInFlightPerPeer;
        for (int i = base; i < base + maxInFlightPerPeer; i++) {
            TransferSlot slot = slots[i];
            if (slot.ioState == TransferSlot.IO_IDLE) {
                continue;
            }
            TransferStatus status;
            if (closed) {
                status = TransferStatus.CLOSED;
            } else if (slot.ioState == TransferSlot.IO_QUEUED) {
                status = TransferStatus.NOT_CONNECTED;
            } else {
                status = TransferStatus.REMOTE_ERROR;
            }
            complete(slot, status);
        }
    }

    private void shutdown() {
        for (ClientConnection conn : connections) {
            if (conn != null) {
                conn.close();
            }
        }
        for (int p = 0; p < links.length; p++) {
            connections[p] = null;
            links[p].state = PeerState.CLOSED;
            failPeerTransfers(p, true);
        }
        terminated = true;
        TransferSlot slot;
        while ((slot = submissions.poll()) != null) {
            slot.ioState = TransferSlot.IO_QUEUED;
            complete(slot, TransferStatus.CLOSED);
        }
        closeHandoffs();
        try {
            selector.close();
        } catch (IOException ignored) {
            // closing
        }
    }

    private void closeHandoffs() {
        Handoff h;
        while ((h = handoffs.poll()) != null) {
            closeQuietly(h.channel());
        }
    }

    // ---------------------------------------------------------------- used by the connections

    /** The slot of {@code requestId} if that request is still live in {@code ioState}; null if it is stale. */
    TransferSlot liveSlot(long requestId, int ioState) {
        int index = TransferSlot.slotIndexOf(requestId);
        if (index >= slots.length) {
            return null;
        }
        TransferSlot slot = slots[index];
        return slot.ioState == ioState && slot.requestId == requestId ? slot : null;
    }

    /**
     * Ends a transfer: counts it, frees its slot and runs its handler. After this, no connection touches its memory:
     * every path that reads into or writes out of local memory first checks {@code ioState}, which this sets idle.
     */
    void complete(TransferSlot slot, TransferStatus status) {
        long bytes = status == TransferStatus.OK ? slot.totalBytes : slot.ioBytesDone;
        slot.ioState = TransferSlot.IO_IDLE;
        slot.unpinLocalRegions(slot.count);
        PeerLink link = links[slot.peerIndex];
        link.counters.recordCompletion(slot.op, status, bytes, System.nanoTime() - slot.submitNanos);
        long correlationId = slot.correlationId;
        CompletionHandler handler = slot.handler;
        slot.release();
        link.inFlight.decrementAndGet();
        try {
            handler.onComplete(correlationId, status, bytes);
        } catch (Throwable t) {
            handlerFailures.lazySet(handlerFailures.get() + 1);
        }
    }

    TcpTestHook hook() {
        return transport.testHook();
    }

    void addLateBytes(long n) {
        lateBytesDiscarded.lazySet(lateBytesDiscarded.get() + n);
    }

    /** CRC32C of a local range, read through this thread's views (no allocation). */
    int crcOf(TcpRegion region, long offset, long length) {
        crc.reset();
        long done = 0;
        while (done < length) {
            ByteBuffer view = views.view(region, offset + done, length - done);
            int n = view.remaining();
            crc.update(view);
            done += n;
        }
        return (int) crc.getValue();
    }

    private static void closeQuietly(SocketChannel channel) {
        try {
            channel.close();
        } catch (IOException ignored) {
            // closing
        }
    }
}
