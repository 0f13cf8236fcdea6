package io.pegaflow.rdma;

import static io.pegaflow.rdma.verbs.VerbsLayout.*;
import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;
import static java.lang.foreign.ValueLayout.JAVA_SHORT;

import io.pegaflow.rdma.verbs.Verbs;
import io.pegaflow.transport.TransferOp;
import io.pegaflow.transport.TransportException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayDeque;
import java.util.concurrent.ThreadLocalRandom;

/**
 * One RC queue pair and its preallocated send ring: {@code depth} {@code struct ibv_send_wr} with one
 * {@code struct ibv_sge} each, plus what each ring position carries ({@link Part}, bytes). Created and connected on
 * the control path (INIT → RTR → RTS, RoCE with a GRH and the configured GID index, InfiniBand by LID); once
 * connected, only its NIC's poller thread posts to it and completes its work requests. Passive queue pairs (the
 * responder side of a peer's connection) have a ring of one and never post.
 */
final class QueuePair {
    final Nic nic;
    final PeerLink link; // null for a passive queue pair
    final int depth;
    final MemorySegment qp;
    final int qpn;
    final int psn;
    private final Arena arena;
    final MemorySegment wrs;
    final MemorySegment sges;
    final MemorySegment badWr;
    final Part[] ringPart;
    final int[] ringBytes;
    final boolean[] ringLast;
    final ArrayDeque<Part> waiting;
    /** Views of each ring position's WR and SGE, made once: filling a work request allocates nothing. */
    private final MemorySegment[] wrAt;

    private final MemorySegment[] sgeAt;
    long posted;
    long completed;

    /** The connection this queue pair belongs to is broken: post nothing more, move to ERR, drain. */
    volatile boolean broken;
    /** Poller thread only: moved to ERR already. */
    boolean erred;
    /** Every posted work request has completed after the move to ERR: the control path may destroy it. */
    volatile boolean drained;

    private QueuePair(Nic nic, PeerLink link, int depth, MemorySegment qp, Arena arena, int waitingCapacity) {
        this.nic = nic;
        this.link = link;
        this.depth = depth;
        this.qp = qp;
        this.arena = arena;
        this.qpn = qp.get(JAVA_INT, QP_QP_NUM);
        this.psn = ThreadLocalRandom.current().nextInt(1 << 24);
        wrs = arena.allocate(SIZEOF_SEND_WR * depth, 8);
        sges = arena.allocate(SIZEOF_SGE * depth, 8);
        badWr = arena.allocate(ADDRESS);
        ringPart = new Part[depth];
        ringBytes = new int[depth];
        ringLast = new boolean[depth];
        waiting = new ArrayDeque<>(waitingCapacity);
        wrAt = new MemorySegment[depth];
        sgeAt = new MemorySegment[depth];
        for (int i = 0; i < depth; i++) {
            wrAt[i] = wrs.asSlice(i * SIZEOF_SEND_WR, SIZEOF_SEND_WR);
            sgeAt[i] = sges.asSlice(i * SIZEOF_SGE, SIZEOF_SGE);
            wrAt[i].set(ADDRESS, SEND_WR_SG_LIST, sgeAt[i]);
            wrAt[i].set(JAVA_INT, SEND_WR_NUM_SGE, 1);
        }
    }

