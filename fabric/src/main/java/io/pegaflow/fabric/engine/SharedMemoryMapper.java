package io.pegaflow.fabric.engine;

import io.pegaflow.gpu.MappedRegion;
import io.pegaflow.gpu.SharedMemoryFile;
import java.io.IOException;
import java.nio.file.Path;

/**
 * Maps a worker's shared-memory file (realpath, open, mmap): blocking work, called on mapping threads only. A seam so
 * tests can watch which thread maps.
 */
@FunctionalInterface
public interface SharedMemoryMapper {
    /**
     * Maps {@code path} if it resolves to a file inside {@code root}.
     *
     * @throws IOException naming the path when it is missing, outside {@code root} or cannot be mapped
     */
    MappedRegion map(Path root, Path path) throws IOException;

    /** The real thing: {@link SharedMemoryFile#mapWithin}. */
    SharedMemoryMapper FILES = SharedMemoryFile::mapWithin;
}
