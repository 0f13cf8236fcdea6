package io.pegaflow.fabric.engine;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.MappedByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.UUID;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * How blocks sit in the pool for TP > 1, replicated (MLA) layers and layer groups registered once, measured through
 * the runs each save hands the copy engine (real engine, pool and shared-memory files; the copy engine is memcpy
 * with a recorder in front).
 */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class KvEngineLayoutTest {
    private static final int BLOCK = EngineFixture.BLOCK;
    private final EngineFixture fx;
    private final List<AutoCloseable> closeables = new ArrayList<>();

    KvEngineLayoutTest() throws IOException {
        fx = new EngineFixture(64L << 20, EngineSettings.defaults().withCopy(2, 1024), RemoteBlockSource.NONE);
    }

    @AfterEach
    void cleanUp() throws Exception {
        for (AutoCloseable c : closeables) {
            c.close();
        }
        fx.close();
    }

    private ShmKvCache cache(int layers, int blocks) throws IOException {
        ShmKvCache cache = new ShmKvCache(layers, blocks, BLOCK, false);
        closeables.add(cache);
        return cache;
    }

    private static final int[] SAVED = {1, 3, 5, 7, 9, 11};
    private static final int[] LOADED = {0, 2, 4, 6, 8, 10};

    private long[] lastShape() {
        return fx.copies.shapes.getLast();
    }

    @Test
    void shouldMoveEachRanksLayersOfABlockAsOneContiguousPoolRangeAndSealAfterTheLastRank() throws Exception {
        int tp = 4;
        int layers = 8;
        byte[][] hashes = EngineFixture.hashes("tp4-", SAVED.length);
        ShmKvCache[] ranks = new ShmKvCache[tp];
        String[] contexts = new String[tp];
        byte[][][][] data = new byte[tp][SAVED.length][][];
        for (int r = 0; r < tp; r++) {
            ranks[r] = cache(layers, 16);
            contexts[r] = fx.register(ranks[r].registration("inst", "tp4", r, tp, layers, 0));
            for (int i = 0; i < SAVED.length; i++) {
                data[r][i] = ranks[r].fillRandom(SAVED[i], 100L * r + i);
            }
        }
        for (int r = 0; r < tp; r++) {
            assertEquals(0, fx.engine.query(new PrefixQuery("tp4", hashes, 0)).hitBlocks(), "sealed before rank " + r);
            SaveResult saved = fx.save(contexts[r], SAVED, hashes);
            assertEquals(SAVED.length, saved.stored());
            long[] shape = lastShape();
            // Layer-major slots (layer x tp + rank) would give 6 x 8 = 48 pool ranges of 4 KiB here.
            assertEquals(SAVED.length, shape[2], "rank " + r + ": one pool range per block");
            assertEquals((long) layers * BLOCK, shape[3] / shape[2], "rank " + r + ": all its layers in one range");
        }
        assertEquals(
                SAVED.length, fx.engine.query(new PrefixQuery("tp4", hashes, 0)).hitBlocks());
        for (int r = 0; r < tp; r++) {
            long[] flag = loadAndWait(contexts[r], LOADED, hashes, r);
            assertEquals(LoadFlagWriter.DONE, flag[0]);
            assertEquals(SAVED.length, fx.copies.shapes.getLast()[1], "rank " + r + ": one pool range per block");
            for (int i = 0; i < LOADED.length; i++) {
                for (int l = 0; l < layers; l++) {
                    assertArrayEquals(data[r][i][l], ranks[r].read(l, LOADED[i]), "rank " + r + " layer " + l);
                }
            }
        }
    }

    private long[] loadAndWait(String ctx, int[] ids, byte[][] hashes, int slot) throws Exception {
        KvEngineTest.await(fx.load(ctx, ids, hashes, slot));
        return fx.awaitFlag(slot);
    }

    private static ContextRegistration replicated(ContextRegistration r) {
        List<LayerSpec> layers = new ArrayList<>();
        for (LayerSpec l : r.layers()) {
            layers.add(new LayerSpec(
                    l.name(),
                    l.layerIndex(),
                    l.region(),
                    l.numBlocks(),
                    l.blockStrideBytes(),
                    l.segments(),
                    true,
                    1,
                    0));
        }
        return new ContextRegistration(
                r.instanceId(), r.namespace(), r.tpRank(), r.tpSize(), r.ppRank(), r.totalLayers(), r.device(), layers);
    }

    @Test
    void shouldStoreReplicatedLayersOncePerBlockAndLoadThemIntoEveryRank() throws Exception {
        int tp = 4;
        int layers = 3;
        byte[][] hashes = EngineFixture.hashes("mla-", SAVED.length);
        ShmKvCache[] ranks = new ShmKvCache[tp];
        String[] contexts = new String[tp];
        byte[][][] data = new byte[SAVED.length][][];
        for (int r = 0; r < tp; r++) {
            ranks[r] = cache(layers, 16);
            Registered reg = KvEngineTest.await(
                    fx.engine.register(replicated(ranks[r].registration("inst", "mla", r, tp, layers, 0))));
            assertEquals((long) layers * BLOCK, reg.blockBytes(), "one copy of each layer per block, not " + tp);
            contexts[r] = reg.contextId();
        }
        for (int i = 0; i < SAVED.length; i++) {
            data[i] = ranks[0].fillRandom(SAVED[i], i);
        }
        SaveResult first = fx.save(contexts[0], SAVED, hashes);
        assertEquals(SAVED.length, first.sealed(), "the first rank's save completes the block");
        assertEquals(
                SAVED.length, fx.engine.query(new PrefixQuery("mla", hashes, 0)).hitBlocks());
        int copies = fx.copies.calls.get();
        for (int r = 1; r < tp; r++) {
            SaveResult again = fx.save(contexts[r], SAVED, hashes);
            assertEquals(0, again.stored(), "rank " + r + " copies nothing");
            assertEquals(SAVED.length, again.skipped());
        }
        assertEquals(copies, fx.copies.calls.get(), "no copy after the first rank's");
        for (int r = 0; r < tp; r++) {
            assertEquals(LoadFlagWriter.DONE, loadAndWait(contexts[r], LOADED, hashes, r)[0]);
            for (int i = 0; i < LOADED.length; i++) {
                for (int l = 0; l < layers; l++) {
                    assertArrayEquals(data[i][l], ranks[r].read(l, LOADED[i]), "rank " + r + " layer " + l);
                }
            }
        }
    }

    @Test
    void shouldRefuseARegistrationThatMixesReplicatedAndSplitLayers() throws Exception {
        ShmKvCache cache = cache(2, 4);
        ContextRegistration r = cache.registration("inst", "mixed", 0, 2, 2, 0);
        LayerSpec l = r.layers().get(1);
        ContextRegistration mixed = Registrations.withLayer(
                r,
                1,
                new LayerSpec(
                        l.name(),
                        l.layerIndex(),
                        l.region(),
                        l.numBlocks(),
                        l.blockStrideBytes(),
                        l.segments(),
                        true,
                        1,
                        0));
        EngineException e = assertThrows(EngineException.class, () -> fx.register(mixed));
        assertEquals(EngineException.Code.INVALID_ARGUMENT, e.code());
        assertTrue(e.getMessage().startsWith("layers[1].replicated: true, but layers[0]'s is false"), e.getMessage());
        assertEquals(0, fx.engine.contextCount());
    }

    @Test
    void shouldRefuseReplicatedLayersInANamespaceFixedWithSplitOnes() throws Exception {
        ShmKvCache cache = cache(2, 4);
        fx.register(cache.registration("a", "ns", 0, 2, 2, 0));
        EngineException e = assertThrows(
                EngineException.class, () -> fx.register(replicated(cache.registration("a", "ns", 1, 2, 2, 0))));
        assertEquals(EngineException.Code.FAILED_PRECONDITION, e.code());
        assertTrue(e.getMessage().contains("replicated layers, but the namespace's are split"), e.getMessage());
    }

    /** A KV-cache group in one file, vLLM 0.29's blocks-first order: block b of layer l at (b x layers + l) x page. */
    private static final class InterleavedGroup implements AutoCloseable {
        final Path path = Path.of("/dev/shm", "pegaflow-test-group-" + UUID.randomUUID());
        final int layers;
        final int blocks;
        final MappedByteBuffer map;

        InterleavedGroup(int layers, int blocks) throws IOException {
            this.layers = layers;
            this.blocks = blocks;
            long size = (long) layers * blocks * BLOCK;
            try (RandomAccessFile f = new RandomAccessFile(path.toFile(), "rw")) {
                f.setLength(size);
            }
            try (FileChannel ch = FileChannel.open(path, StandardOpenOption.READ, StandardOpenOption.WRITE)) {
                map = ch.map(FileChannel.MapMode.READ_WRITE, 0, size);
            }
        }

        int at(int layer, int block) {
            return (block * layers + layer) * BLOCK;
        }

        byte[] read(int layer, int block) {
            byte[] out = new byte[BLOCK];
            map.get(at(layer, block), out);
            return out;
        }

        byte[][] fill(int block, long seed) {
            byte[][] data = new byte[layers][BLOCK];
            Random random = new Random(seed);
            for (int l = 0; l < layers; l++) {
                random.nextBytes(data[l]);
                map.put(at(l, block), data[l]);
            }
            return data;
        }

        /** The group as one registration entry. */
        ContextRegistration once(String instance, String namespace) {
            LayerSpec group = new LayerSpec(
                    "group0",
                    0,
                    new RegionSpec.SharedMemory(path.toString(), 0),
                    blocks,
                    (long) layers * BLOCK,
                    List.of(new LayerSpec.Segment(0, BLOCK)),
                    false,
                    layers,
                    BLOCK);
            return new ContextRegistration(instance, namespace, 0, 1, 0, layers, "host", List.of(group));
        }

        /** The same memory as one entry per layer (strided views). */
        ContextRegistration perLayer(String instance, String namespace) {
            List<LayerSpec> specs = new ArrayList<>();
            for (int l = 0; l < layers; l++) {
                specs.add(new LayerSpec(
                        "layer" + l,
                        l,
                        new RegionSpec.SharedMemory(path.toString(), (long) l * BLOCK),
                        blocks,
                        (long) layers * BLOCK,
                        List.of(new LayerSpec.Segment(0, BLOCK))));
            }
            return new ContextRegistration(instance, namespace, 0, 1, 0, layers, "host", specs);
        }

        @Override
        public void close() throws IOException {
            Files.deleteIfExists(path);
        }
    }

    @Test
    void shouldCopyEachBlockOfAnInterleavedGroupAsOneRunAcrossItsLayers() throws Exception {
        InterleavedGroup group = new InterleavedGroup(8, 16);
        closeables.add(group);
        byte[][] hashes = EngineFixture.hashes("g-", SAVED.length);
        byte[][][] data = new byte[SAVED.length][][];
        for (int i = 0; i < SAVED.length; i++) {
            data[i] = group.fill(SAVED[i], i);
        }
        Registered reg = KvEngineTest.await(fx.engine.register(group.once("g", "group")));
        assertEquals(8L * BLOCK, reg.blockBytes());
        assertEquals(SAVED.length, fx.save(reg.contextId(), SAVED, hashes).sealed());
        long[] shape = lastShape();
        assertEquals(SAVED.length, shape[0], "one run per block, across its 8 layers");
        assertEquals(8L * BLOCK, shape[3] / shape[0]);
        assertEquals(LoadFlagWriter.DONE, loadAndWait(reg.contextId(), LOADED, hashes, 0)[0]);
        assertEquals(SAVED.length, lastShape()[0], "a load too");
        for (int i = 0; i < LOADED.length; i++) {
            for (int l = 0; l < 8; l++) {
                assertArrayEquals(data[i][l], group.read(l, LOADED[i]), "block " + LOADED[i] + " layer " + l);
            }
        }
        // The same memory registered layer by layer lays the pool out the same way: it loads the group's blocks.
        String perLayer = fx.register(group.perLayer("p", "group"));
        for (int i = 0; i < LOADED.length; i++) {
            group.fill(LOADED[i], 99); // scribble
        }
        assertEquals(LoadFlagWriter.DONE, loadAndWait(perLayer, LOADED, hashes, 1)[0]);
        assertEquals(SAVED.length, lastShape()[0], "per-layer entries merge into the same runs");
        for (int i = 0; i < LOADED.length; i++) {
            for (int l = 0; l < 8; l++) {
                assertArrayEquals(
                        data[i][l], group.read(l, LOADED[i]), "per-layer: block " + LOADED[i] + " layer " + l);
            }
        }
    }

    @Test
    void shouldRefuseGroupsThatRunPastTheModelOverlapALayerOrHaveNoLayerStride() throws Exception {
        InterleavedGroup group = new InterleavedGroup(4, 8);
        closeables.add(group);
        ContextRegistration once = group.once("g", "bad-groups");
        LayerSpec g = once.layers().getFirst();
        ContextRegistration pastEnd = Registrations.withTotalLayers(once, 3);
        expectInvalid(pastEnd, "layers[0].layer_count: 4 layers from layer_index 0 run past total_layers (3)");
        LayerSpec noStride =
                new LayerSpec(g.name(), 0, g.region(), g.numBlocks(), g.blockStrideBytes(), g.segments(), false, 4, 0);
        expectInvalid(
                Registrations.withLayer(once, 0, noStride),
                "layers[0].layer_stride_bytes: 0 must be in 1.." + Long.MAX_VALUE + " for a group of 4 layers");
        LayerSpec single = group.perLayer("g", "bad-groups").layers().get(2);
        ContextRegistration overlap =
                new ContextRegistration("g", "bad-groups", 0, 1, 0, 4, "host", List.of(g, single));
        expectInvalid(overlap, "layers[1].layer_index: 2 is registered twice");
        LayerSpec tooLong = new LayerSpec(
                g.name(), 0, g.region(), g.numBlocks(), g.blockStrideBytes(), g.segments(), false, 4, 2L * BLOCK);
        EngineException e =
                assertThrows(EngineException.class, () -> fx.register(Registrations.withLayer(once, 0, tooLong)));
        assertEquals(EngineException.Code.INVALID_ARGUMENT, e.code());
        assertTrue(
                e.getMessage().startsWith("layers[0] (layer 2).segments[0]: block 7 ends at byte 135168"),
                e.getMessage());
        assertEquals(0, fx.engine.contextCount());
    }

    private void expectInvalid(ContextRegistration r, String message) {
        EngineException e = assertThrows(EngineException.class, () -> fx.register(r));
        assertEquals(EngineException.Code.INVALID_ARGUMENT, e.code());
        assertEquals(message, e.getMessage());
    }
}
