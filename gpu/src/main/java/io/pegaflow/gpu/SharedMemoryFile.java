package io.pegaflow.gpu;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * A worker's shared-memory file (usually under {@code /dev/shm}) mapped read-write into this process. The mapping
 * lives in its own shared arena and is unmapped by {@link #close()}, which the owner calls only after every copy
 * that uses it has finished.
 *
 * <p>The file is opened once, by walking from the allowed directory one component at a time with {@code openat} and
 * {@code O_NOFOLLOW} (no symbolic link is followed anywhere below that directory, no {@code ..}, no other file
 * system); the opened descriptor itself is checked ({@code fstat}: a regular file, not empty) and exactly that
 * descriptor is mapped. Nothing is resolved twice, so swapping a directory for a symbolic link while the node maps
 * cannot make it map a file elsewhere. The descriptor stays open while the file is mapped: {@link #damage()} asks it
 * for the file's current size, so a worker that shrinks its file is noticed before a copy touches the lost pages.
 */
public final class SharedMemoryFile implements MappedRegion {
    private final Path path;
    private final Arena arena;
    private final MemorySegment memory;
    private final int fd;

    private SharedMemoryFile(Path path, Arena arena, MemorySegment memory, int fd) {
        this.path = path;
        this.arena = arena;
        this.memory = memory;
        this.fd = fd;
    }

    /**
     * Maps {@code path} only if it names a regular file inside {@code root} reached without following a symbolic
     * link below {@code root}: a node must not read or write arbitrary files because a request named them. {@code
     * root} itself is the operator's setting and may be (or lie under) a link.
     *
     * @throws IOException saying why (without repeating the whole path: the caller names it) when it is not absolute, not below {@code root}, missing, a link, not a
     *     regular file, empty, or cannot be mapped
     */
    public static SharedMemoryFile mapWithin(Path root, Path path) throws IOException {
        Path realRoot = root.toRealPath();
        List<String> names = namesBelow(root, realRoot, path);
        Posix.Result rootFd = Posix.open(realRoot.toString(), Posix.O_PATH | Posix.O_DIRECTORY | Posix.O_CLOEXEC);
        if (rootFd.failed()) {
            throw new IOException("cannot open " + root + ": " + Posix.errnoText(rootFd.errno()));
        }
        int dir = (int) rootFd.value();
        try {
            long device = stat(path, dir).device();
            for (int i = 0; i < names.size() - 1; i++) {
                int next = openComponent(
                        path, names, i, dir, Posix.O_PATH | Posix.O_DIRECTORY | Posix.O_NOFOLLOW | Posix.O_CLOEXEC);
                Posix.close(dir);
                dir = next;
                if (stat(path, dir).device() != device) {
                    throw new IOException(
                            "\"" + names.get(i) + "\" is on another file system than " + root + " (a mount point)");
                }
            }
            int file = openComponent(
                    path,
                    names,
                    names.size() - 1,
                    dir,
                    Posix.O_RDWR | Posix.O_NOFOLLOW | Posix.O_CLOEXEC | Posix.O_NONBLOCK);
            try {
                return mapDescriptor(path, file, device, root);
            } catch (IOException | RuntimeException e) {
                Posix.close(file);
                throw e;
            }
        } finally {
            Posix.close(dir);
        }
    }

    /** The components of {@code path} below {@code root} (or its real path), each a plain name. */
    private static List<String> namesBelow(Path root, Path realRoot, Path path) throws IOException {
        if (!path.isAbsolute()) {
            throw new IOException("not an absolute path");
        }
        Path below;
        if (path.startsWith(root.toAbsolutePath())) {
            below = root.toAbsolutePath().relativize(path);
        } else if (path.startsWith(realRoot)) {
            below = realRoot.relativize(path);
        } else {
            throw new IOException("is outside " + root + " (the node maps only shared-memory files there)");
        }
        List<String> names = new ArrayList<>();
        for (Path name : below) {
            String n = name.toString();
            if (n.isEmpty()) {
                continue;
            }
            if (n.equals("..") || n.equals(".")) {
                throw new IOException("\"" + n + "\" is not allowed in a shared-memory path");
            }
            names.add(n);
        }
        if (names.isEmpty()) {
            throw new IOException("names " + root + " itself, not a file in it");
        }
        return names;
    }

    private static int openComponent(Path path, List<String> names, int i, int dir, int flags) throws IOException {
        Posix.Result r = Posix.openat(dir, names.get(i), flags);
        if (!r.failed()) {
            return (int) r.value();
        }
        String at = "\"" + names.get(i) + "\"";
        boolean last = i == names.size() - 1;
        if (r.errno() == Posix.ENOENT) {
            throw new NoSuchFileException(at, null, "no such file");
        }
        if (r.errno() == Posix.ELOOP || (!last && r.errno() == Posix.ENOTDIR)) {
            throw new IOException(at + " is a symbolic link" + (last ? "" : " or not a directory")
                    + " (the node follows no links in the shared-memory dir)");
        }
        throw new IOException("cannot open " + at + ": " + Posix.errnoText(r.errno()));
    }

    private static Posix.Stat stat(Path path, int fd) throws IOException {
        try {
            return Posix.fstat(fd);
        } catch (Posix.NativeError e) {
            throw new IOException(e.getMessage());
        }
    }

    /** Checks the opened descriptor itself and maps exactly it. */
    private static SharedMemoryFile mapDescriptor(Path path, int fd, long device, Path root) throws IOException {
        Posix.Stat st = stat(path, fd);
        if (!st.regularFile()) {
            throw new IOException("not a regular file");
        }
        if (st.device() != device) {
            throw new IOException("on another file system than " + root);
        }
        long size = st.sizeBytes();
        if (size == 0) {
            throw new IOException("the file is empty");
        }
        Posix.Result m = Posix.mmapShared(fd, size);
        if (m.failed()) {
            throw new IOException("mmap failed: " + Posix.errnoText(m.errno()));
        }
        long address = m.value();
        Arena arena = Arena.ofShared();
        MemorySegment memory =
                MemorySegment.ofAddress(address).reinterpret(size, arena, unused -> Posix.munmap(address, size));
        return new SharedMemoryFile(path, arena, memory, fd);
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

    /**
     * Asks the descriptor for the file's size now (one {@code fstat}, no allocation unless damaged): a file shorter
     * than the mapping would fault a copy that touches its lost pages.
     */
    @Override
    public String damage() {
        long now = Posix.sizeOf(fd);
        if (now >= memory.byteSize()) {
            return null;
        }
        return now < 0
                ? "cannot stat the file any more"
                : "the file shrank to " + now + " bytes after it was mapped with " + memory.byteSize();
    }

    @Override
    public void close() {
        arena.close();
        Posix.close(fd);
    }
}
