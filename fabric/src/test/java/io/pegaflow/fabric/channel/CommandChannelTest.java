package io.pegaflow.fabric.channel;

import static io.pegaflow.fabric.channel.ChannelLayout.*;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.pegaflow.fabric.engine.ContextRegistration;
import io.pegaflow.fabric.engine.EngineException;
import io.pegaflow.fabric.engine.FutexWake;
import io.pegaflow.fabric.engine.KvEngine;
import io.pegaflow.fabric.engine.LayerSpec;
import io.pegaflow.fabric.engine.PrefixQuery;
import io.pegaflow.fabric.engine.RegionSpec;
import io.pegaflow.gpu.HostCopyEngine;
import io.pegaflow.store.BlockStore;
import io.pegaflow.store.HashList;
import io.pegaflow.store.pool.BlockPool;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.UUID;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.function.Consumer;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * A real engine (host copies, a real pool) behind real command channels in /dev/shm; this test plays the client,
 * writing slots into its own mapping of the channel file as python/pegaflow/channel.py does.
 */
@Timeout(60)
class CommandChannelTest {
    private static final int LAYERS = 2;
    private static final int BLOCKS = 32;
    private static final int BLOCK_BYTES = 4096;

    private final GatedCopies copies = new GatedCopies();
    private BlockStore store;
    private KvEngine engine;
    private CommandChannels channels;
    private Path kvFile;
    private MemorySegment kv;
    private Arena arena;
    private String contextId;
    private final List<Client> clients = new ArrayList<>();

    @BeforeEach
    void setUp() throws Exception {
        store = new BlockStore(BlockPool.allocateOffHeap(64L << 20), 30_000_000_000L, System::nanoTime);
        engine = KvEngine.builder(store, copies).build();
        channels = new CommandChannels(engine, new CommandChannels.Settings(true, Path.of("/dev/shm"), 4, 64, 8, 2));
        arena = Arena.ofShared();
        kvFile = Path.of("/dev/shm", "pegaflow-test-chan-kv-" + UUID.randomUUID());
        long size = (long) LAYERS * BLOCKS * BLOCK_BYTES;
        try (FileChannel f = FileChannel.open(
                kvFile, StandardOpenOption.CREATE_NEW, StandardOpenOption.READ, StandardOpenOption.WRITE)) {
            f.truncate(size);
            f.write(java.nio.ByteBuffer.allocate(1), size - 1);
            kv = f.map(FileChannel.MapMode.READ_WRITE, 0, size, arena);
        }
        contextId = register("chan-test");
    }

    private String register(String instance) throws Exception {
        List<LayerSpec> layers = new ArrayList<>();
        for (int l = 0; l < LAYERS; l++) {
            layers.add(new LayerSpec(
                    "model.layers." + l + ".attn",
                    l,
                    new RegionSpec.SharedMemory(kvFile.toString(), (long) l * BLOCKS * BLOCK_BYTES),
                    BLOCKS,
                    BLOCK_BYTES,
                    List.of(new LayerSpec.Segment(0, BLOCK_BYTES))));
        }
        return engine.register(new ContextRegistration(instance, "chan/ns", 0, 1, 0, LAYERS, "host", layers))
                .toCompletableFuture()
                .get(10, TimeUnit.SECONDS)
                .contextId();
    }

    @AfterEach
    void tearDown() throws Exception {
        for (Client c : clients) {
            c.close();
        }
        channels.close();
        engine.close();
        store.pool().close();
        arena.close();
        Files.deleteIfExists(kvFile);
    }

    @Test
    void shouldSaveThroughTheChannelWithTheEnginesFiguresAndSealTheBlocks() throws Exception {
        Client client = open(contextId);
        byte[][] hashes = hashes("save", 8);
        Reply first = client.call(0, OP_SAVE, contextId, ids(0, 8), hashes, s -> {});
        assertEquals(0, first.status, first.message);
        assertArrayEquals(new int[] {8, 0, 8}, new int[] {first.r0, first.r1, first.r2});
        Reply again = client.call(0, OP_SAVE, contextId, ids(0, 8), hashes, s -> {});
        assertArrayEquals(new int[] {0, 8, 0}, new int[] {again.r0, again.r1, again.r2});
        assertEquals(
                8,
                engine.query(new PrefixQuery("chan/ns", HashList.of(hashes), 0)).hitBlocks());
    }

