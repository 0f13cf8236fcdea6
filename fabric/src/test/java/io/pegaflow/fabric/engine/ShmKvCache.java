package io.pegaflow.fabric.engine;

import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
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

    ContextRegistration registration(
            String instance, String namespace, int tpRank, int tpSize, int totalLayers, int firstLayer) {
        List<LayerSpec> specs = new ArrayList<>();
        for (int l = 0; l < layers; l++) {
            RegionSpec region = new RegionSpec.SharedMemory(path.toString(), layerBase(l));
            String name = "model.layers." + (firstLayer + l) + ".attn";
            if (kvPlanes) {
                int half = blockBytes / 2;
                specs.add(new LayerSpec(
                        name,
                        firstLayer + l,
                        region,
                        numBlocks,
                        half,
                        List.of(new LayerSpec.Segment(0, half), new LayerSpec.Segment((long) numBlocks * half, half))));
            } else {
                specs.add(new LayerSpec(
                        name,
                        firstLayer + l,
                        region,
                        numBlocks,
                        blockBytes,
                        List.of(new LayerSpec.Segment(0, blockBytes))));
            }
        }
        return new ContextRegistration(instance, namespace, tpRank, tpSize, 0, totalLayers, "host", specs);
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

    @Override
    public void close() throws IOException {
        channel.close();
        Files.deleteIfExists(path);
    }
}
