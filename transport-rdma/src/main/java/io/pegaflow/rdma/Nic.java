package io.pegaflow.rdma;

import static io.pegaflow.rdma.verbs.VerbsLayout.*;
import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;
import static java.lang.foreign.ValueLayout.JAVA_SHORT;

import io.pegaflow.rdma.verbs.Verbs;
import io.pegaflow.rdma.verbs.VerbsLayoutException;
import io.pegaflow.transport.TransferStatus;
import io.pegaflow.transport.TransportException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.concurrent.locks.LockSupport;

/**
 * One NIC port: the opened device, its protection domain, one completion queue for all its queue pairs, and the
 * poller thread that owns them. The poller posts every part submitted to this NIC as chains of work requests with
 * selective signalling (the last request of each chain and of each part asks for a completion), polls the CQ, credits
 * completions to their parts in ring order (RC completes in order, so a signalled completion also completes the
 * unsignalled requests before it), moves the queue pairs of a broken connection to ERR and drains their flushed
 * completions, and (NIC 0) ends timed-out and cancelled transfers. Submitters only offer parts into
 * {@link #submitted} and unpark it.
 */
final class Nic implements Runnable {
    private static final System.Logger LOG = System.getLogger(Nic.class.getName());
    private static final int WC_BATCH = 32;
    /**
     * Empty polls before the poller parks, and its park when nothing is in flight. Spinning keeps completion latency
     * low on a real NIC; under an emulated CPU (the Soft-RoCE VM, qemu TCG) the spins of two nodes' pollers starve
     * the node's other threads, so the VM run lowers them ({@code -Dpegaflow.rdma.pollerIdleSpins}).
     */
    private static final int IDLE_SPINS = Integer.getInteger("pegaflow.rdma.pollerIdleSpins", 200);

    private static final long IDLE_PARK_NS = Long.getLong("pegaflow.rdma.pollerIdleParkUs", 2_000L) * 1_000L;
    /** One work request moves at most this much (RC messages may be up to 2^31; keep well inside). */
    static final long MAX_WR_BYTES = 1L << 30;

    final RdmaTransport transport;
    final Verbs verbs;
    final int index;
    final String name;
    final int port;
    final int gidIndex;
    final MemorySegment context;
    final MemorySegment pd;
    final MemorySegment cq;
    final byte[] gid = new byte[16];
    final int lid;
    final boolean ethernet;
    final int activeMtu;
    final int maxRdAtomic;
    final long maxMrSize;
    private final MemorySegment pollCqFn;
    private final MemorySegment postSendFn;
    private final Arena arena = Arena.ofShared();
    private final MemorySegment wcs;
    private final MemorySegment attrScratch;
    final PartQueue submitted;
    private volatile QueuePair[] qps = new QueuePair[0];
    private final Object qpsLock = new Object();
    volatile long epoch;
    private volatile boolean running = true;
    private Thread thread;

