package io.pegaflow.transport;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.List;
import org.junit.jupiter.api.Test;

/** The SPI's value types: descriptor lists, settings, region ranges, the latency histogram. */
class SpiValuesTest {

    private static final RemoteRegion REMOTE = new RemoteRegion("b", 3, 0x1000, 4096, 77);

    @Test
    void shouldKeepDescriptorsInOrderAndReuseTheListAfterClear() {
        LocalRegion local = fakeRegion(MemorySegment.ofArray(new byte[8192]));
        DescriptorList list = new DescriptorList(2);
        list.add(REMOTE, 0, local, 100, 10).add(REMOTE, 50, local, 200, 20);

        assertEquals(2, list.size());
        assertEquals(30, list.totalBytes());
        assertEquals(50, list.remoteOffset(1));
        assertEquals(200, list.localOffset(1));
        assertEquals(20, list.lengthBytes(1));
        assertThrows(IllegalStateException.class, () -> list.add(REMOTE, 0, local, 0, 1), "full");
        assertTrue(list.clear().isEmpty());
        assertThrows(IndexOutOfBoundsException.class, () -> list.remoteRegion(0));
        list.add(REMOTE, 1, local, 2, 3);
        assertEquals(3, list.totalBytes());
    }

    @Test
    void shouldTellWhetherARangeLiesInsideARegion() {
        assertTrue(REMOTE.contains(0, 4096));
        assertTrue(REMOTE.contains(4095, 1));
        assertFalse(REMOTE.contains(4095, 2));
        assertFalse(REMOTE.contains(-1, 1));
        assertFalse(REMOTE.contains(0, 0));
        assertFalse(REMOTE.contains(Long.MAX_VALUE, 1));
        assertFalse(REMOTE.contains(1, Long.MAX_VALUE));
    }

    @Test
    void shouldRejectBadSettingsNamingTheField() {
        TransportSettings ok = TransportSettings.of("a", "127.0.0.1", 0, List.of());
        assertMessage("maxInFlightPerPeer", () -> ok.withMaxInFlightPerPeer(0));
        assertMessage("maxDescriptorsPerTransfer", () -> ok.withMaxDescriptorsPerTransfer(70_000));
        assertMessage("listenPort", () -> ok.withListenPort(70_000));
        assertMessage("itself", () -> ok.withPeers(List.of(new PeerAddress("a", "h", 1))));
        assertMessage("twice", () -> ok.withPeers(List.of(new PeerAddress("b", "h", 1), new PeerAddress("b", "h", 2))));
        assertMessage("reconnectBackoffMaxMs", () -> ok.withReconnectBackoffMaxMs(1));
    }

    @Test
    void shouldBucketLatenciesByPowersOfTwo() {
        LatencyHistogram histogram = new LatencyHistogram();
        histogram.record(0);
        histogram.record(1_000); // 2^9 <= 1000 < 2^10
        histogram.record(1_023);
        histogram.record(1_000_000);
        long[] buckets = histogram.copy();

        assertEquals(1, buckets[0]);
        assertEquals(2, buckets[9]);
        assertEquals(1, buckets[LatencyHistogram.bucketOf(1_000_000)]);
        assertEquals(1 << 9, LatencyHistogram.bucketLowerBoundNs(9));
        assertEquals(1 << 10, LatencyHistogram.quantileUpperBoundNs(buckets, 0.75));
        assertEquals(0, LatencyHistogram.quantileUpperBoundNs(new long[64], 0.99));
    }

    @Test
    void shouldRefuseHeapOrConfinedMemoryAsARegion() {
        try (Transport transport =
                new io.pegaflow.transport.tcp.TcpTransport(TransportSettings.of("a", "127.0.0.1", 0, List.of()))) {
            assertThrows(
                    IllegalArgumentException.class, () -> transport.registerRegion(MemorySegment.ofArray(new byte[8])));
            try (Arena confined = Arena.ofConfined()) {
                assertThrows(IllegalArgumentException.class, () -> transport.registerRegion(confined.allocate(64)));
            }
            try (Arena arena = Arena.ofShared()) {
                LocalRegion region = transport.registerRegion(arena.allocate(64));
                assertEquals("a", region.describe().nodeId());
                assertEquals(64, region.describe().lengthBytes());
                transport.deregisterRegion(region);
                assertThrows(IllegalArgumentException.class, () -> transport.deregisterRegion(region));
            }
        }
    }

    private static void assertMessage(String fragment, Runnable action) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, action::run);
        assertTrue(e.getMessage().contains(fragment), e.getMessage());
    }

    private static LocalRegion fakeRegion(MemorySegment segment) {
        return new LocalRegion() {
            @Override
            public int regionId() {
                return 0;
            }

            @Override
            public MemorySegment segment() {
                return segment;
            }

            @Override
            public RemoteRegion describe() {
                return new RemoteRegion("a", 0, 0, segment.byteSize(), 1);
            }
        };
    }
}
