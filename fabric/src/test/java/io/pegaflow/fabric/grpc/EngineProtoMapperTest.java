package io.pegaflow.fabric.grpc;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.protobuf.ByteString;
import io.pegaflow.fabric.engine.ContextRegistration;
import io.pegaflow.fabric.engine.EngineException;
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
import io.pegaflow.proto.engine.PackedBlocks;
import io.pegaflow.proto.engine.PackedHashes;
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
        assertArrayEquals("b".getBytes(), save.hashes().copy(1));
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

    private static PackedBlocks packed(int[] ids, int hashBytes, byte[] data) {
        PackedBlocks.Builder b = PackedBlocks.newBuilder()
                .setHashes(PackedHashes.newBuilder()
                        .setData(ByteString.copyFrom(data))
                        .setHashBytes(hashBytes));
        for (int id : ids) {
            b.addBlockIds(id);
        }
        return b.build();
    }

    @Test
    void shouldReadPackedBlocksAsTheSamePairsAsBlockRefs() {
        byte[] data = "aaaabbbbcccc".getBytes();
        SaveBlocks save = EngineProtoMapper.save(SaveRequest.newBuilder()
                .setContextId("c")
                .setPackedBlocks(packed(new int[] {5, -1, 9}, 4, data))
                .build());
        assertArrayEquals(new int[] {5, -1, 9}, save.blockIds());
        assertEquals(3, save.hashes().size());
        assertArrayEquals("bbbb".getBytes(), save.hashes().copy(1));
        LoadBlocks load = EngineProtoMapper.load(LoadRequest.newBuilder()
                .setContextId("c")
                .setPackedBlocks(packed(new int[] {1, 2, 3}, 4, data))
                .setReplyWhenDone(true)
                .build());
        assertArrayEquals("cccc".getBytes(), load.hashes().copy(2));
        assertTrue(load.replyWhenDone());
        assertFalse(load.hasFlag(), "a reply-when-done load may go without a flag");
        PrefixQuery query = EngineProtoMapper.query(QueryRequest.newBuilder()
                .setNamespace("ns")
                .setPackedHashes(PackedHashes.newBuilder()
                        .setData(ByteString.copyFrom(data))
                        .setHashBytes(6))
                .build());
        assertEquals(2, query.hashes().size());
        assertArrayEquals("bbcccc".getBytes(), query.hashes().copy(1));
    }

    @Test
    void shouldRefusePackedBlocksOfTheWrongShapeNamingTheField() {
        byte[] data = "aaaabbbb".getBytes();
        assertInvalid(
                "packed_blocks: 3 block ids but 2 hashes; they come in pairs",
                () -> EngineProtoMapper.save(SaveRequest.newBuilder()
                        .setPackedBlocks(packed(new int[] {1, 2, 3}, 4, data))
                        .build()));
        assertInvalid(
                "packed_blocks.hashes.data: 8 bytes are not a whole number of hashes of 3 bytes (hash_bytes)",
                () -> EngineProtoMapper.load(LoadRequest.newBuilder()
                        .setPackedBlocks(packed(new int[] {1, 2}, 3, data))
                        .build()));
        assertInvalid(
                "packed_blocks.hashes.hash_bytes: missing (8 bytes of hashes)",
                () -> EngineProtoMapper.save(SaveRequest.newBuilder()
                        .setPackedBlocks(packed(new int[] {1, 2}, 0, data))
                        .build()));
        assertInvalid(
                "blocks and packed_blocks: a request sets one of them, not both",
                () -> EngineProtoMapper.save(SaveRequest.newBuilder()
                        .addBlocks(BlockRef.newBuilder().setBlockId(1).setHash(ByteString.copyFromUtf8("x")))
                        .setPackedBlocks(packed(new int[] {1, 2}, 4, data))
                        .build()));
        assertInvalid(
                "hashes and packed_hashes: a request sets one of them, not both",
                () -> EngineProtoMapper.query(QueryRequest.newBuilder()
                        .addHashes(ByteString.copyFromUtf8("x"))
                        .setPackedHashes(PackedHashes.newBuilder()
                                .setData(ByteString.copyFrom(data))
                                .setHashBytes(4))
                        .build()));
    }

    private static void assertInvalid(String message, org.junit.jupiter.api.function.Executable call) {
        EngineException e = assertThrows(EngineException.class, call);
        assertEquals(EngineException.Code.INVALID_ARGUMENT, e.code());
        assertEquals(message, e.getMessage());
    }
}
