package io.pegaflow.fabric.channel;

import java.nio.file.Path;

/** Where a command channel lives and what it holds: what OpenCommandChannel replies. */
public record ChannelInfo(
        Path path,
        long sizeBytes,
        int version,
        int slotCount,
        long slotBytes,
        int maxBlocks,
        int maxLayers,
        long headerBytes) {}
