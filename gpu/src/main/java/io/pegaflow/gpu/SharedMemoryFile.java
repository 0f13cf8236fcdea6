package io.pegaflow.gpu;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;

/**
 * A worker's shared-memory file (usually under {@code /dev/shm}) mapped read-write into this process. The mapping
 * lives in its own shared arena and is unmapped by {@link #close()}, which the owner calls only after every copy
 * that uses it has finished.
 */
public final class SharedMemoryFile implements MappedRegion {
    private final Path path;
    private final Arena arena;
    private final MemorySegment memory;

    private SharedMemoryFile(Path path, Arena arena, MemorySegment memory) {
        this.path = path;
        this.arena = arena;
        this.memory = memory;
    }

    /**
     * Maps the whole file.
     *
     * @throws IOException naming the path when it does not exist, is not a regular file or cannot be mapped
     */
    public static SharedMemoryFile map(Path path) throws IOException {
        if (!Files.exists(path)) {
            throw new NoSuchFileException(path.toString(), null, "no such shared-memory file");
        }
        if (!Files.isRegularFile(path)) {
            throw new IOException(path + " is not a regular file");
        }
        Arena arena = Arena.ofShared();
        try (FileChannel channel = FileChannel.open(path, StandardOpenOption.READ, StandardOpenOption.WRITE)) {
            long size = channel.size();
            if (size == 0) {
                throw new IOException(path + " is empty");
            }
            MemorySegment memory = channel.map(FileChannel.MapMode.READ_WRITE, 0, size, arena);
            return new SharedMemoryFile(path, arena, memory);
        } catch (IOException | RuntimeException e) {
            arena.close();
            throw e;
        }
    }

    /**
     * Maps {@code path} only if it resolves (symbolic links followed) to a file inside {@code root}: a node must not
     * read or write arbitrary files because a request named them.
     */
    public static SharedMemoryFile mapWithin(Path root, Path path) throws IOException {
        if (!Files.exists(path)) {
            throw new NoSuchFileException(path.toString(), null, "no such shared-memory file");
        }
        Path real = path.toRealPath();
        Path realRoot = root.toRealPath();
        if (!real.startsWith(realRoot)) {
            throw new IOException(path + " is outside " + root + " (the node maps only shared-memory files there)");
        }
        return map(real);
    }

    public Path path() {
        return path;
    }

    @Override
    public MemorySegment memory() {
        return memory;
    }

    @Override
    public long sizeBytes() {
        return memory.byteSize();
    }

    @Override
    public String description() {
        return path.toString();
    }

    @Override
    public void close() {
        arena.close();
    }
}
