package io.pegaflow.store.memory;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.pegaflow.store.pool.BlockPool;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.atomic.AtomicBoolean;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

@Timeout(60)
class HostMemoryTest {
    private static final long MIB = 1 << 20;

    @Test
    void shouldMapZeroFilledWritableMemoryRoundedUpToHugePages() {
        try (HostMemory memory = HostMemory.allocate(5 * MIB + 1, 2)) {
            assertEquals(6 * MIB, memory.sizeBytes());
            MemorySegment segment = memory.memory();
            assertEquals(6 * MIB, segment.byteSize());
            assertEquals(0, segment.address() % HostMemory.HUGE_PAGE_BYTES, "2 MiB-aligned start");
            for (long offset = 0; offset < segment.byteSize(); offset += 4096) {
                assertEquals(0, segment.get(ValueLayout.JAVA_LONG, offset), "zero-filled at " + offset);
            }
            segment.set(ValueLayout.JAVA_LONG, 6 * MIB - 8, 42L);
            assertEquals(42L, segment.get(ValueLayout.JAVA_LONG, 6 * MIB - 8));
        }
    }

    @Test
    void shouldPopulateInParallelAndReportWhatItDid() throws Exception {
        try (HostMemory memory = HostMemory.allocate(256 * MIB, 4)) {
            assertEquals(4, memory.populateThreads());
            assertTrue(memory.populateNs() > 0);
            String report = memory.report();
            String pages = switch (memory.pages()) {
                case HUGETLB -> "hugetlb pages";
                case TRANSPARENT_HUGE -> "transparent huge pages";
                case SMALL -> "4 KiB pages";
            };
            assertTrue(report.startsWith(pages), report);
            assertTrue(report.contains("4 threads"), report);
            assertTrue(
                    report.contains(
                            memory.populateMethod() == HostMemory.Populate.MADVISE
                                    ? "MADV_POPULATE_WRITE"
                                    : "touching each page"),
                    report);
            assertTrue(report.matches(".*mmap \\d+\\.\\d\\d s, populate \\d+\\.\\d\\d s.*"), report);
            // Populated: the pages are resident now, not left to fault in on the data path.
            long residentKb = residentKbOf(memory.memory().address());
            assertTrue(residentKb >= 256 * 1024 || residentKb < 0, "resident " + residentKb + " KiB of 256 MiB");
        }
    }

    /** Rss of the mapping that starts at or holds {@code address}, from /proc/self/smaps; -1 if not found. */
    private static long residentKbOf(long address) throws Exception {
        long rss = -1;
        boolean inside = false;
        for (String line : Files.readAllLines(Path.of("/proc/self/smaps"))) {
            if (line.matches("^[0-9a-f]+-[0-9a-f]+ .*")) {
                String[] range = line.substring(0, line.indexOf(' ')).split("-");
                long start = Long.parseUnsignedLong(range[0], 16);
                long end = Long.parseUnsignedLong(range[1], 16);
                inside = address >= start && address < end;
            } else if (inside && line.startsWith("Rss:")) {
                rss = Long.parseLong(line.replaceAll("\\D", ""));
                inside = false;
            }
        }
        return rss;
    }

    /** Records the chunks it is handed and checks each is populated (readable, zero) when it arrives. */
    private static final class RecordingSink implements HostMemory.ChunkSink {
        final long chunkBytes;
        final int threads;
        final int failAt;
        final List<long[]> chunks = Collections.synchronizedList(new ArrayList<>());
        final AtomicBoolean abandoned = new AtomicBoolean();

        RecordingSink(long chunkBytes, int threads, int failAt) {
            this.chunkBytes = chunkBytes;
            this.threads = threads;
            this.failAt = failAt;
        }

        @Override
        public long chunkBytes() {
            return chunkBytes;
        }

        @Override
        public int threads() {
            return threads;
        }

        @Override
        public void populated(MemorySegment region, long offset, long length) {
            assertEquals(0, region.get(ValueLayout.JAVA_LONG, offset + length - 8));
            assertTrue(Thread.currentThread().getName().startsWith("pegaflow-host-register-"));
            if (chunks.size() == failAt) {
                throw new IllegalStateException("sink refuses chunk " + failAt);
            }
            chunks.add(new long[] {region.address() + offset, length});
        }

        @Override
        public void abandon() {
            abandoned.set(true);
        }
    }

