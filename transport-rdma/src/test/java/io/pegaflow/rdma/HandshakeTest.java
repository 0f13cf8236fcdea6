package io.pegaflow.rdma;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.pegaflow.transport.RemoteRegion;
import io.pegaflow.transport.TransferStatus;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Test;

/** The side channel's codec on byte streams (no device): round trips, and bad input as a value with a reason. */
class HandshakeTest {

    private static final byte[] GID = new byte[] {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, -1, -1, 10, 0, 2, 15};

    @Test
    void shouldRoundTripHelloAndReplyWithRegionKeys() throws Exception {
        List<Handshake.QpParams> qps =
                List.of(new Handshake.QpParams(17, 0xABCDE, 0, GID, 3), new Handshake.QpParams(18, 5, 0, GID, 3));
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        DataOutputStream out = new DataOutputStream(bytes);
        Handshake.writeHello(out, new Handshake.Hello("a", List.of(2), qps));
        Handshake.RegionAdvert region =
                new Handshake.RegionAdvert(3, 99L, 0x7f00_0000_0000L, 3 << 20, 1 << 20, new int[][] {{11, 12, 13}});
        Handshake.writeReply(out, new Handshake.Reply("b", qps, List.of(region)));

        DataInputStream in = new DataInputStream(new ByteArrayInputStream(bytes.toByteArray()));
        Handshake.Hello hello = Handshake.readHello(in);
        assertEquals("a", hello.nodeId());
        assertEquals(2, hello.qps().size());
        assertEquals(0xABCDE, hello.qps().get(0).psn());
        assertArrayEquals(GID, hello.qps().get(1).gid());
        Handshake.Reply reply = Handshake.readReply(in);
        assertEquals("b", reply.nodeId());
        Handshake.RegionAdvert back = reply.regions().get(0);
        assertArrayEquals(new int[] {11, 12, 13}, back.rkeys()[0]);
        assertTrue(back.matches(new RemoteRegion("b", 3, 0x7f00_0000_0000L, 3 << 20, 99L)));
        assertTrue(!back.matches(new RemoteRegion("b", 3, 0x7f00_0000_0000L, 3 << 20, 100L)), "stale key");
    }

    @Test
    void shouldCarryEachNicsQueuePairCountAndPlaceEveryQueuePairOnItsNic() throws Exception {
        List<Handshake.QpParams> qps = new java.util.ArrayList<>();
        for (int i = 0; i < 4; i++) {
            qps.add(new Handshake.QpParams(20 + i, i, 0, GID, 3));
        }
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        Handshake.writeHello(new DataOutputStream(bytes), new Handshake.Hello("a", List.of(1, 3), qps));

        Handshake.Hello hello = Handshake.readHello(new DataInputStream(new ByteArrayInputStream(bytes.toByteArray())));

        assertEquals(List.of(1, 3), hello.qpsPerNic());
        assertEquals(2, hello.nics());
        assertEquals(
                List.of(0, 1, 1, 1),
                java.util.stream.IntStream.range(0, 4).map(hello::nicOf).boxed().toList());
    }

    @Test
    void shouldRefuseAHelloWhosePerNicCountsDoNotAddUpToItsQueuePairs() throws IOException {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        List<Handshake.QpParams> three = List.of(
                new Handshake.QpParams(1, 1, 0, GID, 3),
                new Handshake.QpParams(2, 2, 0, GID, 3),
                new Handshake.QpParams(3, 3, 0, GID, 3));
        Handshake.writeHello(new DataOutputStream(bytes), new Handshake.Hello("a", List.of(2, 2), three));
        Handshake.BadHandshake bad = assertThrows(
                Handshake.BadHandshake.class,
                () -> Handshake.readHello(new DataInputStream(new ByteArrayInputStream(bytes.toByteArray()))));
        assertEquals("hello lists 3 queue pairs, expected 4", bad.getMessage());
    }

    @Test
    void shouldReportGarbageAsABadHandshakeWithAReason() {
        byte[] garbage = "GET / HTTP/1.1\r\nHost: x\r\n\r\n".getBytes();
        Handshake.BadHandshake bad = assertThrows(
                Handshake.BadHandshake.class,
                () -> Handshake.readHello(new DataInputStream(new ByteArrayInputStream(garbage))));
        assertTrue(bad.getMessage().contains("not a PegaFlow RDMA peer"), bad.getMessage());
    }

    @Test
    void shouldRefuseOutOfBoundsCountsBeforeAllocating() throws IOException {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        DataOutputStream out = new DataOutputStream(bytes);
        out.writeInt(Handshake.MAGIC);
        out.writeInt(Handshake.VERSION);
        out.writeUTF("a");
        out.writeInt(1);
        out.writeInt(1);
        out.writeInt(Integer.MAX_VALUE); // queue pair count
        Handshake.BadHandshake bad = assertThrows(
                Handshake.BadHandshake.class,
                () -> Handshake.readHello(new DataInputStream(new ByteArrayInputStream(bytes.toByteArray()))));
        assertTrue(bad.getMessage().contains("queue pair count"), bad.getMessage());
    }

    @Test
    void shouldCarryAPeersRefusalAsABadHandshake() throws IOException {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        Handshake.writeRefusal(new DataOutputStream(bytes), "node b has 2 NICs");
        Handshake.BadHandshake bad = assertThrows(
                Handshake.BadHandshake.class,
                () -> Handshake.readReply(new DataInputStream(new ByteArrayInputStream(bytes.toByteArray()))));
        assertEquals("refused by the peer: node b has 2 NICs", bad.getMessage());
    }

    @Test
    void shouldRefuseARegionWhoseChunksDoNotCoverItsLength() throws IOException {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        DataOutputStream out = new DataOutputStream(bytes);
        Handshake.writeRegionAdded(out, new Handshake.RegionAdvert(1, 1, 4096, 3 << 20, 1 << 20, new int[][] {{1, 2}
        })); // 2 of 3 chunks
        DataInputStream in = new DataInputStream(new ByteArrayInputStream(bytes.toByteArray()));
        assertEquals(Handshake.REGION_ADDED, in.readByte());
        assertThrows(Handshake.BadHandshake.class, () -> Handshake.readRegion(in));
    }

    @Test
    void shouldMapErrorAndFlushCompletionsToTransferStatuses() {
        assertEquals(TransferStatus.OK, WcStatus.toTransferStatus(0, false));
        assertEquals(TransferStatus.REMOTE_ERROR, WcStatus.toTransferStatus(10, false)); // remote access (bad rkey)
        assertEquals(TransferStatus.REMOTE_ERROR, WcStatus.toTransferStatus(12, false)); // retries: peer gone
        assertEquals(TransferStatus.REMOTE_ERROR, WcStatus.toTransferStatus(5, false)); // flushed: connection broke
        assertEquals(TransferStatus.CLOSED, WcStatus.toTransferStatus(5, true)); // flushed by close
        assertEquals("remote access error", WcStatus.name(10));
        assertTrue(Arrays.stream(new int[] {1, 2, 4, 8, 9, 11, 13, 20})
                .allMatch(s -> WcStatus.toTransferStatus(s, false) == TransferStatus.REMOTE_ERROR));
    }
}
