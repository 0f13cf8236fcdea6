package io.pegaflow.transport.tcp;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.pegaflow.transport.CompletionHandler;
import io.pegaflow.transport.DescriptorList;
import io.pegaflow.transport.LocalRegion;
import io.pegaflow.transport.TransferStatus;
import io.pegaflow.transport.TransportSettings;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * A WRITE that times out while its payload is still being sent: the TCP transport stops reading the local source at
 * the completion and sends zeros for the rest (the stream must stay framed), so the holder's range holds exactly the
 * bytes sent before the completion, then zeros; the connection stays usable.
 */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class TcpTransportWriteTimeoutTest {

    private static final int BLOCK = 2 << 20;
    private static final int BLOCKS = 16;

    record Done(TransferStatus status, long bytes) {}

    @Test
    void shouldStopReadingTheSourceAtTimeoutAndKeepTheConnectionUsable() throws Exception {
        long span = (long) BLOCK * BLOCKS;
        try (Arena arena = Arena.ofShared()) {
            TcpTransport b = new TcpTransport(TransportSettings.of("b", "127.0.0.1", 0, List.of()));
            MemorySegment bMemory = arena.allocate(span, 4096);
            LocalRegion bRegion = b.registerRegion(bMemory);
            b.start();
            TcpTransport a = new TcpTransport(TransportSettings.of("a", "127.0.0.1", 0, List.of(b.localAddress())));
            MemorySegment aMemory = arena.allocate(span, 4096);
            LocalRegion aRegion = a.registerRegion(aMemory);
            a.start();
            try {
                assertTrue(a.awaitConnected("b", 10_000));
                bMemory.fill((byte) 0xEE);
                for (long i = 0; i < span / 8; i++) {
                    aMemory.setAtIndex(ValueLayout.JAVA_LONG, i, i * 0x9E37_79B9_7F4A_7C15L | 1);
                }
                CountDownLatch received = new CountDownLatch(1);
                b.setTestHook(new TcpTestHook() {
                    @Override
                    public void beforeReceivingBlock(int blockIndex) throws InterruptedException {
                        if (blockIndex == 1) {
                            Thread.sleep(1_500); // the writer's socket fills up meanwhile
                        }
                    }

                    @Override
                    public void afterReceivingWrite() {
                        received.countDown();
                    }
                });
                DescriptorList list = new DescriptorList(BLOCKS);
                for (int k = 0; k < BLOCKS; k++) {
                    list.add(bRegion.describe(), (long) k * BLOCK, aRegion, (long) k * BLOCK, BLOCK);
                }
                LinkedBlockingQueue<Done> done = new LinkedBlockingQueue<>();
                CompletionHandler handler = (id, status, bytes) -> done.add(new Done(status, bytes));

                assertEquals(TransferStatus.OK, a.write(list, 300, 1, handler));
                Done d = done.poll(10, TimeUnit.SECONDS);

                assertNotNull(d);
                assertEquals(TransferStatus.TIMED_OUT, d.status());
                assertTrue(d.bytes() > 0 && d.bytes() < span, "sent " + d.bytes() + " of " + span);
                assertTrue(received.await(10, TimeUnit.SECONDS), "the holder read the whole (padded) payload");
                long sent = d.bytes();
                assertEquals(-1, MemorySegment.mismatch(aMemory, 0, sent, bMemory, 0, sent), "bytes sent in time");
                for (long i = sent; i < span; i++) {
                    if (bMemory.get(ValueLayout.JAVA_BYTE, i) != 0) {
                        throw new AssertionError("source byte read after the timeout, at " + i);
                    }
                }

                b.setTestHook(TcpTestHook.NONE);
                assertEquals(TransferStatus.OK, a.write(list, 10_000, 2, handler));
                Done again = done.poll(10, TimeUnit.SECONDS);
                assertNotNull(again);
                assertEquals(TransferStatus.OK, again.status());
                assertEquals(-1, MemorySegment.mismatch(aMemory, 0, span, bMemory, 0, span));
            } finally {
                a.close();
                b.close();
            }
        }
    }
}
