package io.pegaflow.rdma;

import io.pegaflow.transport.CompletionHandler;
import io.pegaflow.transport.TransferOp;
import io.pegaflow.transport.TransferStatus;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;

/**
 * One in-flight slot of a peer, preallocated with room for the most descriptors a transfer may carry and one
 * {@link Part} per queue pair: submitting fills it, allocating nothing. A transfer is split into parts (one per queue
 * pair it is striped over); it completes when its last part is done, whichever poller thread that is, so the counts
 * here are atomic.
 *
 * <p>Claimed by a submitter ({@link #claimed}), filled, then published through the NIC queues; released by the thread
 * that delivers the completion.
 */
final class Transfer {
    final PeerLink link;
    final RdmaRegion[] local;
    final long[] localOffset;
    final Handshake.RegionAdvert[] remote;
    final long[] remoteOffset;
    final long[] length;
    final Part[] parts;
    final AtomicBoolean claimed = new AtomicBoolean();
    final AtomicInteger partsLeft = new AtomicInteger();
    final AtomicLong bytes = new AtomicLong();
    /** The first failure's ordinal, -1 while none. */
    final AtomicInteger failure = new AtomicInteger(-1);

    int count;
    int partCount;
    TransferOp op;
    long correlationId;
    CompletionHandler handler;
    long submitNs;
    long deadlineNs;
    /** The peer's table refused a descriptor at submission: complete as REMOTE_ERROR without posting. */
    boolean refusedByPeerTable;

    volatile boolean cancelRequested;
    /** Set (with the failure) by the thread that decided the timeout or cancel, so it is decided once. */
    volatile boolean ending;

    volatile boolean live;

    Transfer(PeerLink link, int maxDescriptors, int maxParts) {
        this.link = link;
        local = new RdmaRegion[maxDescriptors];
        localOffset = new long[maxDescriptors];
        remote = new Handshake.RegionAdvert[maxDescriptors];
        remoteOffset = new long[maxDescriptors];
        length = new long[maxDescriptors];
        parts = new Part[maxParts];
        for (int i = 0; i < maxParts; i++) {
            parts[i] = new Part(this);
        }
    }

    /** Records a failure; the first one wins. */
    void fail(TransferStatus status) {
        failure.compareAndSet(-1, status.ordinal());
    }

    TransferStatus status() {
        int f = failure.get();
        return f < 0 ? TransferStatus.OK : TransferStatus.ofOrdinal(f);
    }

    /** A part is done: the last one completes the transfer. Any poller thread. */
    void partDone() {
        if (partsLeft.decrementAndGet() == 0) {
            link.complete(this);
        }
    }

    /** Drops references so that a free slot keeps no region or handler alive. */
    void clear() {
        for (int i = 0; i < count; i++) {
            local[i] = null;
            remote[i] = null;
        }
        handler = null;
        count = 0;
        partCount = 0;
        refusedByPeerTable = false;
        cancelRequested = false;
        ending = false;
        bytes.set(0);
        failure.set(-1);
    }
}