    @Test
    void shouldHandEveryPopulatedChunkToTheSinkOnAnAddressGrid() {
        long chunk = 128 * MIB;
        RecordingSink sink = new RecordingSink(chunk, 2, -1);
        try (HostMemory memory = HostMemory.allocate(600 * MIB, 4, true, sink)) {
            List<long[]> sorted = new ArrayList<>(sink.chunks);
            sorted.sort((a, b) -> Long.compare(a[0], b[0]));
            long expected = memory.memory().address();
            for (long[] c : sorted) {
                assertEquals(expected, c[0], "chunks tile the region");
                long end = c[0] + c[1];
                boolean lastChunk = end == memory.memory().address() + memory.sizeBytes();
                assertTrue(lastChunk || end % chunk == 0, "a chunk ends on an address multiple of its size");
                assertTrue(c[1] <= chunk);
                expected = end;
            }
            assertEquals(memory.memory().address() + memory.sizeBytes(), expected);
            assertEquals(sorted.size(), memory.sinkChunks());
            assertTrue(memory.report().contains(sorted.size() + " chunks handed over"), memory.report());
            assertTrue(!sink.abandoned.get());
        }
    }

    @Test
    void shouldAbandonAndUnmapWhenTheSinkRefusesAChunk() {
        RecordingSink sink = new RecordingSink(64 * MIB, 1, 2);
        IllegalStateException e =
                assertThrows(IllegalStateException.class, () -> HostMemory.allocate(512 * MIB, 4, false, sink));
        assertTrue(e.getMessage().contains("sink refuses chunk 2"), e.getMessage());
        assertTrue(sink.abandoned.get(), "the sink is told to undo what it did");
    }

    @Test
    void shouldRefuseASinkWhoseChunksAreNotWholePopulatePieces() {
        RecordingSink sink = new RecordingSink(3 * MIB, 1, -1);
        assertThrows(IllegalArgumentException.class, () -> HostMemory.allocate(64 * MIB, 2, false, sink));
    }

    @Test
    void shouldUseSmallPagesWhenHugePagesAreNotAskedFor() {
        try (HostMemory memory = HostMemory.allocate(8 * MIB, 2, false)) {
            assertEquals(HostMemory.Pages.SMALL, memory.pages());
            assertTrue(memory.report().startsWith("4 KiB pages (asked for), "), memory.report());
            assertEquals(0, memory.memory().get(ValueLayout.JAVA_LONG, 8 * MIB - 8));
        }
    }

    @Test
    void shouldServeAsTheBlockPoolsMemory() {
        try (HostMemory memory = HostMemory.allocate(16 * MIB, 2);
                BlockPool pool = BlockPool.wrap(memory.memory(), BlockPool.defaultSlabBytes(memory.sizeBytes()))) {
            assertEquals(16 * MIB, pool.capacityBytes());
            long offset = pool.allocate(64 << 10);
            pool.block(offset, 64 << 10).fill((byte) 3);
            assertEquals(3, memory.memory().get(ValueLayout.JAVA_BYTE, offset + (64 << 10) - 1));
        }
    }

    @Test
    void shouldMakeTheMemoryInaccessibleOnCloseAndCloseOnce() {
        HostMemory memory = HostMemory.allocate(2 * MIB, 1);
        MemorySegment segment = memory.memory();
        segment.set(ValueLayout.JAVA_BYTE, 0, (byte) 1);
        memory.close();
        assertThrows(IllegalStateException.class, () -> segment.get(ValueLayout.JAVA_BYTE, 0));
        memory.close(); // idempotent
        assertTrue(memory.report().contains("1 thread,") || memory.report().endsWith("1 thread)"), memory.report());
    }

    @Test
    void shouldRefuseSizesAndThreadCountsOutOfRange() {
        IllegalArgumentException size = assertThrows(IllegalArgumentException.class, () -> HostMemory.allocate(0));
        assertTrue(size.getMessage().startsWith("bytes 0 must be in [1, "), size.getMessage());
        IllegalArgumentException threads =
                assertThrows(IllegalArgumentException.class, () -> HostMemory.allocate(MIB, 0));
        assertEquals("populateThreads 0 must be in [1, 256]", threads.getMessage());
        assertThrows(IllegalArgumentException.class, () -> HostMemory.allocate(MIB, 257));
    }

    @Test
    void shouldSayWhyWhenTheKernelRefusesTheMapping() {
        // More address space than x86-64 user space has (128 TiB): mmap fails with ENOMEM, nothing stays mapped.
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> HostMemory.allocate(1L << 48, 1));
        assertTrue(e.getMessage().startsWith("mmap of "), e.getMessage());
        assertTrue(e.getMessage().contains("errno"), e.getMessage());
    }

    @Test
    void shouldReadFreeHugePagesFromMeminfo() {
        assertTrue(HostMemory.freeHugetlbBytes() >= 0);
        assertEquals(0, HostMemory.freeHugetlbBytes() % HostMemory.HUGE_PAGE_BYTES);
    }
}
