package io.pegaflow.fabric.engine;

import static io.pegaflow.fabric.engine.ShmKvCache.hash;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.pegaflow.fabric.engine.KvEngineMultiGpuWithStandInGpusTest.StandInGpu;
import io.pegaflow.fabric.node.NumaPoolPlan;
import io.pegaflow.gpu.MultiGpuCopyEngine;
import io.pegaflow.store.BlockStore;
import io.pegaflow.store.HashList;
import io.pegaflow.store.memory.HostMemory;
import io.pegaflow.store.memory.Numa;
import io.pegaflow.store.pool.BlockPool;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import java.util.stream.IntStream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * One node, two stand-in GPUs that a fake sysfs puts on NUMA nodes 0 and 1: the plan makes a pool per node, the pool
 * region is really bound (node 0 here; node 1 does not exist on this host, so its pool is left unbound and the report
 * says so), each GPU's saves land in its own pool, loads read from either pool byte for byte, a full local pool
 * evicts its own blocks first, then spills (counted), and with both pools pinned full a save is refused clearly.
 */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class KvEngineNumaPoolsWithStandInGpusTest {
    static final long MIB = 1 << 20;
    static final long POOL_BYTES = 16 * MIB;
    static final long SLAB = MIB; // 8 slabs per pool, 2 blocks each: 16 blocks per pool
    static final int SLOT = 256 << 10;
    static final int LAYERS = 2; // 512 KiB blocks
    static final int BLOCKS = 16;
    static final String NS = "ns/numa";

    @TempDir
    Path sysfs;

    private final Arena arena = Arena.ofShared();
    private final StandInGpu a = new StandInGpu(KvEngineMultiGpuWithStandInGpusTest.GPU_A);
    private final StandInGpu b = new StandInGpu(KvEngineMultiGpuWithStandInGpusTest.GPU_B);
    private HostMemory host;
    private KvEngine engine;
    private MemorySegment memA;
    private MemorySegment memB;
    private String ctxA;
    private String ctxB;

    @BeforeEach
    void start() throws Exception {
        for (String[] d : new String[][] {{"0000:1b:00.0", "0"}, {"0000:9a:00.0", "1"}}) {
            Path dir = Files.createDirectories(sysfs.resolve("bus/pci/devices").resolve(d[0]));
            Files.writeString(dir.resolve("numa_node"), d[1] + "\n");
        }
        NumaPoolPlan plan = NumaPoolPlan.read(Map.of(0, "0000:1b:00.0", 1, "0000:9A:00.0"), sysfs);
        assertEquals(2, plan.pools(), plan.why());
        assertEquals(List.of(0, 1), plan.poolNodes());
        assertEquals(Map.of(0, 0, 1, 1), plan.poolByOrdinal());
        host = HostMemory.allocate(POOL_BYTES, 1, false, null, plan.ranges(POOL_BYTES, SLAB));
        BlockPool pool = BlockPool.wrap(host.memory(), SLAB, plan.pools());
        engine = KvEngine.builder(
                        new BlockStore(pool, 30_000_000_000L, System::nanoTime), new MultiGpuCopyEngine(List.of(a, b)))
                .devicePools(DevicePools.of(Map.of(a.uuid, 0, b.uuid, 1), plan.poolNodes()))
                .build();
        Random random = new Random(7);
        byte[] ha = new byte[64];
        byte[] hb = new byte[64];
        memA = allocation(a, 1, ha, random);
        memB = allocation(b, 2, hb, random);
        ctxA = KvEngineTest.await(engine.register(tp1("i-a", a.uuid, ha, memA.byteSize())))
                .contextId();
        ctxB = KvEngineTest.await(engine.register(tp1("i-b", b.uuid, hb, memB.byteSize())))
                .contextId();
    }

    @AfterEach
    void cleanUp() {
        if (engine != null) {
            engine.close();
            engine.store().close();
        }
        if (host != null) {
            host.close();
        }
        arena.close();
    }

    private MemorySegment allocation(StandInGpu gpu, int id, byte[] handleOut, Random random) {
        return gpu.allocate(arena, id, handleOut, random, (long) LAYERS * BLOCKS * SLOT);
    }

    /** A TP-1 instance on {@code device}; two such instances share the namespace (the same model). */
    private static ContextRegistration tp1(String instance, String device, byte[] handle, long bytes) {
        return new ContextRegistration(
                instance, NS, 0, 1, 0, LAYERS, device, StandInGpu.layers(handle, bytes, LAYERS, BLOCKS, SLOT));
    }

    private static byte[][] names(String prefix, int n) {
        return IntStream.range(0, n).mapToObj(i -> hash(prefix + i)).toArray(byte[][]::new);
    }

    private void save(String ctx, int firstId, byte[][] hashes) throws Exception {
        int[] ids = IntStream.range(firstId, firstId + hashes.length).toArray();
        KvEngineTest.await(engine.save(new SaveBlocks(ctx, ids, hashes, new int[0])));
    }

    private int poolOf(byte[] hash) {
        BlockStore store = engine.store();
        return store.poolOf(store.describeSealed(NS, hash).orElseThrow().poolOffset());
    }

    private void load(String ctx, int firstId, byte[][] hashes) throws Exception {
        Path flag = Files.createTempFile(Path.of("/dev/shm"), "pegaflow-flag", ".bin");
        try {
            Files.write(flag, new byte[64]);
            int[] ids = IntStream.range(firstId, firstId + hashes.length).toArray();
            KvEngineTest.await(engine.load(new LoadBlocks(ctx, ids, hashes, 0, flag.toString(), 0)));
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
            while (Files.readAllBytes(flag)[0] == 0 && System.nanoTime() < deadline) {
                Thread.sleep(1);
            }
            assertEquals(LoadFlagWriter.DONE, Files.readAllBytes(flag)[0]);
        } finally {
            Files.deleteIfExists(flag);
        }
    }

    /** Block {@code id} of layer {@code layer} in an allocation. */
    private static byte[] block(MemorySegment mem, int layer, int id) {
        return mem.asSlice(((long) layer * BLOCKS + id) * SLOT, SLOT).toArray(ValueLayout.JAVA_BYTE);
    }

    @Test
    void shouldReallyBindThePoolOfNodeZeroAndLeaveAMissingNodeUnboundLoudly() {
        long base = host.memory().address();
        Numa.Policy policy = Numa.policyAt(base);
        assertEquals(Numa.MPOL_BIND, policy.mode(), "mbind was called on pool 0");
        assertEquals(0, policy.firstNode());
        if (!Numa.nodeExists(1)) {
            assertTrue(host.report().contains("on NUMA node 1 left unbound (no such node)"), host.report());
        } else {
            assertEquals(1, Numa.policyAt(base + POOL_BYTES / 2).firstNode());
        }
    }

    @Test
    void shouldSaveEachGpusBlocksInItsOwnPoolAndLoadThemByteExactFromEitherPool() throws Exception {
        byte[][] xs = names("x", 4);
        byte[][] ys = names("y", 4);
        save(ctxA, 0, xs);
        save(ctxB, 0, ys);
        for (int i = 0; i < 4; i++) {
            assertEquals(0, poolOf(xs[i]), "GPU A's block in pool 0");
            assertEquals(1, poolOf(ys[i]), "GPU B's block in pool 1");
        }
        assertEquals(0, engine.store().counters().remotePoolBlocks());
        var health = io.pegaflow.fabric.grpc.PoolUseMapper.of(engine); // what Health reports
        assertEquals(2, health.size());
        assertEquals(List.of(a.uuid), health.get(0).getGpusList());
        assertEquals(1, health.get(1).getNumaNode());
        assertEquals(4L * LAYERS * SLOT, health.get(1).getUsedBytes());
        assertEquals(POOL_BYTES / 2, health.get(1).getCapacityBytes());
        // Each instance loads the other's blocks: across pools.
        load(ctxA, 8, ys);
        load(ctxB, 8, xs);
        for (int l = 0; l < LAYERS; l++) {
            for (int i = 0; i < 4; i++) {
                assertArrayEquals(block(memB, l, i), block(memA, l, 8 + i), "A got B's block " + i + " layer " + l);
                assertArrayEquals(block(memA, l, i), block(memB, l, 8 + i), "B got A's block " + i + " layer " + l);
            }
        }
    }

    @Test
    void shouldEvictLocallyFirstThenSpillToTheOtherPoolCountedThenRefuseWhenBothAreHeld() throws Exception {
        BlockStore store = engine.store();
        save(ctxA, 0, names("a", 16)); // pool 0 full
        save(ctxA, 0, names("b", 2));
        assertEquals(2, store.counters().evictions(), "room made in pool 0");
        assertEquals(0, store.poolSnapshots().get(1).usedBytes(), "pool 1 untouched");
        assertEquals(0, store.counters().remotePoolBlocks());
        // Hold everything in pool 0 with leases: it can make no room now.
        byte[][] held = IntStream.range(0, 18)
                .mapToObj(i -> i < 16 ? hash("a" + i) : hash("b" + (i - 16)))
                .filter(h -> store.isSealed(NS, h))
                .toArray(byte[][]::new);
        assertEquals(16, held.length);
        for (byte[] h : held) {
            assertEquals(
                    1, store.query(NS, HashList.of(new byte[][] {h}), 60_000).hitCount());
        }
        save(ctxA, 0, names("c", 4));
        assertEquals(4, store.counters().remotePoolBlocks(), "spilled to pool 1, counted");
        for (byte[] h : names("c", 4)) {
            assertEquals(1, poolOf(h));
        }
        load(ctxB, 8, names("c", 4));
        for (int l = 0; l < LAYERS; l++) {
            for (int i = 0; i < 4; i++) {
                assertArrayEquals(block(memA, l, i), block(memB, l, 8 + i));
            }
        }
        save(ctxB, 0, names("d", 12)); // pool 1 full too
        for (byte[] h : names("c", 4)) {
            store.query(NS, HashList.of(new byte[][] {h}), 60_000);
        }
        for (byte[] h : names("d", 12)) {
            store.query(NS, HashList.of(new byte[][] {h}), 60_000);
        }
        EngineException e = assertThrows(EngineException.class, () -> save(ctxA, 0, names("e", 1)));
        assertEquals(EngineException.Code.RESOURCE_EXHAUSTED, e.code());
        assertTrue(e.getMessage().contains("per pool 0: 8388608 of 8388608, 1: 8388608 of 8388608"), e.getMessage());
        assertTrue(!store.isSealed(NS, hash("e0")));
    }
}
