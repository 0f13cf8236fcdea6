package io.pegaflow.gpu.cuda;

import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.pegaflow.gpu.CopyBatch;
import io.pegaflow.gpu.CopyEngine;
import io.pegaflow.gpu.CopyEngineContract;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Nested;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.Timeout;

/**
 * The copy-engine contract on the CUDA engine, once per copy mode: worker memory is device memory, the pool is
 * pinned host memory. Small staging buffers (64 KiB, a ring of 3) make every test cross chunks and wrap the ring.
 * Skips, saying why, where {@link CudaProbe} finds no usable GPU (CI).
 */
class CudaCopyEngineContractTest {
    static CudaDevice device;

    /** Skips the calling test, saying why, where CUDA is unusable; opens device 0 once. */
    static synchronized void requireGpu() {
        assumeTrue(
                CudaProbe.isAvailable(),
                () -> "CUDA tests skipped: " + CudaProbe.unavailabilityCause().orElse(""));
        if (device == null) {
            device = CudaDevice.open("0");
        }
    }

    @AfterAll
    static void closeDevice() {
        if (device != null) {
            device.close();
            device = null;
        }
    }

    /**
     * The close race on the real engine: copy threads keep copying GPU to pinned memory while the engine closes; each
     * must come back, done or refused as closed, never parked. ({@link LaneDispatcherTest} pins the race down on the
     * CPU.)
     */
    @Test
    @Timeout(180)
    void shouldEndEveryCopyThatRacesCloseDoneOrRefusedAsClosed() throws Exception {
        requireGpu();
        int threads = 4;
        long runBytes = 64 * 1024;
        try (DeviceBuffer src = device.allocate(runBytes);
                PinnedHostMemory dst = device.allocatePinned(threads * runBytes)) {
            for (int round = 0; round < 20; round++) {
                CudaCopyEngine engine = CudaCopyEngine.create(device, CudaCopySettings.defaults());
                List<CompletableFuture<String>> copiers = new ArrayList<>();
                for (int t = 0; t < threads; t++) {
                    CopyBatch batch = new CopyBatch(1);
                    batch.add(0, t * runBytes, runBytes);
                    CompletableFuture<String> refusal = new CompletableFuture<>();
                    Thread copier = new Thread(
                            () -> {
                                try {
                                    while (true) {
                                        engine.copy(src.memory(), dst.memory(), batch);
                                    }
                                } catch (IllegalStateException e) {
                                    refusal.complete(e.getMessage());
                                } catch (Throwable e) {
                                    refusal.completeExceptionally(e);
                                }
                            },
                            "test-copier-" + t);
                    copier.setDaemon(true);
                    copier.start();
                    copiers.add(refusal);
                }
                Thread.sleep(round % 5);
                engine.close();
                for (CompletableFuture<String> copier : copiers) {
                    String message;
                    try {
                        message = copier.get(30, TimeUnit.SECONDS);
                    } catch (TimeoutException e) {
                        message = fail("round " + round + ": a copy was still parked 30 s after close");
                    }
                    assertTrue(message.contains("closed"), message);
                }
            }
        }
    }

    @TestInstance(TestInstance.Lifecycle.PER_CLASS)
    abstract static class ModeContract extends CopyEngineContract {
        private CudaCopyEngine engine;
        private final List<AutoCloseable> allocations = new ArrayList<>();

        abstract CudaCopyMode mode();

        @BeforeEach
        void gpu() {
            requireGpu();
        }

        @Override
        protected CopyEngine engine() {
            if (engine == null) {
                CudaCopySettings settings = CudaCopySettings.defaults()
                        .withModes(mode(), mode())
                        .withStaging(64 * 1024, 3)
                        .withGrid(16, 256);
                engine = CudaCopyEngine.create(device, settings);
            }
            return engine;
        }

        @AfterEach
        void free() throws Exception {
            for (AutoCloseable a : allocations) {
                a.close();
            }
            allocations.clear();
        }

        @AfterAll
        void closeEngine() {
            if (engine != null) {
                engine.close();
            }
        }

        @Override
        protected MemorySegment workerMemory(long bytes) {
            DeviceBuffer buffer = device.allocate(bytes);
            allocations.add(buffer);
            return buffer.memory();
        }

        @Override
        protected MemorySegment poolMemory(long bytes) {
            // Memory mapped elsewhere, then registered (as the node does with its pool); unregistered before freed.
            Arena owner = Arena.ofShared();
            PinnedHostMemory pinned = device.registerHost(owner.allocate(Math.max(bytes, 4096), 4096));
            allocations.add(() -> {
                pinned.close();
                owner.close();
            });
            return pinned.memory().asSlice(0, bytes);
        }

        @Override
        protected void write(MemorySegment target, long offset, byte[] data) {
            try (Arena arena = Arena.ofConfined()) {
                MemorySegment staging = arena.allocate(Math.max(1, data.length));
                MemorySegment.copy(data, 0, staging, ValueLayout.JAVA_BYTE, 0, data.length);
                device.copySync(target.address() + offset, staging.address(), data.length);
            }
        }

        @Override
        protected byte[] read(MemorySegment source, long offset, int length) {
            try (Arena arena = Arena.ofConfined()) {
                MemorySegment staging = arena.allocate(Math.max(1, length));
                device.copySync(staging.address(), source.address() + offset, length);
                return staging.asSlice(0, length).toArray(ValueLayout.JAVA_BYTE);
            }
        }
    }

    @Nested
    class Kernel extends ModeContract {
        @Override
        CudaCopyMode mode() {
            return CudaCopyMode.KERNEL;
        }
    }

    @Nested
    class Staged extends ModeContract {
        @Override
        CudaCopyMode mode() {
            return CudaCopyMode.STAGED;
        }
    }

    /** The default: each copy staged or run by the kernel from its host ranges (the contract's runs take both). */
    @Nested
    class Auto extends ModeContract {
        @Override
        CudaCopyMode mode() {
            return CudaCopyMode.AUTO;
        }
    }

    @Nested
    class Memcpy extends ModeContract {
        @Override
        CudaCopyMode mode() {
            return CudaCopyMode.MEMCPY;
        }
    }

    @Nested
    class Batch extends ModeContract {
        @Override
        CudaCopyMode mode() {
            return CudaCopyMode.BATCH;
        }
    }
}