    @Test
    void shouldLoadThroughTheChannelAndReplyOnlyOnceTheCopyEnded() throws Exception {
        Client client = open(contextId);
        byte[] content = new byte[BLOCK_BYTES];
        new Random(7).nextBytes(content);
        MemorySegment.copy(content, 0, kv, ValueLayout.JAVA_BYTE, 3L * BLOCK_BYTES, BLOCK_BYTES);
        byte[][] hashes = hashes("load", 1);
        assertEquals(0, client.call(0, OP_SAVE, contextId, new int[] {3}, hashes, s -> {}).status);
        Reply loaded = client.call(
                1, OP_LOAD, contextId, new int[] {20}, hashes, s -> s.set(U32, S_FLAGS, FLAG_REPLY_WHEN_DONE));
        assertEquals(0, loaded.status, loaded.message);
        assertEquals(1, loaded.r0, "scheduled");
        assertEquals(1, loaded.r1, "done_state: done");
        assertEquals(1, loaded.r2, "loaded");
        byte[] copied = new byte[BLOCK_BYTES];
        MemorySegment.copy(kv, ValueLayout.JAVA_BYTE, 20L * BLOCK_BYTES, copied, 0, BLOCK_BYTES);
        assertArrayEquals(content, copied);
        Reply missing = client.call(
                1,
                OP_LOAD,
                contextId,
                new int[] {21},
                hashes("nowhere", 1),
                s -> s.set(U32, S_FLAGS, FLAG_REPLY_WHEN_DONE));
        assertEquals(2, missing.r1, "done_state: failed");
        assertEquals(1, missing.failedCount);
    }

    @Test
    void shouldKeepServingWhileACopyRunsBecauseTheChannelThreadNeverWaitsForOne() throws Exception {
        Client client = open(contextId);
        copies.gate = new java.util.concurrent.CountDownLatch(1);
        byte[][] hashes = hashes("held", 2);
        client.post(0, OP_SAVE, contextId, ids(0, 2), hashes, s -> {});
        assertTrue(copies.entered.await(10, TimeUnit.SECONDS), "the save's copy started");
        Reply hits = client.call(1, OP_QUERY, "chan/ns", new int[2], hashes, s -> {});
        assertEquals(0, hits.status, hits.message);
        assertEquals(0, hits.r0, "answered while the save's copy is held: nothing sealed yet");
        assertFalse(copies.thread.startsWith("pegaflow-channel-"), "copied on " + copies.thread);
        copies.gate.countDown();
        Reply saved = client.await(0);
        assertEquals(2, saved.r2, "sealed once the copy ran");
    }

    @Test
    void shouldAnswerAQueryWithTheSealedPrefix() throws Exception {
        Client client = open(contextId);
        byte[][] hashes = hashes("query", 4);
        client.call(0, OP_SAVE, contextId, ids(0, 2), new byte[][] {hashes[0], hashes[1]}, s -> {});
        Reply hits = client.call(2, OP_QUERY, "chan/ns", new int[4], hashes, s -> {});
        assertEquals(0, hits.status, hits.message);
        assertEquals(2, hits.r0);
    }

    @Test
    void shouldRefuseEveryMalformedSlotWithACodeAndMessageAndChangeNothing() throws Exception {
        Client client = open(contextId);
        byte[][] hashes = hashes("bad", 2);
        int[] two = ids(0, 2);
        expect(client.call(0, 9, contextId, two, hashes, s -> {}), 3, "op 9 is not Save");
        expect(
                client.call(0, OP_SAVE, contextId, two, hashes, s -> s.set(U32, S_BLOCK_COUNT, 65)),
                3,
                "block_count 65 is over this channel's 64");
        expect(
                client.call(0, OP_SAVE, contextId, two, hashes, s -> s.set(U32, S_HASH_BYTES, 0)),
                3,
                "hash_bytes 0 is not in 1..64");
        expect(client.call(0, OP_SAVE, contextId, two, hashes, s -> s.set(U32, S_HASH_BYTES, 65)), 3, "hash_bytes 65");
        expect(
                client.call(0, OP_SAVE, contextId, two, hashes, s -> s.set(U32, S_LAYER_COUNT, 9)),
                3,
                "layer_count 9 is over 8");
        expect(
                client.call(0, OP_SAVE, contextId, two, hashes, s -> s.set(U32, S_NAME_LEN, 100_000)),
                3,
                "name length 100000");
        expect(client.call(0, OP_SAVE, "ctx-of-someone-else", two, hashes, s -> {}), 5, "is not this channel's");
        expect(
                client.call(0, OP_SAVE, contextId, two, hashes, s -> s.set(U32, S_FLAGS, 4)),
                3,
                "flags 0x4 has unknown bits");
        expect(client.call(0, OP_SAVE, contextId, new int[] {BLOCKS + 5, 1}, hashes, s -> {}), 3, "block_id");
        // A stale sequence number: the slot's last request had a higher one.
        client.seq[1] = 10;
        assertEquals(0, client.call(1, OP_QUERY, "chan/ns", new int[2], hashes, s -> {}).status);
        client.seq[1] = 3;
        expect(client.call(1, OP_SAVE, contextId, two, hashes, s -> {}), 9, "seq 4 is stale");
        assertEquals(
                0,
                engine.query(new PrefixQuery("chan/ns", HashList.of(hashes), 0)).hitBlocks(),
                "nothing");
        // And the channel still serves a good request.
        Reply ok = client.call(0, OP_SAVE, contextId, two, hashes, s -> {});
        assertEquals(0, ok.status, ok.message);
        assertEquals(2, ok.r0);
    }

