package io.pegaflow.bench;

import io.pegaflow.store.BlockEntry;
import io.pegaflow.store.BlockStore;
import io.pegaflow.store.HashList;
import io.pegaflow.store.NamespaceLayout;
import io.pegaflow.store.SaveReservation;
import io.pegaflow.store.pool.BlockPool;
import java.lang.foreign.Arena;
import java.lang.management.ManagementFactory;
import java.lang.management.ThreadMXBean;
import java.util.Arrays;
import java.util.SplittableRandom;

/**
 * The store's share of one TP 1 save and load of a Llama-3.1-8B-like context, call by call: {@code reserveForSave},
 * {@code completeSave}, {@code pinForLoad} and {@code unpinAll} of 625 blocks of 32 slots in a pool of 8,192 blocks in
 * slabs of 128 (the block count and slab shape of a 16 GiB pool of 2 MiB blocks; the slots are 128 bytes instead of 64
 * KiB, so the pool is 32 MiB: the bookkeeping never touches the bytes). A listener is set, as on the node, so every
 * seal and eviction records an event. Cases: saves of fresh hashes into a full pool (each evicts 625 blocks), saves
 * into a pool with room (cleared between calls, untimed), and a load of 625 sealed blocks. Times each call in thread
 * CPU time (preemption left out: the machine this was written on is shared) and wall time; prints medians over the
 * calls after warm-up. Run: {@code java --enable-native-access=ALL-UNNAMED -cp <store and bench classes>
 * io.pegaflow.bench.StoreCallCost [seconds of warm-up] [MB to flush]}. With a second argument, each timed call is
 * preceded (untimed) by writing one byte per cache line of that many MB, larger than the last-level cache: the store
 * then meets cold caches, as on a GPU host after a save's DMA has written a GiB through the cache (200 calls per case).
 */
public final class StoreCallCost {
    static final int BLOCKS = 8192;
    static final int SLABS_OF = 128;
    static final int CALL_BLOCKS = 625;
    static final int BATCHES = 32; // 20,000 hashes: a batch comes round again only after it was evicted
    static final NamespaceLayout LAYOUT = new NamespaceLayout("bench", 32, 1, 128);
    static final ThreadMXBean MX = ManagementFactory.getThreadMXBean();

    /** The buffer {@link #flushCaches} writes, or null (no flushing). */
    private static byte[] flush;

    private static int flushRound;

    private StoreCallCost() {}

    /** Evicts what the store had cached: one write per 64-byte line of a buffer larger than the cache. */
    static void flushCaches() {
        if (flush != null) {
            byte value = (byte) ++flushRound;
            for (int i = 0; i < flush.length; i += 64) {
                flush[i] = value;
            }
        }
    }

    /** Per-call samples of one operation (CPU and wall nanoseconds). */
    static final class Samples {
        final String name;
        final long[] cpu;
        final long[] wall;
        int n;

        Samples(String name, int capacity) {
            this.name = name;
            this.cpu = new long[capacity];
            this.wall = new long[capacity];
        }

        void add(long cpuNs, long wallNs) {
            if (n < cpu.length) {
                cpu[n] = cpuNs;
                wall[n++] = wallNs;
            }
        }

        void print() {
            long[] c = Arrays.copyOf(cpu, n);
            long[] w = Arrays.copyOf(wall, n);
            Arrays.sort(c);
            Arrays.sort(w);
            System.out.printf(
                    "%-34s cpu median %8.1f us  p10 %8.1f  | wall median %8.1f us  p10 %8.1f  (%d calls)%n",
                    name, c[n / 2] / 1e3, c[n / 10] / 1e3, w[n / 2] / 1e3, w[n / 10] / 1e3, n);
        }
    }

