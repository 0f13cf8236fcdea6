package io.pegaflow.fabric.grpc;

import io.pegaflow.fabric.engine.ContextRegistration;
import io.pegaflow.fabric.engine.EngineException;
import io.pegaflow.fabric.engine.LayerSpec;
import io.pegaflow.fabric.engine.LoadBlocks;
import io.pegaflow.fabric.engine.LoadStarted;
import io.pegaflow.fabric.engine.PrefixHits;
import io.pegaflow.fabric.engine.PrefixQuery;
import io.pegaflow.fabric.engine.RegionSpec;
import io.pegaflow.fabric.engine.Registered;
import io.pegaflow.fabric.engine.SaveBlocks;
import io.pegaflow.fabric.engine.SaveResult;
import io.pegaflow.proto.engine.BlockRef;
import io.pegaflow.proto.engine.ByteSegment;
import io.pegaflow.proto.engine.LayerRegistration;
import io.pegaflow.proto.engine.LoadRequest;
import io.pegaflow.proto.engine.LoadResponse;
import io.pegaflow.proto.engine.MemoryRegion;
import io.pegaflow.proto.engine.PackedBlocks;
import io.pegaflow.proto.engine.PackedHashes;
import io.pegaflow.proto.engine.QueryRequest;
import io.pegaflow.proto.engine.QueryResponse;
import io.pegaflow.proto.engine.RegisterContextRequest;
import io.pegaflow.proto.engine.RegisterContextResponse;
import io.pegaflow.proto.engine.SaveRequest;
import io.pegaflow.proto.engine.SaveResponse;
import io.pegaflow.store.HashList;
import java.util.ArrayList;
import java.util.List;

/**
 * Engine messages to the engine's domain records and back. Unsigned fields keep their bits (the engine reads them
 * unsigned and names them in its errors); the only checks here are of the packed fields' shape (both forms set, a
 * length that is not a whole number of hashes), refused INVALID_ARGUMENT naming the field; every other refusal comes
 * from the engine. Packed blocks become two arrays (ids, one byte array of hashes), not an object per block.
 * Stateless.
 */
public final class EngineProtoMapper {
    private EngineProtoMapper() {}

    public static ContextRegistration registration(RegisterContextRequest in) {
        List<LayerSpec> layers = new ArrayList<>(in.getLayersCount());
        for (LayerRegistration layer : in.getLayersList()) {
            layers.add(layer(layer));
        }
        return new ContextRegistration(
                in.getInstanceId(),
                in.getNamespace(),
                in.getTpRank(),
                in.getTpSize(),
                in.getPpRank(),
                in.getTotalLayers(),
                in.getDevice(),
                layers);
    }

    static LayerSpec layer(LayerRegistration in) {
        List<LayerSpec.Segment> segments = new ArrayList<>(in.getSegmentsCount());
        for (ByteSegment s : in.getSegmentsList()) {
            segments.add(new LayerSpec.Segment(s.getOffsetBytes(), s.getLengthBytes()));
        }
        return new LayerSpec(
                in.getName(),
                in.getLayerIndex(),
                in.hasRegion() ? region(in.getRegion()) : null,
                in.getNumBlocks(),
                in.getBlockStrideBytes(),
                segments,
                in.getReplicated(),
                in.getLayerCount(),
                in.getLayerStrideBytes());
    }

    /** A region with neither kind set reads as a shared-memory region without a path ("region.shm.path: missing"). */
    static RegionSpec region(MemoryRegion in) {
        if (in.hasCudaIpc()) {
            return new RegionSpec.CudaIpc(
                    in.getCudaIpc().getIpcHandle().toByteArray(),
                    in.getCudaIpc().getAllocationSizeBytes(),
                    in.getCudaIpc().getOffsetBytes());
        }
        return new RegionSpec.SharedMemory(in.getShm().getPath(), in.getShm().getOffsetBytes());
    }

    public static RegisterContextResponse registered(Registered r) {
        return RegisterContextResponse.newBuilder()
                .setContextId(r.contextId())
                .setBlockBytes(r.blockBytes())
                .setSlotBytes(r.slotBytes())
                .build();
    }

    public static SaveBlocks save(SaveRequest in) {
        Blocks blocks = blocks(in.getBlocksList(), in.hasPackedBlocks(), in.getPackedBlocks());
        int[] layers = new int[in.getLayerIndicesCount()];
        for (int i = 0; i < layers.length; i++) {
            layers[i] = in.getLayerIndices(i);
        }
        return new SaveBlocks(in.getContextId(), blocks.ids(), blocks.hashes(), layers);
    }

