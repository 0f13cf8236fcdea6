package io.pegaflow.fabric.grpc;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import com.google.protobuf.ByteString;
import io.pegaflow.actors.directory.LocateResult;
import io.pegaflow.fabric.cli.LocateWire;
import io.pegaflow.proto.fabric.LocateRequest;
import io.pegaflow.proto.fabric.LocateResponse;
import io.pegaflow.store.HashList;
import java.util.List;
import org.junit.jupiter.api.Test;

/** {@link LocateMapper} and its client side {@link LocateWire}: both request forms, both reply forms. */
class LocateMapperTest {
    private static final List<String> NODES = List.of("n1", "n2", "n3");

    @Test
    void shouldReadPackedAndPerHashRequestsAsTheSameHashes() {
        List<byte[]> hashes = List.of(new byte[] {1, 2, 3}, new byte[] {4, 5, 6}, new byte[] {7, 8, 9});
        LocateRequest packed = LocateWire.request("ns", hashes);
        assertEquals(0, packed.getHashesCount());
        assertEquals(3, packed.getPackedHashes().getHashBytes());
        LocateRequest.Builder each = LocateRequest.newBuilder().setNamespace("ns");
        hashes.forEach(h -> each.addHashes(ByteString.copyFrom(h)));
        HashList fromPacked = LocateMapper.hashes(packed);
        HashList fromEach = LocateMapper.hashes(each.build());
        assertEquals(3, fromPacked.size());
        for (int i = 0; i < 3; i++) {
            assertArrayEquals(hashes.get(i), fromPacked.copy(i));
            assertArrayEquals(hashes.get(i), fromEach.copy(i));
        }
        LocateRequest ragged = LocateWire.request("ns", List.of(new byte[] {1}, new byte[] {2, 3}));
        assertEquals(2, ragged.getHashesCount(), "hashes of two lengths go one by one");
        assertArrayEquals(new byte[] {2, 3}, LocateMapper.hashes(ragged).copy(1));
    }

    @Test
    void shouldGiveTheSameHoldersInThePackedAndThePerHashReply() {
        long[] masks = {0b001, 0b101, 0, 0b111, 0b1000}; // bit 3: no such node, shown by neither form
        LocateResult result = new LocateResult(masks, 2, false, NODES);
        LocateResponse packed = LocateMapper.reply(result, "n2", true);
        LocateResponse full = LocateMapper.reply(result, "n2", false);
        assertEquals(0, packed.getBlocksCount());
        assertEquals(5, full.getBlocksCount());
        assertEquals(NODES, packed.getHolderNodeIdsList());
        assertEquals(List.of(1L, 5L, 0L, 7L, 0L), packed.getHolderMasksList());
        assertEquals(packed.getHolderMasksList(), full.getHolderMasksList());
        assertEquals(2, packed.getPrefixLength());
        assertEquals(false, packed.getComplete());
        assertEquals("n2", packed.getNodeId());
        List<List<String>> expected = List.of(List.of("n1"), List.of("n1", "n3"), List.of(), NODES, List.of());
        for (int i = 0; i < masks.length; i++) {
            assertEquals(expected.get(i), full.getBlocks(i).getNodeIdsList());
            assertEquals(expected.get(i), LocateWire.holders(packed, i));
            assertEquals(
                    expected.get(i),
                    LocateWire.holders(full.toBuilder().clearHolderMasks().build(), i),
                    "a reply of the previous release");
        }
        assertEquals(5, LocateWire.size(packed));
    }
}
