package io.pegaflow.fabric.channel;

import static io.pegaflow.fabric.channel.ChannelLayout.*;

import io.pegaflow.fabric.engine.EngineException;
import io.pegaflow.fabric.engine.FutexWake;
import io.pegaflow.fabric.engine.KvEngine;
import io.pegaflow.fabric.engine.LoadBlocks;
import io.pegaflow.fabric.engine.LoadStarted;
import io.pegaflow.fabric.engine.PrefixHits;
import io.pegaflow.fabric.engine.PrefixQuery;
import io.pegaflow.fabric.engine.SaveBlocks;
import io.pegaflow.fabric.engine.SaveResult;
import io.pegaflow.fabric.metrics.EngineCallMetrics;
import io.pegaflow.store.HashList;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.VarHandle;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicIntegerArray;
import java.util.function.Consumer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One context's command channel: a shared-memory file of request slots ({@link ChannelLayout}) and the platform
 * thread that serves it. The thread sleeps in {@code futex(FUTEX_WAIT)} on the header's doorbell (at most {@link
 * #IDLE_WAIT_MS} at a time, to notice a stop, the client's close or the context's end), takes every slot in state
 * REQUEST, checks it, reads it straight from the mapping into the engine's records (three arrays per call, nothing
 * per block) and calls {@link KvEngine} as EngineGrpcImpl does. It never waits for a copy: the engine's stage
 * completes on an engine thread, which writes the reply, sets the slot DONE and futex-wakes the client.
 *
 * <p>A malformed slot (unknown op, stale sequence number, counts over the capacity, a context that is not this
 * channel's) gets INVALID_ARGUMENT / FAILED_PRECONDITION / NOT_FOUND and a message in its slot; the engine is not
 * called. The mapping stays until the thread has exited and every call in flight has written its reply.
 */
final class CommandChannel {
    private static final Logger log = LoggerFactory.getLogger(CommandChannel.class);
    static final long IDLE_WAIT_MS = 100;
    private static final VarHandle INT =
            ValueLayout.JAVA_INT.withOrder(ByteOrder.LITTLE_ENDIAN).varHandle();
    private static final int[] NO_LAYERS = new int[0];

    private final KvEngine engine;
    final String contextId;
    private final byte[] contextBytes;
    final Path path;
    private final ChannelLayout layout;
    private final Consumer<CommandChannel> onClosed;
    private final CompletableFuture<ChannelInfo> ready = new CompletableFuture<>();
    private final Thread thread;
    /** 1 for the serving thread, +1 per call in flight: the mapping goes when it reaches 0. */
    private final AtomicInteger holds = new AtomicInteger(1);

    private final AtomicIntegerArray busy;
    private final long[] lastSeq;
    private volatile boolean stopping;
    private volatile String closedWhy;
    private Arena arena;
    private MemorySegment memory;
    private MemorySegment[] slots;

    CommandChannel(
            KvEngine engine, String contextId, Path path, ChannelLayout layout, Consumer<CommandChannel> onClosed) {
        this.engine = engine;
        this.contextId = contextId;
        this.contextBytes = contextId.getBytes(StandardCharsets.UTF_8);
        this.path = path;
        this.layout = layout;
        this.onClosed = onClosed;
        this.busy = new AtomicIntegerArray(layout.slotCount);
        this.lastSeq = new long[layout.slotCount];
        this.thread = Thread.ofPlatform()
                .daemon()
                .name("pegaflow-channel-" + path.getFileName())
                .unstarted(this::run);
    }

    /** Starts the thread; the stage completes once the file exists and is mapped (done on that thread). */
    CompletionStage<ChannelInfo> start() {
        thread.start();
        return ready;
    }

    /** Asks the thread to stop; it closes the channel within a wake-up. Any thread. */
    void stop(String why) {
        if (closedWhy == null) {
            closedWhy = why;
        }
        stopping = true;
        MemorySegment m = memory;
        if (m != null && tryHold()) {
            try { // held: the mapping cannot be unmapped under the wake
                FutexWake.wakeAll(m.asSlice(H_DOORBELL, 4));
            } finally {
                release();
            }
        }
    }

    /** Takes a hold on the mapping unless it is already let go (holds at 0 means unmapped or about to be). */
    private boolean tryHold() {
        for (int h = holds.get(); h > 0; h = holds.get()) {
            if (holds.compareAndSet(h, h + 1)) {
                return true;
            }
        }
        return false;
    }

    boolean join(long millis) throws InterruptedException {
        return thread.join(java.time.Duration.ofMillis(millis));
    }

    private void run() {
        try {
            create();
        } catch (IOException | RuntimeException e) {
            ready.completeExceptionally(new EngineException(
                    EngineException.Code.INTERNAL, "cannot create the command channel " + path + ": " + e));
            onClosed.accept(this);
            return;
        }
        ready.complete(new ChannelInfo(
                path,
                layout.fileBytes(),
                VERSION,
                layout.slotCount,
                layout.slotBytes,
                layout.maxBlocks,
                layout.maxLayers,
                HEADER_BYTES));
        MemorySegment doorbell = memory.asSlice(H_DOORBELL, 4);
        long beat = 0;
        try (FutexWait futex = new FutexWait()) {
            while (!stopping) {
                int bell = (int) INT.getAcquire(memory, H_DOORBELL);
                memory.set(U64, H_NODE_HEARTBEAT, ++beat);
                for (int i = 0; i < slots.length; i++) {
                    if ((int) INT.getAcquire(slots[i], S_STATE) == REQUEST && busy.get(i) == 0) {
                        take(i);
                    }
                }
                if (memory.get(U32, H_CLIENT_STATE) != 0) {
                    stop("closed by the client");
                } else if (!engine.hasContext(contextId)) {
                    stop("its context ended");
                } else {
                    futex.await(doorbell, bell, IDLE_WAIT_MS * 1_000_000);
                }
            }
        } catch (RuntimeException | Error e) {
            log.error("command channel {} failed; closing it", path, e);
            closedWhy = "failed: " + e;
        } finally {
            shutDown();
        }
    }

    private void create() throws IOException {
        Files.createFile(path, PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rw-------")));
        arena = Arena.ofShared();
        try (FileChannel file = FileChannel.open(path, StandardOpenOption.READ, StandardOpenOption.WRITE)) {
            file.write(ByteBuffer.allocate(1), layout.fileBytes() - 1); // tmpfs: the rest reads as zeros
            memory = file.map(FileChannel.MapMode.READ_WRITE, 0, layout.fileBytes(), arena);
        } catch (IOException | RuntimeException e) {
            arena.close();
            Files.deleteIfExists(path);
            throw e;
        }
        slots = new MemorySegment[layout.slotCount];
        for (int i = 0; i < slots.length; i++) {
            slots[i] = memory.asSlice(layout.slotAt(i), layout.slotBytes);
        }
        memory.set(U32, H_VERSION, VERSION);
        memory.set(U32, H_SLOT_COUNT, layout.slotCount);
        memory.set(U32, H_SLOT_BYTES, (int) layout.slotBytes);
        memory.set(U32, H_MAX_BLOCKS, layout.maxBlocks);
        memory.set(U32, H_MAX_HASH_BYTES, MAX_HASH_BYTES);
        memory.set(U32, H_MAX_LAYERS, layout.maxLayers);
        memory.set(U32, H_MAX_NAME_BYTES, MAX_NAME_BYTES);
        memory.set(U64, H_NODE_PID, ProcessHandle.current().pid());
        memory.set(U32, H_HEADER_BYTES, (int) HEADER_BYTES);
        memory.set(U32, H_NODE_STATE, NODE_OPEN);
        memory.set(U64, H_MAGIC, MAGIC); // last: a reader that sees the magic sees the rest
    }

    /** Runs on the channel's thread once it has stopped taking requests. */
    private void shutDown() {
        if (memory != null) {
            INT.setRelease(memory, H_NODE_STATE, NODE_CLOSED);
            for (MemorySegment slot : slots) {
                FutexWake.wakeAll(slot); // a client waiting on a request nobody will take sees the closed state
            }
        }
        try {
            Files.deleteIfExists(path);
        } catch (IOException e) {
            log.warn("cannot remove the command channel file {}: {}", path, e.toString());
        }
        log.info("command channel {} of context {} closed ({})", path, contextId, closedWhy);
        onClosed.accept(this);
        release();
    }

    private void release() {
        if (holds.decrementAndGet() == 0 && arena != null) {
            arena.close();
        }
    }

    // ---- one request ----

    private void take(int i) {
        MemorySegment slot = slots[i];
        long seq = slot.get(U64, S_SEQ);
        int op = slot.get(U32, S_OP);
        busy.set(i, 1);
        INT.setRelease(slot, S_STATE, TAKEN);
        long startNs = System.nanoTime();
        String opName = opName(op);
        SlotCodes.Failure problem = check(i, slot, op, seq);
        if (problem != null) {
            holds.incrementAndGet();
            finish(i, seq, opName, startNs, problem);
            return;
        }
        holds.incrementAndGet();
        CompletionStage<?> stage;
        try {
            stage = switch (op) {
                case OP_SAVE -> engine.save(save(slot));
                case OP_LOAD -> engine.load(load(slot));
                default -> CompletableFuture.completedFuture(engine.query(query(slot)));
            };
        } catch (RuntimeException e) {
            stage = CompletableFuture.failedFuture(e);
        }
        stage.whenComplete((value, error) -> {
            if (error != null) {
                finish(i, seq, opName, startNs, SlotCodes.failure(error));
            } else {
                writeResult(slot, value);
                finish(i, seq, opName, startNs, null);
            }
        });
    }

    /** Why the slot cannot be served (its code and message), or null; a fresh sequence number is used up. */
    private SlotCodes.Failure check(int i, MemorySegment slot, int op, long seq) {
        if (Long.compareUnsigned(seq, lastSeq[i]) <= 0) {
            return new SlotCodes.Failure(
                    SlotCodes.FAILED_PRECONDITION,
                    "command channel slot " + i + ": seq " + Long.toUnsignedString(seq)
                            + " is stale (this slot's last request had " + Long.toUnsignedString(lastSeq[i])
                            + "): every request needs a higher sequence number");
        }
        lastSeq[i] = seq; // a fresh number is used up by its request, served or refused
        String problem = problem(slot, op);
        if (problem == null) {
            return null;
        }
        int code = problem.startsWith("context_id") ? SlotCodes.NOT_FOUND : SlotCodes.INVALID_ARGUMENT;
        return new SlotCodes.Failure(code, "command channel slot " + i + ": " + problem);
    }

    private String problem(MemorySegment slot, int op) {
        if (op != OP_SAVE && op != OP_LOAD && op != OP_QUERY) {
            return "op " + Integer.toUnsignedString(op) + " is not Save (1), Load (2) or Query (3)";
        }
        long blocks = Integer.toUnsignedLong(slot.get(U32, S_BLOCK_COUNT));
        if (blocks > layout.maxBlocks) {
            return "block_count " + blocks + " is over this channel's " + layout.maxBlocks
                    + " per call: send a bigger call over gRPC";
        }
        long hashBytes = Integer.toUnsignedLong(slot.get(U32, S_HASH_BYTES));
        if (blocks > 0 && (hashBytes < 1 || hashBytes > MAX_HASH_BYTES)) {
            return "hash_bytes " + hashBytes + " is not in 1.." + MAX_HASH_BYTES;
        }
        long layers = Integer.toUnsignedLong(slot.get(U32, S_LAYER_COUNT));
        if (layers > (op == OP_SAVE ? layout.maxLayers : 0)) {
            return "layer_count " + layers + " is over " + (op == OP_SAVE ? layout.maxLayers : 0)
                    + (op == OP_SAVE ? " (this channel's capacity)" : " (only a Save names layers)");
        }
        int flags = slot.get(U32, S_FLAGS);
        if ((flags & ~FLAG_REPLY_WHEN_DONE) != 0 || (op != OP_LOAD && flags != 0)) {
            return "flags 0x" + Integer.toHexString(flags) + " has unknown bits";
        }
        long nameLen = Integer.toUnsignedLong(slot.get(U32, S_NAME_LEN));
        if (nameLen > MAX_NAME_BYTES) {
            return "name length " + nameLen + " is over " + MAX_NAME_BYTES + " bytes";
        }
        long flagPathLen = Integer.toUnsignedLong(slot.get(U32, S_FLAG_PATH_LEN));
        if (flagPathLen > FLAG_PATH_BYTES || (op != OP_LOAD && flagPathLen != 0)) {
            return "flag path length " + flagPathLen + " is over " + (op == OP_LOAD ? FLAG_PATH_BYTES : 0);
        }
        if (op != OP_QUERY && !isThisContext(slot, (int) nameLen)) {
            return "context_id " + quoted(slot, (int) nameLen) + " is not this channel's context " + contextId
                    + " (a channel serves the context it was opened for)";
        }
        return null;
    }

    private boolean isThisContext(MemorySegment slot, int nameLen) {
        return nameLen == contextBytes.length
                && MemorySegment.mismatch(
                                slot, S_NAME, S_NAME + nameLen, MemorySegment.ofArray(contextBytes), 0, nameLen)
                        == -1;
    }

    private static String quoted(MemorySegment slot, int len) {
        return io.pegaflow.fabric.engine.Limits.echo(string(slot, S_NAME, len));
    }

    private SaveBlocks save(MemorySegment slot) {
        int n = slot.get(U32, S_BLOCK_COUNT);
        int layerCount = slot.get(U32, S_LAYER_COUNT);
        int[] layers = layerCount == 0 ? NO_LAYERS : new int[layerCount];
        MemorySegment.copy(slot, U32, layout.layersAt, layers, 0, layerCount);
        return new SaveBlocks(contextId, ids(slot, n), hashes(slot, n), layers);
    }

    private LoadBlocks load(MemorySegment slot) {
        int n = slot.get(U32, S_BLOCK_COUNT);
        int flagPathLen = slot.get(U32, S_FLAG_PATH_LEN);
        String flagPath = flagPathLen == 0 ? "" : string(slot, layout.flagPathAt, flagPathLen);
        boolean replyWhenDone = (slot.get(U32, S_FLAGS) & FLAG_REPLY_WHEN_DONE) != 0;
        return new LoadBlocks(
                contextId,
                ids(slot, n),
                hashes(slot, n),
                slot.get(U64, S_LEASE),
                flagPath,
                slot.get(U64, S_FLAG_OFFSET),
                replyWhenDone);
    }

    private PrefixQuery query(MemorySegment slot) {
        int n = slot.get(U32, S_BLOCK_COUNT);
        String namespace = string(slot, S_NAME, slot.get(U32, S_NAME_LEN));
        long ttl = slot.get(U64, S_LEASE);
        if (ttl < 0 || ttl > 0xFFFF_FFFFL) {
            throw new EngineException(
                    EngineException.Code.INVALID_ARGUMENT,
                    "lease_ttl_ms: " + Long.toUnsignedString(ttl) + " is over uint32");
        }
        return new PrefixQuery(namespace, hashes(slot, n), ttl);
    }

    private int[] ids(MemorySegment slot, int n) {
        int[] ids = new int[n];
        MemorySegment.copy(slot, U32, layout.idsAt, ids, 0, n);
        return ids;
    }

    private HashList hashes(MemorySegment slot, int n) {
        int hashBytes = n == 0 ? 1 : slot.get(U32, S_HASH_BYTES);
        byte[] data = new byte[n * hashBytes];
        MemorySegment.copy(slot, ValueLayout.JAVA_BYTE, layout.hashesAt, data, 0, data.length);
        return HashList.packed(data, hashBytes);
    }

    private static String string(MemorySegment slot, long at, int len) {
        byte[] bytes = new byte[len];
        MemorySegment.copy(slot, ValueLayout.JAVA_BYTE, at, bytes, 0, len);
        return new String(bytes, StandardCharsets.UTF_8);
    }

    private void writeResult(MemorySegment slot, Object value) {
        slot.set(U32, S_FAILED_COUNT, 0);
        switch (value) {
            case SaveResult r -> {
                slot.set(U32, S_R0, r.stored());
                slot.set(U32, S_R1, r.skipped());
                slot.set(U32, S_R2, r.sealed());
            }
            case LoadStarted r -> {
                slot.set(U32, S_R0, r.scheduled());
                LoadStarted.LoadDone done = r.done();
                slot.set(U32, S_R1, done == null ? 0 : done.failed() ? 2 : 1);
                slot.set(U32, S_R2, done == null ? 0 : (int) done.loaded());
                slot.set(U32, S_R3, done == null ? 0 : (int) done.failedBlocks());
                slot.set(U64, S_R4, done == null ? 0 : done.durationNs());
                int[] failed = r.failedBlockIds();
                int count = Math.min(failed.length, layout.maxBlocks);
                MemorySegment.copy(failed, 0, slot, U32, layout.idsAt, count);
                slot.set(U32, S_FAILED_COUNT, count);
            }
            case PrefixHits r -> {
                slot.set(U32, S_R0, r.hitBlocks());
                slot.set(U32, S_R1, r.hitBlocks());
                slot.set(U64, S_R4, r.leaseId());
                slot.set(U64, S_R5, r.leaseExpiresInMs());
            }
            default -> throw new IllegalStateException("unexpected result " + value);
        }
    }

    /** Writes the status (and message), then the state DONE with release semantics, then wakes the client. */
    private void finish(int i, long seq, String op, long startNs, SlotCodes.Failure failure) {
        MemorySegment slot = slots[i];
        try {
            if (failure == null) {
                slot.set(U32, S_STATUS, SlotCodes.OK);
                slot.set(U32, S_MESSAGE_LEN, 0);
            } else {
                byte[] message = failure.message().getBytes(StandardCharsets.UTF_8);
                int len = Math.min(message.length, MESSAGE_BYTES);
                MemorySegment.copy(message, 0, slot, ValueLayout.JAVA_BYTE, layout.messageAt, len);
                slot.set(U32, S_STATUS, failure.code());
                slot.set(U32, S_MESSAGE_LEN, len);
                slot.set(U32, S_FAILED_COUNT, 0);
            }
            slot.set(U64, S_REPLY_SEQ, seq);
            busy.set(i, 0);
            INT.setRelease(slot, S_STATE, DONE);
            FutexWake.wakeAll(slot);
            EngineCallMetrics.record(
                    op,
                    EngineCallMetrics.SHM,
                    SlotCodes.name(failure == null ? 0 : failure.code()),
                    System.nanoTime() - startNs);
        } finally {
            release();
        }
    }

    private static String opName(int op) {
        return switch (op) {
            case OP_SAVE -> "Save";
            case OP_LOAD -> "Load";
            case OP_QUERY -> "Query";
            default -> "unknown";
        };
    }
}