    /** Creates an RC queue pair in RESET on {@code nic} with room for {@code depth} outstanding sends. */
    static QueuePair create(Nic nic, PeerLink link, int depth, int waitingCapacity) {
        Arena arena = Arena.ofShared();
        try {
            MemorySegment init = arena.allocate(SIZEOF_QP_INIT_ATTR, 8);
            init.set(ADDRESS, QP_INIT_ATTR_SEND_CQ, nic.cq);
            init.set(ADDRESS, QP_INIT_ATTR_RECV_CQ, nic.cq);
            init.set(JAVA_INT, QP_INIT_ATTR_CAP_MAX_SEND_WR, depth);
            init.set(JAVA_INT, QP_INIT_ATTR_CAP_MAX_RECV_WR, 1);
            init.set(JAVA_INT, QP_INIT_ATTR_CAP_MAX_SEND_SGE, 1);
            init.set(JAVA_INT, QP_INIT_ATTR_CAP_MAX_RECV_SGE, 1);
            init.set(JAVA_INT, QP_INIT_ATTR_QP_TYPE, Verbs.QPT_RC);
            init.set(JAVA_INT, QP_INIT_ATTR_SQ_SIG_ALL, 0);
            MemorySegment capture = Verbs.newErrnoCapture(arena);
            MemorySegment qp = nic.verbs.createQp(nic.pd, init, capture);
            if (qp.equals(MemorySegment.NULL)) {
                int errno = Verbs.errno(capture);
                throw new TransportException("ibv_create_qp on " + nic.name + " failed: " + Verbs.strerror(errno));
            }
            qp = qp.reinterpret(QP_STATE + 4);
            MemorySegment qpContext = qp.get(ADDRESS, QP_CONTEXT);
            if (qpContext.address() != nic.context.address()) {
                nic.verbs.destroyQp(qp);
                throw new io.pegaflow.rdma.verbs.VerbsLayoutException(
                        "struct ibv_qp.context does not point at the device context: the binding's layout is wrong"
                                + " for this libibverbs, refusing to start");
            }
            return new QueuePair(nic, link, depth, qp, arena, waitingCapacity);
        } catch (RuntimeException e) {
            arena.close();
            throw e;
        }
    }

    Handshake.QpParams params() {
        return new Handshake.QpParams(qpn, psn, nic.lid, nic.gid.clone(), nic.activeMtu);
    }

    /** RESET → INIT → RTR → RTS against the peer's queue pair. */
    void connect(Handshake.QpParams remote, int ackTimeoutExponent, int retryCount) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment attr = a.allocate(SIZEOF_QP_ATTR, 8);
            attr.set(JAVA_INT, QP_ATTR_QP_STATE, Verbs.QPS_INIT);
            attr.set(JAVA_SHORT, QP_ATTR_PKEY_INDEX, (short) 0);
            attr.set(JAVA_BYTE, QP_ATTR_PORT_NUM, (byte) nic.port);
            attr.set(
                    JAVA_INT,
                    QP_ATTR_QP_ACCESS_FLAGS,
                    Verbs.ACCESS_LOCAL_WRITE | Verbs.ACCESS_REMOTE_READ | Verbs.ACCESS_REMOTE_WRITE);
            modify(attr, Verbs.QP_STATE | Verbs.QP_PKEY_INDEX | Verbs.QP_PORT | Verbs.QP_ACCESS_FLAGS, "INIT");

            attr.fill((byte) 0);
            attr.set(JAVA_INT, QP_ATTR_QP_STATE, Verbs.QPS_RTR);
            attr.set(JAVA_INT, QP_ATTR_PATH_MTU, Math.min(nic.activeMtu, remote.mtu()));
            attr.set(JAVA_INT, QP_ATTR_DEST_QP_NUM, remote.qpn());
            attr.set(JAVA_INT, QP_ATTR_RQ_PSN, remote.psn());
            attr.set(JAVA_BYTE, QP_ATTR_MAX_DEST_RD_ATOMIC, (byte) nic.maxRdAtomic);
            attr.set(JAVA_BYTE, QP_ATTR_MIN_RNR_TIMER, (byte) 12);
            attr.set(JAVA_BYTE, QP_ATTR_AH_ATTR_PORT_NUM, (byte) nic.port);
            if (nic.ethernet) {
                // RoCE: every packet carries a GRH addressed by GID (RoCE v2: UDP/IP, routable).
                attr.set(JAVA_BYTE, QP_ATTR_AH_ATTR_IS_GLOBAL, (byte) 1);
                MemorySegment.copy(MemorySegment.ofArray(remote.gid()), 0, attr, QP_ATTR_AH_ATTR_GRH_DGID, 16);
                attr.set(JAVA_BYTE, QP_ATTR_AH_ATTR_GRH_SGID_INDEX, (byte) nic.gidIndex);
                attr.set(JAVA_BYTE, QP_ATTR_AH_ATTR_GRH_HOP_LIMIT, (byte) 64);
            } else {
                // InfiniBand inside one subnet: addressed by LID, no GRH.
                attr.set(JAVA_SHORT, QP_ATTR_AH_ATTR_DLID, (short) remote.lid());
            }
            modify(
                    attr,
                    Verbs.QP_STATE
                            | Verbs.QP_AV
                            | Verbs.QP_PATH_MTU
                            | Verbs.QP_DEST_QPN
                            | Verbs.QP_RQ_PSN
                            | Verbs.QP_MAX_DEST_RD_ATOMIC
                            | Verbs.QP_MIN_RNR_TIMER,
                    "RTR");