    Nic(
            RdmaTransport transport,
            Verbs verbs,
            int index,
            MemorySegment device,
            String name,
            RdmaNic nic,
            int cqe,
            int submitCapacity) {
        this.transport = transport;
        this.verbs = verbs;
        this.index = index;
        this.name = name;
        this.port = nic.port();
        this.gidIndex = nic.gidIndex();
        MemorySegment capture = Verbs.newErrnoCapture(arena);
        MemorySegment ctx = verbs.openDevice(device, capture);
        if (ctx.equals(MemorySegment.NULL)) {
            throw new TransportException(
                    "RDMA unavailable: ibv_open_device(" + name + ") failed: " + Verbs.strerror(Verbs.errno(capture)));
        }
        context = ctx.reinterpret(CONTEXT_OPS_POST_RECV + 8);
        MemorySegment devAttr = arena.allocate(SIZEOF_DEVICE_ATTR, 8);
        MemorySegment portAttr = arena.allocate(SIZEOF_PORT_ATTR, 8);
        MemorySegment gidSeg = arena.allocate(16, 8);
        if (verbs.queryDevice(context, devAttr) != 0
                || verbs.queryPort(context, port, portAttr) != 0
                || verbs.queryGid(context, port, gidIndex, gidSeg) != 0) {
            verbs.closeDevice(context);
            throw new TransportException(
                    "RDMA unavailable: cannot query " + name + " port " + port + " GID index " + gidIndex);
        }
        MemorySegment.copy(gidSeg, JAVA_BYTE, 0, gid, 0, 16);
        lid = Short.toUnsignedInt(portAttr.get(JAVA_SHORT, PORT_ATTR_LID));
        ethernet = portAttr.get(JAVA_BYTE, PORT_ATTR_LINK_LAYER) == Verbs.LINK_LAYER_ETHERNET;
        activeMtu = portAttr.get(JAVA_INT, PORT_ATTR_ACTIVE_MTU);
        maxRdAtomic = Math.max(1, Math.min(16, devAttr.get(JAVA_INT, DEVICE_ATTR_MAX_QP_RD_ATOM)));
        maxMrSize = RdmaProbe.unsignedCapped(devAttr.get(JAVA_LONG, DEVICE_ATTR_MAX_MR_SIZE));
        int maxCqe = devAttr.get(JAVA_INT, DEVICE_ATTR_MAX_CQE);
        pollCqFn = Verbs.contextOp(context, CONTEXT_OPS_POLL_CQ);
        postSendFn = Verbs.contextOp(context, CONTEXT_OPS_POST_SEND);
        if (pollCqFn.equals(MemorySegment.NULL) || postSendFn.equals(MemorySegment.NULL)) {
            verbs.closeDevice(context);
            throw new VerbsLayoutException("ibv_context.ops.poll_cq/post_send of " + name
                    + " are NULL: the binding's ops offsets are wrong for this libibverbs, refusing to start");
        }
        pd = verbs.allocPd(context, capture);
        if (pd.equals(MemorySegment.NULL)) {
            verbs.closeDevice(context);
            throw new TransportException(
                    "ibv_alloc_pd on " + name + " failed: " + Verbs.strerror(Verbs.errno(capture)));
        }
        MemorySegment c = verbs.createCq(context, Math.min(cqe, maxCqe), capture);
        if (c.equals(MemorySegment.NULL)) {
            verbs.deallocPd(pd);
            verbs.closeDevice(context);
            throw new TransportException(
                    "ibv_create_cq on " + name + " failed: " + Verbs.strerror(Verbs.errno(capture)));
        }
        cq = c.reinterpret(8);
        if (cq.get(ADDRESS, CQ_CONTEXT).address() != context.address()) {
            close();
            throw new VerbsLayoutException("struct ibv_cq.context does not point at the device context: the binding's"
                    + " layout is wrong for this libibverbs, refusing to start");
        }
        checkMrLayout();
        wcs = arena.allocate(SIZEOF_WC * WC_BATCH, 8);
        attrScratch = arena.allocate(SIZEOF_QP_ATTR, 8);
        submitted = new PartQueue(submitCapacity);
    }

    /** Start-up check of {@code struct ibv_mr}: register 4 KiB and read back its address and length. */
    private void checkMrLayout() {
        MemorySegment page = arena.allocate(4096, 4096);
        MemorySegment capture = Verbs.newErrnoCapture(arena);
        MemorySegment mr = verbs.regMr(pd, page, 4096, Verbs.ACCESS_LOCAL_WRITE, capture);
        if (mr.equals(MemorySegment.NULL)) {
            int errno = Verbs.errno(capture);
            close();
            throw new TransportException("ibv_reg_mr of 4 KiB on " + name + " failed: " + Verbs.strerror(errno)
                    + (errno == Verbs.ENOMEM ? " (memlock limit? ulimit -l)" : ""));
        }
        mr = mr.reinterpret(MR_RKEY + 4);
        boolean ok = mr.get(ADDRESS, MR_ADDR).address() == page.address() && mr.get(JAVA_LONG, MR_LENGTH) == 4096;
        verbs.deregMr(mr);
        if (!ok) {
            close();
            throw new VerbsLayoutException("struct ibv_mr addr/length do not read back: the binding's layout is wrong"
                    + " for this libibverbs, refusing to start");
        }
    }

