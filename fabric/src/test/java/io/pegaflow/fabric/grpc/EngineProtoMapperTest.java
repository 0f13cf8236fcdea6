package io.pegaflow.fabric.grpc;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;

import com.google.protobuf.ByteString;
import io.pegaflow.fabric.engine.ContextRegistration;
import io.pegaflow.fabric.engine.LoadBlocks;
import io.pegaflow.fabric.engine.PrefixQuery;
import io.pegaflow.fabric.engine.RegionSpec;
import io.pegaflow.fabric.engine.SaveBlocks;
import io.pegaflow.proto.engine.BlockRef;
import io.pegaflow.proto.engine.ByteSegment;
import io.pegaflow.proto.engine.CudaIpcRegion;
import io.pegaflow.proto.engine.LayerRegistration;
import io.pegaflow.proto.engine.LoadFlag;
import io.pegaflow.proto.engine.LoadRequest;
import io.pegaflow.proto.engine.MemoryRegion;
import io.pegaflow.proto.engine.QueryRequest;
import io.pegaflow.proto.engine.RegisterContextRequest;
import io.pegaflow.proto.engine.SaveRequest;
import io.pegaflow.proto.engine.SharedMemoryRegion;
import org.junit.jupiter.api.Test;

class EngineProtoMapperTest {
    @Test
    void shouldKeepTheBitsOfUnsignedFieldsForTheEngineToJudge() {
        RegisterContextRequest in = RegisterContextRequest.newBuilder()
                .setInstanceId("i")
                .setNamespace("ns")
                .setTpRank(-1) // 2^32-1 on the wire
                .setTpSize(2)
                .setTotalLayers(2)
                .setDevice("host")
                .addLayers(LayerRegistration.newBuilder()
                        .setLayerIndex(1)
                        .setNumBlocks(8)
                        .setBlockStrideBytes(4096)
                        .setRegion(MemoryRegion.newBuilder()
                                .setShm(SharedMemoryRegion.newBuilder()
                                        .setPath("/dev/shm/kv")
                                        .setOffsetBytes(-4096))) // 2^64-4096
                        .addSegments(ByteSegment.newBuilder().setOffsetBytes(0).setLengthBytes(4096)))
                .build();
        ContextRegistration r = EngineProtoMapper.registration(in);
        assertEquals(-1, r.tpRank());
        assertEquals(
                new RegionSpec.SharedMemory("/dev/shm/kv", -4096),
                r.layers().get(0).region());
        assertEquals(4096, r.layers().get(0).segments().get(0).lengthBytes());
    }

    @Test
    void shouldMapAMissingRegionToNullAndAnEmptyOneToAPathlessFile() {
        LayerRegistration none = LayerRegistration.newBuilder().setLayerIndex(0).build();
        assertNull(EngineProtoMapper.layer(none).region(), "\"region: missing\"");
        LayerRegistration empty =
                none.toBuilder().setRegion(MemoryRegion.getDefaultInstance()).build();
        assertEquals(
                new RegionSpec.SharedMemory("", 0),
                EngineProtoMapper.layer(empty).region());
        LayerRegistration ipc = none.toBuilder()
                .setRegion(MemoryRegion.newBuilder()
                        .setCudaIpc(CudaIpcRegion.newBuilder()
                                .setIpcHandle(ByteString.copyFrom(new byte[] {1, 2}))
                                .setAllocationSizeBytes(10)
                                .setOffsetBytes(3)))
                .build();
        RegionSpec.CudaIpc mapped =
                (RegionSpec.CudaIpc) EngineProtoMapper.layer(ipc).region();
        assertArrayEquals(new byte[] {1, 2}, mapped.ipcHandle());
        assertEquals(10, mapped.allocationSizeBytes());
        assertEquals(3, mapped.offsetBytes());
    }

    @Test
    void shouldPackBlockIdsAndHashesOfSavesLoadsAndQueries() {
        BlockRef a = BlockRef.newBuilder()
                .setBlockId(-1)
                .setHash(ByteString.copyFromUtf8("a"))
                .build();
        BlockRef b = BlockRef.newBuilder()
                .setBlockId(7)
                .setHash(ByteString.copyFromUtf8("b"))
                .build();
        SaveBlocks save = EngineProtoMapper.save(SaveRequest.newBuilder()
                .setContextId("c")
                .addBlocks(a)
                .addBlocks(b)
                .addLayerIndices(1)
                .build());
        assertArrayEquals(new int[] {-1, 7}, save.blockIds());
        assertArrayEquals("b".getBytes(), save.hashes()[1]);
        assertArrayEquals(new int[] {1}, save.layerIndices());
        LoadBlocks load = EngineProtoMapper.load(LoadRequest.newBuilder()
                .setContextId("c")
                .addBlocks(b)
                .setLeaseId(42)
                .setFlag(LoadFlag.newBuilder().setPath("/dev/shm/f").setOffsetBytes(-8))
                .build());
        assertEquals(42, load.leaseId());
        assertEquals("/dev/shm/f", load.flagPath());
        assertEquals(-8, load.flagOffsetBytes());
        PrefixQuery query = EngineProtoMapper.query(QueryRequest.newBuilder()
                .setNamespace("ns")
                .addHashes(ByteString.copyFromUtf8("a"))
                .setLeaseTtlMs(-1)
                .build());
        assertEquals(4294967295L, query.leaseTtlMs(), "uint32 read unsigned");
    }
}