            attr.fill((byte) 0);
            attr.set(JAVA_INT, QP_ATTR_QP_STATE, Verbs.QPS_RTS);
            attr.set(JAVA_BYTE, QP_ATTR_TIMEOUT, (byte) ackTimeoutExponent);
            attr.set(JAVA_BYTE, QP_ATTR_RETRY_CNT, (byte) retryCount);
            attr.set(JAVA_BYTE, QP_ATTR_RNR_RETRY, (byte) 7);
            attr.set(JAVA_INT, QP_ATTR_SQ_PSN, psn);
            attr.set(JAVA_BYTE, QP_ATTR_MAX_RD_ATOMIC, (byte) nic.maxRdAtomic);
            modify(
                    attr,
                    Verbs.QP_STATE
                            | Verbs.QP_TIMEOUT
                            | Verbs.QP_RETRY_CNT
                            | Verbs.QP_RNR_RETRY
                            | Verbs.QP_SQ_PSN
                            | Verbs.QP_MAX_QP_RD_ATOMIC,
                    "RTS");
        }
    }

    private void modify(MemorySegment attr, int mask, String state) {
        int rc = nic.verbs.modifyQp(qp, attr, mask);
        if (rc != 0) {
            throw new TransportException("ibv_modify_qp to " + state + " on " + nic.name + " failed: "
                    + Verbs.strerror(rc) + " (errno " + rc + ")");
        }
    }

    /** Moves the queue pair to ERR: outstanding work requests complete as flushed. Poller thread or control path. */
    void moveToError(MemorySegment attr) {
        attr.fill((byte) 0);
        attr.set(JAVA_INT, QP_ATTR_QP_STATE, Verbs.QPS_ERR);
        nic.verbs.modifyQp(qp, attr, Verbs.QP_STATE);
    }

    /** Writes work request {@code seq}'s ring entry (poller thread). */
    MemorySegment fillWr(
            long seq,
            TransferOp op,
            long localAddress,
            int lkey,
            long remoteAddress,
            int rkey,
            int bytes,
            boolean signal) {
        int pos = (int) (seq % depth);
        MemorySegment wr = wrAt[pos];
        MemorySegment sge = sgeAt[pos];
        sge.set(JAVA_LONG, SGE_ADDR, localAddress);
        sge.set(JAVA_INT, SGE_LENGTH, bytes);
        sge.set(JAVA_INT, SGE_LKEY, lkey);
        wr.set(JAVA_LONG, SEND_WR_WR_ID, seq);
        wr.set(ADDRESS, SEND_WR_NEXT, MemorySegment.NULL);
        wr.set(JAVA_INT, SEND_WR_OPCODE, op == TransferOp.READ ? Verbs.WR_RDMA_READ : Verbs.WR_RDMA_WRITE);
        wr.set(JAVA_INT, SEND_WR_SEND_FLAGS, signal ? Verbs.SEND_SIGNALED : 0);
        wr.set(JAVA_LONG, SEND_WR_WR_RDMA_REMOTE_ADDR, remoteAddress);
        wr.set(JAVA_INT, SEND_WR_WR_RDMA_RKEY, rkey);
        return wr;
    }

    MemorySegment wrAt(long seq) {
        return wrAt[(int) (seq % depth)];
    }

    /** Control path, after {@link #drained} (or for a passive queue pair): frees the QP and its ring. */
    void destroy() {
        nic.verbs.destroyQp(qp);
        arena.close();
    }
}
