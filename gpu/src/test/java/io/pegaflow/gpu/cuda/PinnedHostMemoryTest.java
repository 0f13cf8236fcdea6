package io.pegaflow.gpu.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/** Pinned host memory on a real GPU: registering memory mapped elsewhere, and cuMemHostAlloc. Skips without CUDA. */
class PinnedHostMemoryTest {
    private static final long BYTES = 4L << 20;
    static CudaDevice device;

    @BeforeEach
    void gpu() {
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

    @Test
    void shouldRegisterExistingMemoryAtItsAddressAndLeaveItToItsOwnerWhenClosed() {
        try (Arena owner = Arena.ofShared()) {
            MemorySegment memory = owner.allocate(BYTES, 4096);
            for (long i = 0; i < BYTES; i += 8) {
                memory.set(ValueLayout.JAVA_LONG, i, i * 31);
            }
            byte[] copied;
            try (PinnedHostMemory pinned = device.registerHost(memory);
                    DeviceBuffer gpu = device.allocate(BYTES)) {
                assertEquals(PinnedHostMemory.Strategy.REGISTER, pinned.strategy());
                assertEquals(memory.address(), pinned.memory().address());
                assertEquals(BYTES, pinned.sizeBytes());
                device.copySync(gpu.memory().address(), pinned.memory().address(), BYTES);
                pinned.memory().fill((byte) 0);
                device.copySync(pinned.memory().address(), gpu.memory().address(), BYTES);
                copied = pinned.memory().toArray(ValueLayout.JAVA_BYTE);
            }
            // Unregistered, the memory is still the owner's, unchanged by the round trip, and can be registered again.
            for (long i = 0; i < BYTES; i += 8) {
                assertEquals(i * 31, memory.get(ValueLayout.JAVA_LONG, i));
            }
            assertArrayEquals(memory.toArray(ValueLayout.JAVA_BYTE), copied);
            device.registerHost(memory).close();
        }
    }

    @Test
    void shouldRefuseToRegisterTheSameMemoryTwiceOrHeapMemory() {
        try (Arena owner = Arena.ofShared()) {
            MemorySegment memory = owner.allocate(BYTES, 4096);
            try (PinnedHostMemory pinned = device.registerHost(memory)) {
                CudaException e = assertThrows(CudaException.class, () -> device.registerHost(memory));
                assertEquals("cuMemHostRegister_v2", e.call());
                assertEquals(memory.address(), pinned.memory().address());
            }
        }
        assertThrows(IllegalArgumentException.class, () -> device.registerHost(MemorySegment.ofArray(new byte[4096])));
    }

    @Test
    void shouldAllocateWithCuMemHostAllocRoundedUpToTwoMegabytes() {
        try (PinnedHostMemory pinned = device.allocatePinned(1)) {
            assertEquals(PinnedHostMemory.Strategy.HOST_ALLOC, pinned.strategy());
            assertEquals(2L << 20, pinned.sizeBytes());
            pinned.memory().set(ValueLayout.JAVA_BYTE, (2L << 20) - 1, (byte) 7);
        }
    }
}
