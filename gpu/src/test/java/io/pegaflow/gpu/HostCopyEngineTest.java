package io.pegaflow.gpu;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import org.junit.jupiter.api.AfterEach;

/** The copy-engine contract on the host engine ({@code memcpy} between off-heap segments). */
class HostCopyEngineTest extends CopyEngineContract {
    private final HostCopyEngine engine = new HostCopyEngine();
    private final Arena arena = Arena.ofShared();

    @AfterEach
    void closeArena() {
        arena.close();
    }

    @Override
    protected CopyEngine engine() {
        return engine;
    }

    @Override
    protected MemorySegment workerMemory(long bytes) {
        return arena.allocate(bytes, 4096);
    }

    @Override
    protected MemorySegment poolMemory(long bytes) {
        return arena.allocate(bytes, 4096);
    }

    @Override
    protected void write(MemorySegment target, long offset, byte[] data) {
        MemorySegment.copy(data, 0, target, ValueLayout.JAVA_BYTE, offset, data.length);
    }

    @Override
    protected byte[] read(MemorySegment source, long offset, int length) {
        return source.asSlice(offset, length).toArray(ValueLayout.JAVA_BYTE);
    }
}