    void start(String nodeId) {
        thread = Thread.ofPlatform()
                .daemon()
                .name("pegaflow-rdma-poll-" + nodeId + "-" + name)
                .start(this);
    }

    void wake() {
        Thread t = thread;
        if (t != null) {
            LockSupport.unpark(t);
        }
    }

    void addQp(QueuePair qp) {
        synchronized (qpsLock) {
            QueuePair[] old = qps;
            QueuePair[] now = java.util.Arrays.copyOf(old, old.length + 1);
            now[old.length] = qp;
            qps = now;
        }
    }

    /**
     * Removes a drained queue pair, then waits (at most {@code waitNs}) for the poller to pass one loop or end, so it
     * holds no reference to the queue pair. False when the poller did neither: the caller must not destroy it then.
     */
    boolean removeQp(QueuePair qp, long waitNs) {
        synchronized (qpsLock) {
            QueuePair[] old = qps;
            int n = 0;
            QueuePair[] now = new QueuePair[Math.max(0, old.length - 1)];
            for (QueuePair q : old) {
                if (q != qp && n < now.length) {
                    now[n++] = q;
                }
            }
            qps = java.util.Arrays.copyOf(now, n);
        }
        long seen = epoch;
        long deadline = System.nanoTime() + waitNs;
        while (epoch == seen && pollerAlive()) {
            if (System.nanoTime() - deadline > 0) {
                LOG.log(
                        System.Logger.Level.WARNING,
                        "transport=rdma poller {0} did not pass a loop in {1} ms: queue pair {2} is left allocated,"
                                + " not destroyed under it",
                        thread.getName(),
                        waitNs / 1_000_000L,
                        qp.qpn);
                return false;
            }
            wake();
            LockSupport.parkNanos(100_000L);
        }
        return true;
    }

    private boolean pollerAlive() {
        Thread t = thread;
        return t != null && t.isAlive();
    }

    // ------------------------------------------------------------------------------------------ poller thread

    @Override
    public void run() {
        long lastDeadlineScan = 0;
        int idle = 0;
        while (running) {
            boolean work = false;
            QueuePair[] current = qps;
            for (Part p; (p = submitted.poll()) != null; ) {
                accept(p);
                work = true;
            }
            for (QueuePair qp : current) {
                if (qp.link == null) {
                    continue;
                }
                if (qp.broken) {
                    work |= handleBroken(qp);
                } else if (!qp.waiting.isEmpty()) {
                    work |= post(qp);
                }
            }
            int n = Verbs.pollCq(pollCqFn, cq, WC_BATCH, wcs);
            for (int i = 0; i < n; i++) {
                complete(current, i * SIZEOF_WC);
            }
            work |= n > 0;
            long now = System.nanoTime();
            if (index == 0 && now - lastDeadlineScan > 1_000_000L) {
                lastDeadlineScan = now;
                transport.scanDeadlines(now);
            }
            epoch++;
            if (work) {
                idle = 0;
            } else if (++idle > IDLE_SPINS) {
                LockSupport.parkNanos(transport.hasInFlight() ? 50_000L : IDLE_PARK_NS);
            } else {
                Thread.onSpinWait();
            }
        }
    }

    private void accept(Part part) {
        Transfer t = part.transfer;
        QueuePair qp = part.qp;
        if (t.refusedByPeerTable) {
            t.fail(TransferStatus.REMOTE_ERROR);
            finish(part);
        } else if (qp.broken) {
            t.fail(transport.isClosing() ? TransferStatus.CLOSED : TransferStatus.NOT_CONNECTED);
            finish(part);
        } else {
            qp.waiting.add(part);
        }
    }

