package io.pegaflow.fabric.grpc;

import io.grpc.Status;
import io.pegaflow.actors.directory.LocateResult;
import io.pegaflow.proto.fabric.BlockHolders;
import io.pegaflow.proto.fabric.LocateRequest;
import io.pegaflow.proto.fabric.LocateResponse;
import java.util.List;
import org.apache.pekko.grpc.GrpcServiceException;

/** Checks a {@code Locate} request's bounds and turns a {@link LocateResult} into its reply. Stateless. */
final class LocateMapper {
    static final int MAX_HASHES = 8192;
    static final int MAX_HASH_BYTES = 64;
    static final int MAX_NAMESPACE_BYTES = 256;

    private LocateMapper() {}

    /** The request's hashes as arrays, or INVALID_ARGUMENT naming the field at fault. */
    static byte[][] hashes(LocateRequest in) {
        int namespaceBytes = in.getNamespaceBytes().size();
        if (namespaceBytes > MAX_NAMESPACE_BYTES) {
            throw invalid("namespace: " + namespaceBytes + " bytes; at most " + MAX_NAMESPACE_BYTES);
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
        return hashes;
    }

    static LocateResponse reply(LocateResult result, String selfNodeId) {
        LocateResponse.Builder out = LocateResponse.newBuilder()
                .setPrefixLength(result.prefixLength())
                .setComplete(result.complete())
                .setNodeId(selfNodeId);
        List<String> nodeIds = result.nodeIds();
        for (int i = 0; i < result.size(); i++) {
            BlockHolders.Builder holders = BlockHolders.newBuilder();
            for (long m = result.holderMasks()[i]; m != 0; m &= m - 1) {
                int node = Long.numberOfTrailingZeros(m);
                if (node < nodeIds.size()) {
                    holders.addNodeIds(nodeIds.get(node));
                }
            }
            out.addBlocks(holders);
        }
        return out.build();
    }

    static GrpcServiceException invalid(String message) {
        return new GrpcServiceException(Status.INVALID_ARGUMENT.withDescription(message));
    }
}
