package io.pegaflow.transport.tcp;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.pegaflow.transport.CompletionHandler;
import io.pegaflow.transport.DescriptorList;
import io.pegaflow.transport.LocalRegion;
import io.pegaflow.transport.TransferStatus;
import io.pegaflow.transport.TransportSettings;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.management.ManagementFactory;
import java.util.List;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The data path allocates nothing per block: measured with the JVM's per-thread allocation counter on the transport's
 * own threads (the requesting I/O thread and the holder's serving thread) over many transfers of many small blocks.
 */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class TcpTransportAllocationTest {

    private static final int BLOCKS = 256;
    private static final int BLOCK_BYTES = 1024;

    @Test
    void shouldAllocateNothingPerBlockOnTheTransportThreads() throws Exception {
        try (Arena arena = Arena.ofShared()) {
            TcpTransport b = new TcpTransport(TransportSettings.of("b", "127.0.0.1", 0, List.of()));
            LocalRegion bRegion = b.registerRegion(arena.allocate(1 << 20));
            b.start();
            TcpTransport a = new TcpTransport(TransportSettings.of("a", "127.0.0.1", 0, List.of(b.localAddress())));
            MemorySegment aMemory = arena.allocate(1 << 20);
            LocalRegion aRegion = a.registerRegion(aMemory);
            a.start();
            try {
                assertTrue(a.awaitConnected("b", 10_000));
                DescriptorList list = new DescriptorList(BLOCKS);
                for (int k = 0; k < BLOCKS; k++) {
                    list.add(bRegion.describe(), (long) k * BLOCK_BYTES, aRegion, (long) k * BLOCK_BYTES, BLOCK_BYTES);
                }
                Semaphore completed = new Semaphore(0);
                AtomicInteger failures = new AtomicInteger();
                CompletionHandler handler = (id, status, bytes) -> { // allocates nothing itself
                    if (status != TransferStatus.OK) {
                        failures.incrementAndGet();
                    }
                    completed.release();
                };
                runTransfers(a, list, handler, completed, 50); // warm up: views, serving thread, JIT

                long ioBefore = allocatedBytes("pegaflow-tcp-io-a");
                long serveBefore = allocatedBytes("pegaflow-tcp-serve-b-");
                int transfers = 200;
                runTransfers(a, list, handler, completed, transfers);
                long ioPerBlock = (allocatedBytes("pegaflow-tcp-io-a") - ioBefore) / ((long) transfers * BLOCKS);
                long servePerBlock =
                        (allocatedBytes("pegaflow-tcp-serve-b-") - serveBefore) / ((long) transfers * BLOCKS);

                assertEquals(0, failures.get());
                assertEquals(0, ioPerBlock, "bytes allocated per block on the I/O thread");
                assertEquals(0, servePerBlock, "bytes allocated per block on the serving thread");
            } finally {
                a.close();
                b.close();
            }
        }
    }

    private static void runTransfers(
            TcpTransport a, DescriptorList list, CompletionHandler handler, Semaphore completed, int count)
            throws InterruptedException {
        for (int i = 0; i < count; i++) {
            boolean read = i % 2 == 0;
            TransferStatus status = read ? a.read(list, 10_000, i, handler) : a.write(list, 10_000, i, handler);
            assertEquals(TransferStatus.OK, status);
            assertTrue(completed.tryAcquire(10, TimeUnit.SECONDS));
        }
    }

    /** Bytes the first live thread whose name starts with {@code prefix} has allocated so far. */
    private static long allocatedBytes(String prefix) {
        com.sun.management.ThreadMXBean threads = (com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean();
        for (Thread t : Thread.getAllStackTraces().keySet()) {
            if (t.getName().startsWith(prefix)) {
                return threads.getThreadAllocatedBytes(t.threadId());
            }
        }
        throw new AssertionError("no thread named " + prefix + "*");
    }
}