    /** Posts as much of the waiting parts as the ring has room for, as one chain. */
    private boolean post(QueuePair qp) {
        long free = qp.depth - (qp.posted - qp.completed);
        if (free <= 0) {
            return false;
        }
        long seq = qp.posted;
        int n = 0;
        MemorySegment previous = null;
        MemorySegment first = null;
        while (n < free && !qp.waiting.isEmpty()) {
            Part part = qp.waiting.peek();
            Transfer t = part.transfer;
            int d = part.cursor;
            RdmaRegion local = t.local[d];
            Handshake.RegionAdvert remote = t.remote[d];
            long off = part.cursorOffset;
            long localOff = t.localOffset[d] + off;
            long remoteOff = t.remoteOffset[d] + off;
            long left = t.length[d] - off;
            long toLocalChunkEnd = local.chunkBytes - localOff % local.chunkBytes;
            long toRemoteChunkEnd = remote.chunkBytes() - remoteOff % remote.chunkBytes();
            int bytes = (int) Math.min(Math.min(left, MAX_WR_BYTES), Math.min(toLocalChunkEnd, toRemoteChunkEnd));
            part.cursorOffset += bytes;
            boolean lastOfPart = false;
            if (part.cursorOffset == t.length[d]) {
                part.cursor++;
                part.cursorOffset = 0;
                if (part.cursor == part.to) {
                    lastOfPart = true;
                    part.allPosted = true;
                    qp.waiting.poll();
                }
            }
            long pos = seq + n;
            int ring = (int) (pos % qp.depth);
            qp.ringPart[ring] = part;
            qp.ringBytes[ring] = bytes;
            qp.ringLast[ring] = lastOfPart;
            boolean signal = lastOfPart || n + 1 == free || qp.waiting.isEmpty();
            MemorySegment wr = qp.fillWr(
                    pos,
                    t.op,
                    local.segment().address() + localOff,
                    local.lkeys[index][(int) (localOff / local.chunkBytes)],
                    remote.base() + remoteOff,
                    remote.rkeys()[index][(int) (remoteOff / remote.chunkBytes())],
                    bytes,
                    signal);
            if (previous != null) {
                previous.set(ADDRESS, SEND_WR_NEXT, wr);
            } else {
                first = wr;
            }
            previous = wr;
            n++;
        }
        if (n == 0) {
            return false;
        }
        // The chain's last request is always signalled (the loop ends on a full ring or an empty queue).
        int rc = Verbs.postSend(postSendFn, qp.qp, first, qp.badWr);
        if (rc != 0) {
            // Nothing of the chain is known to be posted past the bad one; treat the connection as broken (the
            // ring accounting keeps the send queue from overflowing, so this is not an allocation failure).
            long bad = qp.badWr.get(ADDRESS, 0).address();
            long goodCount = bad == 0 ? 0 : (bad - qp.wrAt(seq).address()) / SIZEOF_SEND_WR;
            for (long k = 0; k < goodCount && k < n; k++) {
                qp.ringPart[(int) ((seq + k) % qp.depth)].wrsPosted++;
            }
            qp.posted = seq + Math.max(0, Math.min(goodCount, n));
            LOG.log(
                    System.Logger.Level.WARNING,
                    "transport=rdma ibv_post_send on {0} failed: {1}; reconnecting",
                    name,
                    Verbs.strerror(rc));
            qp.link.breakConnection("ibv_post_send failed: " + Verbs.strerror(rc));
            return true;
        }
        for (int k = 0; k < n; k++) {
            qp.ringPart[(int) ((seq + k) % qp.depth)].wrsPosted++;
        }
        qp.posted = seq + n;
        return true;
    }