    @Test
    void shouldCreateTheFileOwnerOnlyAndRemoveItWhenTheContextEnds() throws Exception {
        Client client = open(contextId);
        assertEquals("rw-------", PosixFilePermissions.toString(Files.getPosixFilePermissions(client.path)));
        assertEquals(1, channels.openCount());
        engine.unregister(contextId, "test").toCompletableFuture().get(10, TimeUnit.SECONDS);
        waitFor(() -> !Files.exists(client.path), "the channel file removed");
        waitFor(() -> client.header.get(U32, H_NODE_STATE) == NODE_CLOSED, "the header says closed");
        waitFor(() -> channels.openCount() == 0, "the channel forgotten");
    }

    @Test
    void shouldCloseWhenTheClientSaysSo() throws Exception {
        Client client = open(contextId);
        client.header.set(U32, H_CLIENT_STATE, 1);
        FutexWake.wakeAll(client.header.asSlice(H_DOORBELL, 4));
        waitFor(() -> !Files.exists(client.path), "the channel file removed");
        assertTrue(engine.hasContext(contextId), "the context stays");
    }

    @Test
    void shouldRemoveEveryFileAtStopAndRefuseNewChannelsThen() throws Exception {
        Client a = open(contextId);
        Client b = open(contextId);
        channels.close();
        assertFalse(Files.exists(a.path));
        assertFalse(Files.exists(b.path));
        assertEquals(NODE_CLOSED, a.header.get(U32, H_NODE_STATE));
        expectRefused(contextId, EngineException.Code.UNAVAILABLE);
    }

    @Test
    void shouldLimitChannelsPerContextAndRefuseUnknownContexts() throws Exception {
        open(contextId);
        open(contextId);
        expectRefused(contextId, EngineException.Code.RESOURCE_EXHAUSTED);
        expectRefused("no-such-context", EngineException.Code.NOT_FOUND);
    }

    private void expectRefused(String context, EngineException.Code code) throws Exception {
        try {
            channels.open(context).toCompletableFuture().get(10, TimeUnit.SECONDS);
            throw new AssertionError("opened a channel for " + context);
        } catch (ExecutionException e) {
            assertEquals(code, EngineException.unwrap(e.getCause()).code());
        }
    }

    private static void expect(Reply reply, int status, String fragment) {
        assertEquals(status, reply.status, reply.message);
        assertTrue(reply.message.contains(fragment), reply.message + " lacks " + fragment);
    }

