package io.pegaflow.fabric.engine;

import com.google.protobuf.ByteString;
import io.pegaflow.proto.engine.BlockRef;
import io.pegaflow.proto.engine.ByteSegment;
import io.pegaflow.proto.engine.LayerRegistration;
import io.pegaflow.proto.engine.MemoryRegion;
import io.pegaflow.proto.engine.RegisterContextRequest;
import io.pegaflow.proto.engine.SharedMemoryRegion;
import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Random;
import java.util.UUID;

/**
 * A worker's KV cache in a real {@code /dev/shm} file, in vLLM's packed layout (one contiguous range per block per
 * layer) or the older K/V-planes layout (two segments per block). Test-side stand-in for a vLLM worker.
 */
final class ShmKvCache implements AutoCloseable {
    final Path path;
    final int layers;
    final int numBlocks;
    final int blockBytes; // bytes of one block of one layer
    final boolean kvPlanes;
    private final FileChannel channel;
    private final java.nio.MappedByteBuffer map;

    ShmKvCache(int layers, int numBlocks, int blockBytes, boolean kvPlanes) throws IOException {
        this.layers = layers;
        this.numBlocks = numBlocks;
        this.blockBytes = blockBytes;
        this.kvPlanes = kvPlanes;
        this.path = Path.of("/dev/shm", "pegaflow-test-" + UUID.randomUUID());
        long size = (long) layers * numBlocks * blockBytes;
        try (RandomAccessFile f = new RandomAccessFile(path.toFile(), "rw")) {
            f.setLength(size);
        }
        channel = FileChannel.open(path, java.nio.file.StandardOpenOption.READ, java.nio.file.StandardOpenOption.WRITE);
        map = channel.map(FileChannel.MapMode.READ_WRITE, 0, size);
    }

    long layerBase(int layer) {
        return (long) layer * numBlocks * blockBytes;
    }

    RegisterContextRequest.Builder registration(
            String instance, String namespace, int tpRank, int tpSize, int totalLayers, int firstLayer) {
        RegisterContextRequest.Builder r = RegisterContextRequest.newBuilder()
                .setInstanceId(instance)
                .setNamespace(namespace)
                .setTpRank(tpRank)
                .setTpSize(tpSize)
                .setTotalLayers(totalLayers)
                .setDevice("host");
        for (int l = 0; l < layers; l++) {
            LayerRegistration.Builder layer = LayerRegistration.newBuilder()
                    .setName("model.layers." + (firstLayer + l) + ".attn")
                    .setLayerIndex(firstLayer + l)
                    .setNumBlocks(numBlocks)
                    .setRegion(MemoryRegion.newBuilder()
                            .setShm(SharedMemoryRegion.newBuilder()
                                    .setPath(path.toString())
                                    .setOffsetBytes(layerBase(l))));
            if (kvPlanes) {
                int half = blockBytes / 2;
                layer.setBlockStrideBytes(half)
                        .addSegments(ByteSegment.newBuilder().setOffsetBytes(0).setLengthBytes(half))
                        .addSegments(ByteSegment.newBuilder()
                                .setOffsetBytes((long) numBlocks * half)
                                .setLengthBytes(half));
            } else {
                layer.setBlockStrideBytes(blockBytes)
                        .addSegments(ByteSegment.newBuilder().setOffsetBytes(0).setLengthBytes(blockBytes));
            }
            r.addLayers(layer);
        }
        return r;
    }

    /** The bytes of one block of one layer, as the engine sees them (segments concatenated). */
    byte[] read(int layer, int block) {
        byte[] out = new byte[blockBytes];
        if (kvPlanes) {
            int half = blockBytes / 2;
            map.get((int) (layerBase(layer) + (long) block * half), out, 0, half);
            map.get((int) (layerBase(layer) + (long) numBlocks * half + (long) block * half), out, half, half);
        } else {
            map.get((int) (layerBase(layer) + (long) block * blockBytes), out, 0, blockBytes);
        }
        return out;
    }

    void write(int layer, int block, byte[] bytes) {
        if (kvPlanes) {
            int half = blockBytes / 2;
            map.put((int) (layerBase(layer) + (long) block * half), bytes, 0, half);
            map.put((int) (layerBase(layer) + (long) numBlocks * half + (long) block * half), bytes, half, half);
        } else {
            map.put((int) (layerBase(layer) + (long) block * blockBytes), bytes, 0, blockBytes);
        }
    }

    /** Fills every layer of {@code block} with random bytes and returns them, [layer][byte]. */
    byte[][] fillRandom(int block, long seed) {
        Random random = new Random(seed);
        byte[][] data = new byte[layers][blockBytes];
        for (int l = 0; l < layers; l++) {
            random.nextBytes(data[l]);
            write(l, block, data[l]);
        }
        return data;
    }

    void scribble(int block) {
        for (int l = 0; l < layers; l++) {
            write(l, block, new byte[blockBytes]);
        }
    }

    static byte[] hash(String s) {
        return s.getBytes(java.nio.charset.StandardCharsets.UTF_8);
    }

    static BlockRef ref(int block, String hash) {
        return BlockRef.newBuilder()
                .setBlockId(block)
                .setHash(ByteString.copyFrom(hash(hash)))
                .build();
    }

    @Override
    public void close() throws IOException {
        channel.close();
        Files.deleteIfExists(path);
    }
}