    public static SaveResponse saved(SaveResult r) {
        return SaveResponse.newBuilder()
                .setBlocksStored(r.stored())
                .setBlocksSkipped(r.skipped())
                .setBlocksSealed(r.sealed())
                .build();
    }

    public static PrefixQuery query(QueryRequest in) {
        HashList hashes;
        if (in.hasPackedHashes()) {
            if (in.getHashesCount() > 0) {
                throw new EngineException(
                        EngineException.Code.INVALID_ARGUMENT,
                        "hashes and packed_hashes: a request sets one of them, not both");
            }
            hashes = packed("packed_hashes", in.getPackedHashes());
        } else {
            byte[][] each = new byte[in.getHashesCount()][];
            for (int i = 0; i < each.length; i++) {
                each[i] = in.getHashes(i).toByteArray();
            }
            hashes = HashList.of(each);
        }
        return new PrefixQuery(in.getNamespace(), hashes, Integer.toUnsignedLong(in.getLeaseTtlMs()));
    }

    public static QueryResponse hits(PrefixHits r) {
        return QueryResponse.newBuilder()
                .setHitBlocks(r.hitBlocks())
                .setLeaseId(r.leaseId())
                .setLeaseExpiresInMs(r.leaseExpiresInMs())
                .setLocalHitBlocks(r.hitBlocks())
                .build();
    }

    public static LoadBlocks load(LoadRequest in) {
        Blocks blocks = blocks(in.getBlocksList(), in.hasPackedBlocks(), in.getPackedBlocks());
        return new LoadBlocks(
                in.getContextId(),
                blocks.ids(),
                blocks.hashes(),
                in.getLeaseId(),
                in.getFlag().getPath(),
                in.getFlag().getOffsetBytes(),
                in.getReplyWhenDone());
    }

    public static LoadResponse started(LoadStarted r) {
        LoadResponse.Builder reply = LoadResponse.newBuilder().setBlocksScheduled(r.scheduled());
        for (int id : r.failedBlockIds()) {
            reply.addFailedBlockIds(id);
        }
        LoadStarted.LoadDone done = r.done();
        if (done != null) {
            reply.setDoneState(done.failed() ? 2 : 1)
                    .setBlocksLoaded((int) done.loaded())
                    .setBlocksFailed((int) done.failedBlocks())
                    .setNodeDurationNs(done.durationNs());
        }
        return reply.build();
    }

    /** A request's blocks: the packed arrays, or one BlockRef each (the older form). */
    private record Blocks(int[] ids, HashList hashes) {}

    private static Blocks blocks(List<BlockRef> refs, boolean hasPacked, PackedBlocks packed) {
        if (hasPacked) {
            if (!refs.isEmpty()) {
                throw new EngineException(
                        EngineException.Code.INVALID_ARGUMENT,
                        "blocks and packed_blocks: a request sets one of them, not both");
            }
            int n = packed.getBlockIdsCount();
            int[] ids = new int[n];
            for (int i = 0; i < n; i++) {
                ids[i] = packed.getBlockIds(i);
            }
            HashList hashes = packed("packed_blocks.hashes", packed.getHashes());
            if (hashes.size() != n) {
                throw new EngineException(
                        EngineException.Code.INVALID_ARGUMENT,
                        "packed_blocks: " + n + " block ids but " + hashes.size() + " hashes; they come in pairs");
            }
            return new Blocks(ids, hashes);
        }
        int n = refs.size();
        int[] ids = new int[n];
        byte[][] each = new byte[n][];
        for (int i = 0; i < n; i++) {
            BlockRef ref = refs.get(i);
            ids[i] = ref.getBlockId();
            each[i] = ref.getHash().toByteArray();
        }
        return new Blocks(ids, HashList.of(each));
    }

    /** One copy of the packed bytes; the lengths are the engine's to check (1..64 bytes, named per block). */
    private static HashList packed(String field, PackedHashes in) {
        byte[] data = in.getData().toByteArray();
        long hashBytes = Integer.toUnsignedLong(in.getHashBytes());
        if (data.length == 0) {
            return HashList.packed(data, 1);
        }
        if (hashBytes == 0) {
            throw new EngineException(
                    EngineException.Code.INVALID_ARGUMENT,
                    field + ".hash_bytes: missing (" + data.length + " bytes of hashes)");
        }
        if (data.length % hashBytes != 0) {
            throw new EngineException(
                    EngineException.Code.INVALID_ARGUMENT,
                    field + ".data: " + data.length + " bytes are not a whole number of hashes of " + hashBytes
                            + " bytes (hash_bytes)");
        }
        return HashList.packed(data, (int) hashBytes);
    }
}
