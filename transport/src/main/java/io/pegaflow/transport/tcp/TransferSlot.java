package io.pegaflow.transport.tcp;

import io.pegaflow.transport.CompletionHandler;
import io.pegaflow.transport.DescriptorList;
import io.pegaflow.transport.TransferOp;
import java.util.Arrays;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * One preallocated in-flight transfer place of one peer (DiSNI's "stateful verb call": the descriptor arrays are
 * sized once when the transport is made). A slot goes FREE → claimed by a submitting thread, which fills it and hands
 * it to the I/O thread through the submission queue → owned by the I/O thread until it completes it and frees it.
 *
 * <p>Request ids carry the slot index and a generation that changes with every claim, so a reply, a queued send or a
 * cancel meant for an earlier use of the slot is recognised as stale. The {@code io*} fields belong to the I/O thread
 * alone; the request fields are written by the claiming thread before the hand-off (the queue publishes them).
 */
final class TransferSlot {

    static final int SLOT_BITS = 20;
    static final long SLOT_MASK = (1L << SLOT_BITS) - 1;

    /** Not in the I/O thread's hands (free, or claimed and not yet adopted). */
    static final int IO_IDLE = 0;
    /** Adopted, waiting in its connection's send queue. */
    static final int IO_QUEUED = 1;
    /** Its request is being written to the socket. */
    static final int IO_SENDING = 2;
    /** Sent; its reply is awaited. */
    static final int IO_AWAITING = 3;

    final int index;
    final int peerIndex;

    private final AtomicInteger claim = new AtomicInteger();
    private long generation;

    /** The live request id; volatile so that a cancelling thread can tell which use of the slot it looks at. */
    volatile long requestId;
    /** The request id a cancel was asked for (0: none). */
    volatile long cancelRequestedId;

    // The request, written by the claiming thread before hand-off.
    TransferOp op;
    long correlationId;
    CompletionHandler handler;
    long submitNanos;
    long deadlineNanos;
    boolean checksums;
    int count;
    long totalBytes;
    final int[] remoteRegionIds;
    final long[] remoteKeys;
    final long[] remoteOffsets;
    final TcpRegion[] localRegions;
    final long[] localOffsets;
    final int[] lengths;

    // I/O thread only.
    int ioState = IO_IDLE;
    long ioBytesDone;

    TransferSlot(int index, int peerIndex, int maxDescriptors) {
        this.index = index;
        this.peerIndex = peerIndex;
        remoteRegionIds = new int[maxDescriptors];
        remoteKeys = new long[maxDescriptors];
        remoteOffsets = new long[maxDescriptors];
        localRegions = new TcpRegion[maxDescriptors];
        localOffsets = new long[maxDescriptors];
        lengths = new int[maxDescriptors];
    }

    /** Claims the slot for one transfer; true if this thread now owns it. */
    boolean tryClaim() {
        return claim.get() == 0 && claim.compareAndSet(0, 1);
    }

    /** Frees the slot for the next claim (after its completion is recorded). */
    void release() {
        handler = null;
        Arrays.fill(localRegions, 0, count, null);
        claim.set(0);
    }

    boolean isClaimed() {
        return claim.get() != 0;
    }

    static int slotIndexOf(long requestId) {
        return (int) (requestId & SLOT_MASK);
    }

    /**
     * Copies the request in (descriptors already checked by the caller) and publishes a new request id, last, so a
     * thread that reads the id and then the other fields sees this request's values or newer ones.
     */
    void fill(
            TransferOp transferOp,
            DescriptorList descriptors,
            long correlation,
            CompletionHandler completionHandler,
            long nowNanos,
            long timeoutMs,
            boolean withChecksums) {
        op = transferOp;
        correlationId = correlation;
        handler = completionHandler;
        submitNanos = nowNanos;
        deadlineNanos = nowNanos + timeoutMs * 1_000_000L;
        checksums = withChecksums;
        cancelRequestedId = 0;
        int n = descriptors.size();
        long total = 0;
        for (int i = 0; i < n; i++) {
            remoteRegionIds[i] = descriptors.remoteRegion(i).regionId();
            remoteKeys[i] = descriptors.remoteRegion(i).remoteKey();
            remoteOffsets[i] = descriptors.remoteOffset(i);
            localRegions[i] = (TcpRegion) descriptors.localRegion(i);
            localOffsets[i] = descriptors.localOffset(i);
            lengths[i] = (int) descriptors.lengthBytes(i);
            total += lengths[i];
        }
        count = n;
        totalBytes = total;
        generation++;
        requestId = (generation << SLOT_BITS) | index;
    }

    /** Pins each local region once per run of equal regions; false (nothing left pinned) if one is gone. */
    boolean pinLocalRegions() {
        TcpRegion previous = null;
        for (int i = 0; i < count; i++) {
            TcpRegion region = localRegions[i];
            if (region != previous) {
                if (!region.pin()) {
                    unpinLocalRegions(i);
                    return false;
                }
                previous = region;
            }
        }
        return true;
    }

    /** Undoes {@link #pinLocalRegions()} for the first {@code upTo} descriptors. */
    void unpinLocalRegions(int upTo) {
        TcpRegion previous = null;
        for (int i = 0; i < upTo; i++) {
            TcpRegion region = localRegions[i];
            if (region != previous) {
                region.unpin();
                previous = region;
            }
        }
    }
}
