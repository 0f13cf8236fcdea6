package io.pegaflow.fabric.grpc;

import com.google.protobuf.Internal;
import io.grpc.Status;
import io.pegaflow.actors.directory.LocateResult;
import io.pegaflow.proto.engine.PackedHashes;
import io.pegaflow.proto.fabric.BlockHolders;
import io.pegaflow.proto.fabric.LocateRequest;
import io.pegaflow.proto.fabric.LocateResponse;
import io.pegaflow.store.HashList;
import java.util.List;
import org.apache.pekko.grpc.GrpcServiceException;

/**
 * Checks a {@code Locate} request's bounds and turns a {@link LocateResult} into its reply. Stateless.
 *
 * <p>The packed forms are what this release's clients send and read: {@code packed_hashes} is one byte string (the
 * handler copies it once and fingerprints each hash in place), and {@code holder_node_ids} plus one {@code
 * holder_masks} varint per hash replace a {@code BlockHolders} message of node-id strings per hash, which was most of
 * the reply's cost on both sides. The per-hash forms ({@code hashes}, {@code blocks}) stay for one release.
 */
final class LocateMapper {
    static final int MAX_HASHES = 8192;
    static final int MAX_HASH_BYTES = 64;
    static final int MAX_NAMESPACE_BYTES = 256;

    /** protobuf's own empty primitive list (a {@link Internal.LongList} in every protobuf-java release we use). */
    private static final List<Long> EMPTY_MASKS =
            LocateResponse.getDefaultInstance().getHolderMasksList();

    private LocateMapper() {}

    /** The request's hashes, packed or one by one, or INVALID_ARGUMENT naming the field at fault. */
    static HashList hashes(LocateRequest in) {
        int namespaceBytes = in.getNamespaceBytes().size();
        if (namespaceBytes > MAX_NAMESPACE_BYTES) {
            throw invalid("namespace: " + namespaceBytes + " bytes; at most " + MAX_NAMESPACE_BYTES);
        }
        if (in.hasPackedHashes()) {
            if (in.getHashesCount() > 0) {
                throw invalid("hashes and packed_hashes: a request sets one of them, not both");
            }
            return packed(in.getPackedHashes());
        }
        int count = in.getHashesCount();
        if (count > MAX_HASHES) {
            throw invalid("hashes: " + count + " hashes; at most " + MAX_HASHES + " per request");
        }
        byte[][] hashes = new byte[count][];
        for (int i = 0; i < count; i++) {
            int size = in.getHashes(i).size();
            if (size == 0 || size > MAX_HASH_BYTES) {
                throw invalid("hashes[" + i + "]: " + size + " bytes; a hash has 1.." + MAX_HASH_BYTES + " bytes");
            }
            hashes[i] = in.getHashes(i).toByteArray();
        }
        return HashList.of(hashes);
    }

    private static HashList packed(PackedHashes in) {
        int size = in.getData().size();
        if (size == 0) {
            return HashList.of();
        }
        long hashBytes = Integer.toUnsignedLong(in.getHashBytes());
        if (hashBytes == 0 || hashBytes > MAX_HASH_BYTES) {
            throw invalid("packed_hashes.hash_bytes: " + hashBytes + "; a hash has 1.." + MAX_HASH_BYTES + " bytes");
        }
        if (size % hashBytes != 0) {
            throw invalid("packed_hashes.data: " + size + " bytes are not a whole number of hashes of " + hashBytes
                    + " bytes (hash_bytes)");
        }
        long count = size / hashBytes;
        if (count > MAX_HASHES) {
            throw invalid("packed_hashes: " + count + " hashes; at most " + MAX_HASHES + " per request");
        }
        return HashList.packed(in.getData().toByteArray(), (int) hashBytes);
    }

    /**
     * The reply: the node-id table and one holder mask per hash always; the per-hash {@code blocks} too unless the
     * request asked for the packed reply only.
     */
    static LocateResponse reply(LocateResult result, String selfNodeId, boolean packedOnly) {
        List<String> nodeIds = result.nodeIds();
        long known = nodeIds.size() >= Long.SIZE ? -1L : (1L << nodeIds.size()) - 1;
        LocateResponse.Builder out = LocateResponse.newBuilder()
                .setPrefixLength(result.prefixLength())
                .setComplete(result.complete())
                .setNodeId(selfNodeId)
                .addAllHolderNodeIds(nodeIds);
        long[] masks = result.holderMasks();
        if (EMPTY_MASKS instanceof Internal.LongList empty) {
            // One list of the final size, copied once into the builder (adding one by one grows it ~10 times).
            Internal.LongList list = empty.mutableCopyWithCapacity(masks.length);
            for (long mask : masks) {
                list.addLong(mask & known);
            }
            out.addAllHolderMasks(list);
        } else {
            for (long mask : masks) {
                out.addHolderMasks(mask & known);
            }
        }
        if (!packedOnly) {
            for (long mask : masks) {
                BlockHolders.Builder holders = BlockHolders.newBuilder();
                for (long m = mask & known; m != 0; m &= m - 1) {
                    holders.addNodeIds(nodeIds.get(Long.numberOfTrailingZeros(m)));
                }
                out.addBlocks(holders);
            }
        }
        return out.build();
    }

    static GrpcServiceException invalid(String message) {
        return new GrpcServiceException(Status.INVALID_ARGUMENT.withDescription(message));
    }
}