    private void complete(QueuePair[] current, long wc) {
        int qpNum = wcs.get(JAVA_INT, wc + WC_QP_NUM);
        long seq = wcs.get(JAVA_LONG, wc + WC_WR_ID);
        int status = wcs.get(JAVA_INT, wc + WC_STATUS);
        QueuePair qp = null;
        for (QueuePair q : current) {
            if (q.qpn == qpNum) {
                qp = q;
                break;
            }
        }
        if (qp == null || qp.link == null || seq < qp.completed || seq >= qp.posted) {
            return; // a passive queue pair, or a completion of a queue pair already torn down
        }
        for (long q = qp.completed; q < seq; q++) {
            completeWr(qp, q, Verbs.WC_SUCCESS);
        }
        completeWr(qp, seq, status);
        qp.completed = seq + 1;
        if (status != Verbs.WC_SUCCESS && !qp.broken) {
            if (status != Verbs.WC_WR_FLUSH_ERR) {
                LOG.log(
                        System.Logger.Level.INFO,
                        "transport=rdma node={0} peer={1}: work request failed on {2}: {3};" + " reconnecting",
                        transport.localNodeId(),
                        qp.link.nodeId,
                        name,
                        WcStatus.name(status));
            }
            qp.link.breakConnection(WcStatus.name(status));
        }
    }

    private void completeWr(QueuePair qp, long seq, int status) {
        int ring = (int) (seq % qp.depth);
        Part part = qp.ringPart[ring];
        qp.ringPart[ring] = null;
        if (part == null) {
            return;
        }
        Transfer t = part.transfer;
        if (status == Verbs.WC_SUCCESS) {
            if (t.ending) {
                transport.lateBytes(qp.ringBytes[ring]); // landed after the transfer's end was decided
            }
            t.bytes.addAndGet(qp.ringBytes[ring]);
        } else {
            t.fail(WcStatus.toTransferStatus(status, transport.isClosing()));
        }
        part.wrsCompleted++;
        if ((part.allPosted || qp.erred) && part.wrsCompleted == part.wrsPosted) {
            finish(part);
        }
    }

    /** A broken connection's queue pair: to ERR once, end what will never be posted, note when drained. */
    private boolean handleBroken(QueuePair qp) {
        if (!qp.erred) {
            qp.erred = true;
            qp.moveToError(attrScratch);
            TransferStatus why = transport.isClosing() ? TransferStatus.CLOSED : TransferStatus.REMOTE_ERROR;
            for (Part p; (p = qp.waiting.poll()) != null; ) {
                p.transfer.fail(p.wrsPosted == 0 && !transport.isClosing() ? TransferStatus.NOT_CONNECTED : why);
                if (p.wrsCompleted == p.wrsPosted) {
                    finish(p);
                }
            }
            return true;
        }
        if (!qp.drained && qp.completed == qp.posted) {
            qp.drained = true;
            qp.link.wakeConnector();
            return true;
        }
        return false;
    }

    private void finish(Part part) {
        if (!part.done) {
            part.done = true;
            part.transfer.partDone();
        }
    }

    /**
     * Stops the poller and waits at most {@code waitMs} for its thread to end. True once it has ended (or never
     * started): from then on no thread polls the CQ or touches the WC array, and {@link #free} may run. The poller
     * runs completion handlers, so a handler that blocks keeps it alive: then false, and nothing may be freed.
     */
    boolean stopPoller(long waitMs) {
        running = false;
        Thread t = thread;
        if (t == null) {
            return true;
        }
        long deadline = System.nanoTime() + waitMs * 1_000_000L;
        while (t.isAlive() && System.nanoTime() - deadline < 0) {
            LockSupport.unpark(t);
            try {
                t.join(Math.max(1, Math.min(50, (deadline - System.nanoTime()) / 1_000_000L)));
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                break;
            }
        }
        return !t.isAlive();
    }

    /** The poller's thread name (logs). */
    String pollerName() {
        Thread t = thread;
        return t == null ? "pegaflow-rdma-poll-?-" + name : t.getName();
    }

    /**
     * Frees the CQ, PD, context and the WC array. Only after {@link #stopPoller} returned true and every queue pair
     * on this NIC is destroyed and every registration deregistered (children before parents).
     */
    void free() {
        close();
    }

    /** Stops a poller that may have started and frees everything (start-up failures: nothing was connected). */
    void stop() {
        if (stopPoller(10_000)) {
            free();
        }
    }

    private void close() {
        if (cq != null) {
            verbs.destroyCq(cq);
        }
        verbs.deallocPd(pd);
        verbs.closeDevice(context);
        arena.close();
    }
}
