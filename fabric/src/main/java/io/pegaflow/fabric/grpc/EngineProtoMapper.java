package io.pegaflow.fabric.grpc;

import io.pegaflow.fabric.engine.ContextRegistration;
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
import io.pegaflow.proto.engine.QueryRequest;
import io.pegaflow.proto.engine.QueryResponse;
import io.pegaflow.proto.engine.RegisterContextRequest;
import io.pegaflow.proto.engine.RegisterContextResponse;
import io.pegaflow.proto.engine.SaveRequest;
import io.pegaflow.proto.engine.SaveResponse;
import java.util.ArrayList;
import java.util.List;

/**
 * Engine messages to the engine's domain records and back. Unsigned fields keep their bits (the engine reads them
 * unsigned and names them in its errors); no check happens here, so every refusal comes from the engine with the
 * field it names. Stateless.
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
        int n = in.getBlocksCount();
        int[] ids = new int[n];
        byte[][] hashes = new byte[n][];
        unpack(in.getBlocksList(), ids, hashes);
        int[] layers = new int[in.getLayerIndicesCount()];
        for (int i = 0; i < layers.length; i++) {
            layers[i] = in.getLayerIndices(i);
        }
        return new SaveBlocks(in.getContextId(), ids, hashes, layers);
    }

    public static SaveResponse saved(SaveResult r) {
        return SaveResponse.newBuilder()
                .setBlocksStored(r.stored())
                .setBlocksSkipped(r.skipped())
                .setBlocksSealed(r.sealed())
                .build();
    }

    public static PrefixQuery query(QueryRequest in) {
        byte[][] hashes = new byte[in.getHashesCount()][];
        for (int i = 0; i < hashes.length; i++) {
            hashes[i] = in.getHashes(i).toByteArray();
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
        int n = in.getBlocksCount();
        int[] ids = new int[n];
        byte[][] hashes = new byte[n][];
        unpack(in.getBlocksList(), ids, hashes);
        return new LoadBlocks(
                in.getContextId(),
                ids,
                hashes,
                in.getLeaseId(),
                in.getFlag().getPath(),
                in.getFlag().getOffsetBytes());
    }

    public static LoadResponse started(LoadStarted r) {
        LoadResponse.Builder reply = LoadResponse.newBuilder().setBlocksScheduled(r.scheduled());
        for (int id : r.failedBlockIds()) {
            reply.addFailedBlockIds(id);
        }
        return reply.build();
    }

    private static void unpack(List<BlockRef> refs, int[] ids, byte[][] hashes) {
        for (int i = 0; i < ids.length; i++) {
            BlockRef ref = refs.get(i);
            ids[i] = ref.getBlockId();
            hashes[i] = ref.getHash().toByteArray();
        }
    }
}