    private static void waitFor(java.util.function.BooleanSupplier done, String what) throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        while (!done.getAsBoolean()) {
            if (System.nanoTime() > deadline) {
                throw new AssertionError("not within 10 s: " + what);
            }
            Thread.sleep(5);
        }
    }

    private Client open(String context) throws Exception {
        ChannelInfo info = channels.open(context).toCompletableFuture().get(10, TimeUnit.SECONDS);
        Client c = new Client(info);
        clients.add(c);
        return c;
    }

    private static int[] ids(int from, int n) {
        int[] ids = new int[n];
        for (int i = 0; i < n; i++) {
            ids[i] = from + i;
        }
        return ids;
    }

    private static byte[][] hashes(String prefix, int n) {
        byte[][] h = new byte[n][];
        for (int i = 0; i < n; i++) {
            h[i] = String.format("%-32s", prefix + "/" + i).getBytes(StandardCharsets.UTF_8);
        }
        return h;
    }

    /** Host copies; held at their start while {@link #gate} is set, recording the copying thread. */
    private static final class GatedCopies implements io.pegaflow.gpu.CopyEngine {
        final HostCopyEngine host = new HostCopyEngine();
        final java.util.concurrent.CountDownLatch entered = new java.util.concurrent.CountDownLatch(1);
        volatile java.util.concurrent.CountDownLatch gate;
        volatile String thread = "";

        @Override
        public String name() {
            return "host";
        }

        @Override
        public void copy(MemorySegment[] srcs, MemorySegment[] dsts, io.pegaflow.gpu.CopyBatch batch) {
            thread = Thread.currentThread().getName();
            java.util.concurrent.CountDownLatch g = gate;
            if (g != null) {
                entered.countDown();
                try {
                    if (!g.await(20, TimeUnit.SECONDS)) {
                        throw new IllegalStateException("the test never released the copy");
                    }
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    throw new IllegalStateException(e);
                }
            }
            host.copy(srcs, dsts, batch);
        }
    }

    private record Reply(int status, String message, int r0, int r1, int r2, int failedCount) {}

    /** The client's half, as channel.py writes it: request fields, state REQUEST last, doorbell, futex wake. */
    private static final class Client implements AutoCloseable {
        final Path path;
        final Arena arena = Arena.ofShared();
        final MemorySegment header;
        final ChannelLayout layout;
        final long[] seq;

        Client(ChannelInfo info) throws Exception {
            this.path = info.path();
            try (FileChannel f = FileChannel.open(path, StandardOpenOption.READ, StandardOpenOption.WRITE)) {
                header = f.map(FileChannel.MapMode.READ_WRITE, 0, info.sizeBytes(), arena);
            }
            assertEquals(MAGIC, header.get(U64, H_MAGIC));
            assertEquals(VERSION, header.get(U32, H_VERSION));
            layout = new ChannelLayout(info.slotCount(), info.maxBlocks(), info.maxLayers());
            assertEquals(layout.slotBytes, info.slotBytes());
            seq = new long[info.slotCount()];
        }

        Reply call(int i, int op, String name, int[] ids, byte[][] hashes, Consumer<MemorySegment> tweak)
                throws InterruptedException {
            post(i, op, name, ids, hashes, tweak);
            return await(i);
        }

        void post(int i, int op, String name, int[] ids, byte[][] hashes, Consumer<MemorySegment> tweak) {
            MemorySegment slot = header.asSlice(layout.slotAt(i), layout.slotBytes);
            byte[] nameBytes = name.getBytes(StandardCharsets.UTF_8);
            MemorySegment.copy(nameBytes, 0, slot, ValueLayout.JAVA_BYTE, S_NAME, nameBytes.length);
            MemorySegment.copy(ids, 0, slot, U32, layout.idsAt, ids.length);
            for (int b = 0; b < hashes.length; b++) {
                MemorySegment.copy(
                        hashes[b], 0, slot, ValueLayout.JAVA_BYTE, layout.hashesAt + 32L * b, hashes[b].length);
            }
            slot.set(U32, S_OP, op);
            slot.set(U64, S_SEQ, ++seq[i]);
            slot.set(U32, S_BLOCK_COUNT, ids.length);
            slot.set(U32, S_HASH_BYTES, 32);
            slot.set(U32, S_LAYER_COUNT, 0);
            slot.set(U32, S_FLAGS, 0);
            slot.set(U64, S_LEASE, 0);
            slot.set(U32, S_NAME_LEN, nameBytes.length);
            slot.set(U32, S_FLAG_PATH_LEN, 0);
            tweak.accept(slot);
            slot.set(U32, S_STATE, REQUEST);
            header.set(U32, H_DOORBELL, header.get(U32, H_DOORBELL) + 1);
            FutexWake.wakeAll(header.asSlice(H_DOORBELL, 4));
        }

        Reply await(int i) throws InterruptedException {
            MemorySegment slot = header.asSlice(layout.slotAt(i), layout.slotBytes);
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
            while (slot.get(U32, S_STATE) != DONE) {
                if (System.nanoTime() > deadline) {
                    throw new AssertionError("no reply in slot " + i);
                }
                Thread.sleep(1);
            }
            assertEquals(seq[i], slot.get(U64, S_REPLY_SEQ));
            int len = slot.get(U32, S_MESSAGE_LEN);
            byte[] message = new byte[len];
            MemorySegment.copy(slot, ValueLayout.JAVA_BYTE, layout.messageAt, message, 0, len);
            Reply r = new Reply(
                    slot.get(U32, S_STATUS),
                    new String(message, StandardCharsets.UTF_8),
                    slot.get(U32, S_R0),
                    slot.get(U32, S_R1),
                    slot.get(U32, S_R2),
                    slot.get(U32, S_FAILED_COUNT));
            slot.set(U32, S_STATE, FREE);
            return r;
        }

        @Override
        public void close() {
            arena.close();
        }
    }
}
