package io.pegaflow.fabric.cli;

import com.google.protobuf.ByteString;
import io.pegaflow.proto.engine.PackedHashes;
import io.pegaflow.proto.fabric.LocateRequest;
import io.pegaflow.proto.fabric.LocateResponse;
import java.util.ArrayList;
import java.util.List;

/**
 * The client side of {@code Locate}'s packed forms: a request with the hashes packed (when they have one length) that
 * asks for the packed reply, and the holders of hash {@code i} read from a reply's node-id table and holder masks
 * (or from its per-hash {@code blocks}, which a node of the previous release sends). Stateless.
 */
public final class LocateWire {
    private LocateWire() {}

    /** A request for {@code hashes} in {@code namespace}: packed when every hash has the same length, packed reply. */
    public static LocateRequest request(String namespace, List<byte[]> hashes) {
        LocateRequest.Builder out =
                LocateRequest.newBuilder().setNamespace(namespace).setPackedReply(true);
        int width = hashes.isEmpty() ? 0 : hashes.get(0).length;
        boolean oneLength = width > 0 && hashes.stream().allMatch(h -> h.length == width);
        if (!oneLength) {
            hashes.forEach(h -> out.addHashes(ByteString.copyFrom(h)));
            return out.build();
        }
        byte[] data = new byte[width * hashes.size()];
        for (int i = 0; i < hashes.size(); i++) {
            System.arraycopy(hashes.get(i), 0, data, i * width, width);
        }
        return out.setPackedHashes(PackedHashes.newBuilder()
                        .setData(ByteString.copyFrom(data))
                        .setHashBytes(width))
                .build();
    }

    /** Number of hashes the reply answers for. */
    public static int size(LocateResponse reply) {
        return reply.getHolderMasksCount() > 0 ? reply.getHolderMasksCount() : reply.getBlocksCount();
    }

    /** Ids of the nodes holding hash {@code i}, in topology order; empty = no holder known. */
    public static List<String> holders(LocateResponse reply, int i) {
        if (reply.getHolderMasksCount() == 0) {
            return reply.getBlocks(i).getNodeIdsList();
        }
        long mask = reply.getHolderMasks(i);
        List<String> out = new ArrayList<>(Long.bitCount(mask));
        for (long m = mask; m != 0; m &= m - 1) {
            int node = Long.numberOfTrailingZeros(m);
            if (node < reply.getHolderNodeIdsCount()) {
                out.add(reply.getHolderNodeIds(node));
            }
        }
        return out;
    }
}
