package io.pegaflow.rdma;

import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReferenceArray;

/**
 * A bounded lock-free queue from the submitting threads to one NIC's poller: many producers claim a position with a
 * CAS, one consumer takes them in order. Sized once; neither side allocates or takes a lock (a locked queue allocates
 * a wait node whenever a submitter and the poller meet on its lock).
 */
final class PartQueue {
    private final AtomicReferenceArray<Part> slots;
    private final int mask;
    private final AtomicLong tail = new AtomicLong();
    private final AtomicLong head = new AtomicLong(); // written by the consumer only

    PartQueue(int minCapacity) {
        int capacity = Integer.highestOneBit(Math.max(2, minCapacity - 1)) << 1;
        slots = new AtomicReferenceArray<>(capacity);
        mask = capacity - 1;
    }

    /** Any thread; false when full (the queue is sized for every slot's parts, so only on a bug). */
    boolean offer(Part part) {
        for (; ; ) {
            long t = tail.get();
            if (t - head.get() > mask) {
                return false;
            }
            if (tail.compareAndSet(t, t + 1)) {
                slots.set((int) (t & mask), part);
                return true;
            }
        }
    }

    /** The consumer only; null when empty (or when the next producer has claimed but not yet stored). */
    Part poll() {
        long h = head.get();
        int index = (int) (h & mask);
        Part part = slots.get(index);
        if (part == null) {
            return null;
        }
        slots.lazySet(index, null);
        head.lazySet(h + 1);
        return part;
    }
}
