package io.pegaflow.store;

import io.pegaflow.store.pool.BlockPool;
import java.lang.foreign.Arena;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.atomic.AtomicLong;
import java.util.stream.IntStream;

/**
 * A real store over a real pool of small slabs (so tests can fill slabs with a few blocks), a clock the test moves,
 * and helpers that save whole blocks as a save request would. Close it to free the memory.
 */
final class StoreFixture implements AutoCloseable {
    static final long SLAB_BYTES = 64 << 10; // 16 blocks of 4 KiB, 8 of 8 KiB per slab
    static final NamespaceLayout SMALL = new NamespaceLayout("ns", 1, 1, 4096); // 4 KiB blocks
    static final NamespaceLayout BIG = new NamespaceLayout("big", 2, 1, 4096); // 8 KiB blocks: another size class
    static final long PARTIAL_TIMEOUT_NS = 1_000_000_000L;

    final Arena arena = Arena.ofShared();
    final AtomicLong clock = new AtomicLong(1_000_000_000L);
    final BlockPool pool;
    final BlockStore store;

    StoreFixture(int slabs) {
        this(slabs, StoreListener.NONE);
    }

    StoreFixture(int slabs, StoreListener listener) {
        pool = BlockPool.wrap(arena.allocate(slabs * SLAB_BYTES, BlockPool.ALIGNMENT), SLAB_BYTES);
        store = new BlockStore(pool, PARTIAL_TIMEOUT_NS, clock::get, listener);
    }

    static byte[] hash(String name) {
        byte[] h = new byte[32];
        byte[] b = name.getBytes(StandardCharsets.UTF_8);
        System.arraycopy(b, 0, h, 0, Math.min(b.length, 32));
        return h;
    }

    static byte[][] hashes(String... names) {
        byte[][] hashes = new byte[names.length][];
        for (int i = 0; i < names.length; i++) {
            hashes[i] = hash(names[i]);
        }
        return hashes;
    }

    /** {@code prefix0 .. prefix(n-1)}. */
    static byte[][] hashes(String prefix, int n) {
        return hashes(IntStream.range(0, n).mapToObj(i -> prefix + i).toArray(String[]::new));
    }

    static int[] allSlots(NamespaceLayout layout) {
        return IntStream.range(0, layout.slotCount()).toArray();
    }

    /** Saves whole blocks (every slot) as one request and completes the copy; returns how many it sealed. */
    int save(NamespaceLayout layout, byte[]... hashes) {
        int[] ids = IntStream.range(0, hashes.length).toArray();
        SaveReservation reservation = store.reserveForSave(layout, ids, hashes, allSlots(layout));
        return store.completeSave(reservation, true);
    }

    int save(NamespaceLayout layout, String... names) {
        return save(layout, hashes(names));
    }

    boolean sealed(NamespaceLayout layout, String name) {
        return store.isSealed(layout.namespace(), hash(name));
    }

    @Override
    public void close() {
        store.close();
        pool.close();
        arena.close();
    }
}
