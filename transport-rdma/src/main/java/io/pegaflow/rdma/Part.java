package io.pegaflow.rdma;

/**
 * The share of one transfer that one queue pair moves: descriptors {@code [from, to)}, posted as work requests in
 * order as the queue pair's ring has room. Owned by that queue pair's poller thread once submitted.
 */
final class Part {
    final Transfer transfer;
    QueuePair qp;
    int from;
    int to;
    /** Posting progress: the descriptor, and the bytes of it already turned into work requests. */
    int cursor;

    long cursorOffset;
    int wrsPosted;
    int wrsCompleted;
    boolean allPosted;
    boolean done;

    Part(Transfer transfer) {
        this.transfer = transfer;
    }

    void reset(QueuePair qp, int from, int to) {
        this.qp = qp;
        this.from = from;
        this.to = to;
        cursor = from;
        cursorOffset = 0;
        wrsPosted = 0;
        wrsCompleted = 0;
        allPosted = false;
        done = false;
    }
}