    public static void main(String[] args) {
        double warmSeconds = args.length > 0 ? Double.parseDouble(args[0]) : 5;
        int flushMb = args.length > 1 ? Integer.parseInt(args[1]) : 0;
        flush = flushMb > 0 ? new byte[flushMb << 20] : null;
        int calls = flushMb > 0 ? 200 : 2000;
        SplittableRandom random = new SplittableRandom(42);
        HashList[] batches = new HashList[BATCHES];
        for (int b = 0; b < BATCHES; b++) {
            byte[] data = new byte[CALL_BLOCKS * 32];
            for (int i = 0; i < data.length; i += 8) {
                long v = random.nextLong();
                for (int k = 0; k < 8; k++) {
                    data[i + k] = (byte) (v >>> (8 * k));
                }
            }
            batches[b] = HashList.packed(data, 32);
        }
        int[] blockIds = new int[CALL_BLOCKS];
        for (int i = 0; i < CALL_BLOCKS; i++) {
            blockIds[i] = i;
        }
        int[] slots = new int[LAYOUT.slotCount()];
        for (int i = 0; i < slots.length; i++) {
            slots[i] = i;
        }
        long[] events = new long[1];
        try (Arena arena = Arena.ofShared()) {
            long slab = SLABS_OF * LAYOUT.blockBytes();
            BlockPool pool = BlockPool.wrap(arena.allocate(BLOCKS * LAYOUT.blockBytes(), BlockPool.ALIGNMENT), slab);
            BlockStore store =
                    new BlockStore(pool, Long.MAX_VALUE, System::nanoTime, batch -> events[0] += batch.size());

            // Saves with eviction: the pool is full after 14 calls; every call from then on evicts 625 blocks.
            Samples reserveEvict = new Samples("reserveForSave 625, evicting 625", calls);
            Samples completeEvict = new Samples("completeSave 625 (seal)", calls);
            int next = 0;
            long warmEnd = System.nanoTime() + (long) (warmSeconds * 1e9);
            while (true) {
                boolean timed = System.nanoTime() >= warmEnd;
                HashList hashes = batches[next++ % BATCHES];
                boolean evicts = pool.freeSlotsFor(LAYOUT.blockBytes()) < CALL_BLOCKS;
                if (timed) {
                    flushCaches();
                }
                long c0 = MX.getCurrentThreadCpuTime();
                long w0 = System.nanoTime();
                SaveReservation r = store.reserveForSave(LAYOUT, blockIds, hashes, slots);
                long c1 = MX.getCurrentThreadCpuTime();
                long w1 = System.nanoTime();
                long c1b = c1;
                long w1b = w1;
                if (timed && flush != null) {
                    flushCaches(); // the copy runs here: a GPU's DMA writes a GiB through the cache
                    c1b = MX.getCurrentThreadCpuTime();
                    w1b = System.nanoTime();
                }
                store.completeSave(r, true);
                long c2 = MX.getCurrentThreadCpuTime() - (c1b - c1);
                long w2 = System.nanoTime() - (w1b - w1);
                if (r.count() != CALL_BLOCKS) {
                    throw new IllegalStateException("reserved " + r.count() + " of " + CALL_BLOCKS);
                }
                if (timed && evicts) {
                    reserveEvict.add(c1 - c0, w1 - w0);
                    completeEvict.add(c2 - c1, w2 - w1);
                    if (reserveEvict.n == calls) {
                        break;
                    }
                }
            }

            // Loads of 625 sealed blocks (the last batch saved).
            HashList sealed = batches[(next - 1) % BATCHES];
            Samples pin = new Samples("pinForLoad 625", calls);
            Samples unpin = new Samples("unpinAll 625", calls);
            warmEnd = System.nanoTime() + (long) (warmSeconds * 1e9);
            while (true) {
                boolean timed = System.nanoTime() >= warmEnd;
                if (timed) {
                    flushCaches();
                }
                long c0 = MX.getCurrentThreadCpuTime();
                long w0 = System.nanoTime();
                BlockEntry[] entries = store.pinForLoad("bench", sealed, 0);
                long c1 = MX.getCurrentThreadCpuTime();
                long w1 = System.nanoTime();
                long c1b = c1;
                long w1b = w1;
                if (timed && flush != null) {
                    flushCaches(); // the copy to the GPU runs here
                    c1b = MX.getCurrentThreadCpuTime();
                    w1b = System.nanoTime();
                }
                store.unpinAll(entries);
                long c2 = MX.getCurrentThreadCpuTime() - (c1b - c1);
                long w2 = System.nanoTime() - (w1b - w1);
                if (entries[CALL_BLOCKS - 1] == null) {
                    throw new IllegalStateException("load missed a sealed block");
                }
                if (timed) {
                    pin.add(c1 - c0, w1 - w0);
                    unpin.add(c2 - c1, w2 - w1);
                    if (pin.n == calls) {
                        break;
                    }
                }
            }

            // Saves with room: the namespace is cleared (untimed) whenever the next call would have to evict.
            Samples reserveRoom = new Samples("reserveForSave 625, with room", calls);
            Samples completeRoom = new Samples("completeSave 625 (seal), with room", calls);
            warmEnd = System.nanoTime() + (long) (warmSeconds * 1e9);
            while (true) {
                if (pool.freeSlotsFor(LAYOUT.blockBytes()) < CALL_BLOCKS) {
                    store.clearNamespace("bench");
                }
                boolean timed = System.nanoTime() >= warmEnd;
                HashList hashes = batches[next++ % BATCHES];
                if (timed) {
                    flushCaches();
                }
                long c0 = MX.getCurrentThreadCpuTime();
                long w0 = System.nanoTime();
                SaveReservation r = store.reserveForSave(LAYOUT, blockIds, hashes, slots);
                long c1 = MX.getCurrentThreadCpuTime();
                long w1 = System.nanoTime();
                long c1b = c1;
                long w1b = w1;
                if (timed && flush != null) {
                    flushCaches();
                    c1b = MX.getCurrentThreadCpuTime();
                    w1b = System.nanoTime();
                }
                store.completeSave(r, true);
                long c2 = MX.getCurrentThreadCpuTime() - (c1b - c1);
                long w2 = System.nanoTime() - (w1b - w1);
                if (r.count() != CALL_BLOCKS) {
                    throw new IllegalStateException("reserved " + r.count() + " of " + CALL_BLOCKS);
                }
                if (timed) {
                    reserveRoom.add(c1 - c0, w1 - w0);
                    completeRoom.add(c2 - c1, w2 - w1);
                    if (reserveRoom.n == calls) {
                        break;
                    }
                }
            }
            store.close();
            reserveEvict.print();
            completeEvict.print();
            reserveRoom.print();
            completeRoom.print();
            pin.print();
            unpin.print();
            System.out.println("events delivered: " + events[0] + ", evictions: "
                    + store.counters().evictions());
        }
    }
}
