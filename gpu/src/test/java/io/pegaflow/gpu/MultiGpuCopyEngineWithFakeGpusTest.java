package io.pegaflow.gpu;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * Routing of {@link MultiGpuCopyEngine} on this CPU-only machine. The GPUs are fakes (a GPU cannot run here): each
 * fake engine "owns" the segments it was told are its device memory and copies with memcpy, recording what it ran;
 * the real CUDA engines behind the router are tested by {@code MultiGpuCudaTest} on a GPU.
 */
class MultiGpuCopyEngineWithFakeGpusTest {
    private final Arena arena = Arena.ofShared();

    @AfterEach
    void close() {
        arena.close();
    }

    /** A fake GPU's engine: memcpy, plus which segments count as its device memory and what it copied. */
    private static final class FakeGpuEngine implements CopyEngine {
        final String uuid;
        final List<MemorySegment> deviceMemory = new ArrayList<>();
        final List<String> opened = new ArrayList<>();
        int copies;
        boolean closed;

        FakeGpuEngine(String uuid) {
            this.uuid = uuid;
        }

        @Override
        public String name() {
            return "cuda";
        }

        @Override
        public Optional<String> deviceUuid() {
            return Optional.of(uuid);
        }

        @Override
        public boolean ownsDeviceMemory(MemorySegment s) {
            return deviceMemory.stream()
                    .anyMatch(m ->
                            s.address() >= m.address() && s.address() + s.byteSize() <= m.address() + m.byteSize());
        }

        @Override
        public void copy(MemorySegment[] srcs, MemorySegment[] dsts, CopyBatch batch) {
            copies++;
            new HostCopyEngine().copy(srcs, dsts, batch);
        }

        @Override
        public MappedRegion openCudaIpc(byte[] handle, long size) {
            opened.add(uuid);
            return null;
        }

        @Override
        public void close() {
            closed = true;
        }
    }

    private static final String GPU0 = "GPU-00000000-0000-0000-0000-000000000000";
    private static final String GPU1 = "GPU-11111111-1111-1111-1111-111111111111";

    @Test
    void shouldSendEachCopyToTheEngineWhoseGpuOwnsTheWorkersMemory() {
        FakeGpuEngine e0 = new FakeGpuEngine(GPU0);
        FakeGpuEngine e1 = new FakeGpuEngine(GPU1);
        MultiGpuCopyEngine router = new MultiGpuCopyEngine(List.of(e0, e1));
        MemorySegment pool = arena.allocate(1 << 16, 4096);
        MemorySegment onGpu1 = arena.allocate(1 << 12, 4096);
        MemorySegment onGpu0 = arena.allocate(1 << 12, 4096);
        e0.deviceMemory.add(onGpu0);
        e1.deviceMemory.add(onGpu1);
        onGpu1.fill((byte) 7);
        CopyBatch batch = new CopyBatch(1);
        batch.add(0, 4096, 4096);

        router.copy(onGpu1, pool, batch); // a save from a rank on GPU 1
        CopyBatch load = new CopyBatch(1);
        load.add(4096, 0, 4096);
        router.copy(pool, onGpu0, load); // a load into a rank on GPU 0 (the GPU side is the destination)

        assertEquals(1, e1.copies);
        assertEquals(1, e0.copies);
        byte[] expected = new byte[4096];
        java.util.Arrays.fill(expected, (byte) 7);
        assertArrayEquals(expected, onGpu0.toArray(ValueLayout.JAVA_BYTE));
    }

    @Test
    void shouldLookAtEveryPartOfAMultiRegionCopy() {
        FakeGpuEngine e0 = new FakeGpuEngine(GPU0);
        FakeGpuEngine e1 = new FakeGpuEngine(GPU1);
        MultiGpuCopyEngine router = new MultiGpuCopyEngine(List.of(e0, e1));
        MemorySegment pool = arena.allocate(1 << 16, 4096);
        MemorySegment plain = arena.allocate(4096, 4096);
        MemorySegment layer = arena.allocate(4096, 4096);
        e1.deviceMemory.add(layer);
        CopyBatch batch = new CopyBatch(2);
        batch.add(1, 0, 0, 0, 4096);

        assertSame(e1, router.engineFor(new MemorySegment[] {plain, layer}, 2, new MemorySegment[] {pool}, 1));
        router.copy(new MemorySegment[] {plain, layer}, new MemorySegment[] {pool}, batch);
        assertEquals(1, e1.copies);
    }

    @Test
    void shouldCopyHostToHostOnTheFirstEngineWhenNoGpuOwnsEitherSide() {
        FakeGpuEngine e0 = new FakeGpuEngine(GPU0);
        FakeGpuEngine e1 = new FakeGpuEngine(GPU1);
        MultiGpuCopyEngine router = new MultiGpuCopyEngine(List.of(e0, e1));
        CopyBatch batch = new CopyBatch(1);
        batch.add(0, 0, 4096);

        router.copy(arena.allocate(4096, 4096), arena.allocate(4096, 4096), batch);

        assertEquals(1, e0.copies);
        assertEquals(0, e1.copies);
    }

    @Test
    void shouldOpenAnIpcHandleOnTheGpuTheRegistrationNamesInAnySpelling() {
        FakeGpuEngine e0 = new FakeGpuEngine(GPU0);
        FakeGpuEngine e1 = new FakeGpuEngine(GPU1);
        MultiGpuCopyEngine router = new MultiGpuCopyEngine(List.of(e0, e1));

        router.openCudaIpc("11111111111111111111111111111111", new byte[64], 1);
        router.openCudaIpc(GPU0.toUpperCase(java.util.Locale.ROOT), new byte[64], 1);

        assertEquals(List.of(GPU1), e1.opened);
        assertEquals(List.of(GPU0), e0.opened);
        assertEquals(List.of(GPU0, GPU1), router.deviceUuids());
        IllegalArgumentException e = assertThrows(
                IllegalArgumentException.class,
                () -> router.openCudaIpc("GPU-22222222-2222-2222-2222-222222222222", new byte[64], 1));
        assertTrue(e.getMessage().contains("not served here"), e.getMessage());
        assertTrue(e0.opened.size() == 1 && e1.opened.size() == 1);
    }

    @Test
    void shouldRefuseTwoEnginesForOneGpuAndNoEngines() {
        assertThrows(IllegalArgumentException.class, () -> new MultiGpuCopyEngine(List.of()));
        assertThrows(
                IllegalArgumentException.class,
                () -> new MultiGpuCopyEngine(List.of(new FakeGpuEngine(GPU0), new FakeGpuEngine(GPU0.toLowerCase()))));
        assertThrows(IllegalArgumentException.class, () -> new MultiGpuCopyEngine(List.of(new HostCopyEngine())));
    }

    @Test
    void shouldCloseEveryEngine() {
        FakeGpuEngine e0 = new FakeGpuEngine(GPU0);
        FakeGpuEngine e1 = new FakeGpuEngine(GPU1);
        new MultiGpuCopyEngine(List.of(e0, e1)).close();
        assertTrue(e0.closed && e1.closed);
    }

    @Test
    void shouldCheckTheDeviceOfASingleGpuEngineByDefault() {
        FakeGpuEngine e0 = new FakeGpuEngine(GPU0);
        e0.openCudaIpc(GPU0, new byte[64], 1);
        assertThrows(IllegalArgumentException.class, () -> e0.openCudaIpc(GPU1, new byte[64], 1));
        assertEquals(List.of(GPU0), e0.opened);
    }
}
