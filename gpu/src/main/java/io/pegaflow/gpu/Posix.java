package io.pegaflow.gpu;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.StructLayout;
import java.lang.foreign.SymbolLookup;
import java.lang.invoke.MethodHandle;
import java.lang.invoke.VarHandle;

/**
 * The binding layer for the libc calls a shared-memory mapping needs: {@code open}, {@code openat}, {@code fstat},
 * {@code mmap}, {@code munmap}, {@code close}, with the Linux constants of x86-64 and aarch64 and {@code errno}
 * captured per call. Each handle is resolved once. {@link #fstat} reuses a per-thread buffer (a copy thread checks a
 * region's size before every batch without allocating); every other call allocates its own temporaries, so all of
 * it is thread-safe.
 */
final class Posix {
    static final boolean AARCH64 = "aarch64".equals(System.getProperty("os.arch"));

    static final int O_RDWR = 0x2;
    static final int O_NONBLOCK = 0x800;
    static final int O_DIRECTORY = AARCH64 ? 0x4000 : 0x10000;
    static final int O_NOFOLLOW = AARCH64 ? 0x8000 : 0x20000;
    static final int O_CLOEXEC = 0x80000;
    static final int O_PATH = 0x200000;
    static final int PROT_READ = 0x1;
    static final int PROT_WRITE = 0x2;
    static final int MAP_SHARED = 0x01;
    static final int S_IFMT = 0xF000;
    static final int S_IFREG = 0x8000;
    static final int S_IFDIR = 0x4000;
    static final int ELOOP = 40;
    static final int ENOTDIR = 20;
    static final int ENOENT = 2;
    static final long MAP_FAILED = -1L;

    /** {@code struct stat} of glibc on Linux x86-64 and aarch64 (the fields read here; checked in PosixLayoutTest). */
    static final long STAT_BYTES = AARCH64 ? 128 : 144;

    static final long ST_DEV = 0;
    static final long ST_INO = 8;
    static final long ST_MODE = AARCH64 ? 16 : 24;
    static final long ST_SIZE = 48;

    private static final Linker LINKER = Linker.nativeLinker();
    private static final SymbolLookup LIBC = LINKER.defaultLookup();
    private static final Linker.Option ERRNO = Linker.Option.captureCallState("errno");
    private static final StructLayout CAPTURE_LAYOUT = Linker.Option.captureStateLayout();
    private static final VarHandle ERRNO_HANDLE =
            CAPTURE_LAYOUT.varHandle(MemoryLayout.PathElement.groupElement("errno"));

    private static final MethodHandle open = LINKER.downcallHandle(
            LIBC.find("open").orElseThrow(), FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT), ERRNO);
    private static final MethodHandle openat = LINKER.downcallHandle(
            LIBC.find("openat").orElseThrow(), FunctionDescriptor.of(JAVA_INT, JAVA_INT, ADDRESS, JAVA_INT), ERRNO);
    private static final MethodHandle fstat = LINKER.downcallHandle(
            LIBC.find("fstat").orElseThrow(), FunctionDescriptor.of(JAVA_INT, JAVA_INT, ADDRESS), ERRNO);
    private static final MethodHandle close =
            LINKER.downcallHandle(LIBC.find("close").orElseThrow(), FunctionDescriptor.of(JAVA_INT, JAVA_INT), ERRNO);
    private static final MethodHandle mmap = LINKER.downcallHandle(
            LIBC.find("mmap").orElseThrow(),
            FunctionDescriptor.of(ADDRESS, ADDRESS, JAVA_LONG, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_LONG),
            ERRNO);
    private static final MethodHandle munmap = LINKER.downcallHandle(
            LIBC.find("munmap").orElseThrow(), FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG), ERRNO);
    private static final MethodHandle strerror =
            LINKER.downcallHandle(LIBC.find("strerror").orElseThrow(), FunctionDescriptor.of(ADDRESS, JAVA_INT));

    /** One stat buffer and one errno capture per thread, allocated once: fstat before each copy batch allocates nothing. */
    private static final ThreadLocal<MemorySegment[]> STAT_SCRATCH = ThreadLocal.withInitial(() -> {
        Arena arena = Arena.ofAuto();
        return new MemorySegment[] {arena.allocate(STAT_BYTES, 8), arena.allocate(CAPTURE_LAYOUT)};
    });

    private Posix() {}

    /** A call's return value, or its errno when it failed. */
    record Result(long value, int errno) {
        boolean failed() {
            return errno != 0;
        }
    }

    /** The fields of {@code struct stat} that the mapping checks. */
    record Stat(long device, long inode, int mode, long sizeBytes) {
        boolean regularFile() {
            return (mode & S_IFMT) == S_IFREG;
        }

        boolean directory() {
            return (mode & S_IFMT) == S_IFDIR;
        }
    }

    static Result open(String path, int flags) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment capture = arena.allocate(CAPTURE_LAYOUT);
            int fd = (int) open.invokeExact(capture, arena.allocateFrom(path), flags);
            return fd >= 0 ? new Result(fd, 0) : new Result(fd, errno(capture));
        } catch (Throwable t) {
            throw bug("open", t);
        }
    }

    static Result openat(int dirFd, String name, int flags) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment capture = arena.allocate(CAPTURE_LAYOUT);
            int fd = (int) openat.invokeExact(capture, dirFd, arena.allocateFrom(name), flags);
            return fd >= 0 ? new Result(fd, 0) : new Result(fd, errno(capture));
        } catch (Throwable t) {
            throw bug("openat", t);
        }
    }

    /** {@code fstat} into this thread's buffer; allocates only the record. */
    static Stat fstat(int fd) throws NativeError {
        MemorySegment[] scratch = STAT_SCRATCH.get();
        MemorySegment buf = scratch[0];
        int rc;
        try {
            rc = (int) fstat.invokeExact(scratch[1], fd, buf);
        } catch (Throwable t) {
            throw bug("fstat", t);
        }
        if (rc != 0) {
            throw new NativeError("fstat", errno(scratch[1]));
        }
        return new Stat(
                buf.get(JAVA_LONG, ST_DEV),
                buf.get(JAVA_LONG, ST_INO),
                buf.get(JAVA_INT, ST_MODE),
                buf.get(JAVA_LONG, ST_SIZE));
    }

    /** The file's current size by {@code fstat}, or -1 when fstat fails; allocates nothing. */
    static long sizeOf(int fd) {
        MemorySegment[] scratch = STAT_SCRATCH.get();
        try {
            int rc = (int) fstat.invokeExact(scratch[1], fd, scratch[0]);
            return rc == 0 ? scratch[0].get(JAVA_LONG, ST_SIZE) : -1;
        } catch (Throwable t) {
            throw bug("fstat", t);
        }
    }

    /** A shared read-write mapping of the first {@code bytes} of {@code fd}; the address, or errno. */
    static Result mmapShared(int fd, long bytes) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment capture = arena.allocate(CAPTURE_LAYOUT);
            MemorySegment p = (MemorySegment)
                    mmap.invokeExact(capture, MemorySegment.NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0L);
            return p.address() == MAP_FAILED ? new Result(0, errno(capture)) : new Result(p.address(), 0);
        } catch (Throwable t) {
            throw bug("mmap", t);
        }
    }

    static Result munmap(long address, long bytes) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment capture = arena.allocate(CAPTURE_LAYOUT);
            int rc = (int) munmap.invokeExact(capture, MemorySegment.ofAddress(address), bytes);
            return rc == 0 ? new Result(0, 0) : new Result(rc, errno(capture));
        } catch (Throwable t) {
            throw bug("munmap", t);
        }
    }

    static void close(int fd) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment capture = arena.allocate(CAPTURE_LAYOUT);
            int rc = (int) close.invokeExact(capture, fd);
            // A failed close of a descriptor we opened cannot be retried (Linux frees it anyway): nothing to do.
            assert rc == 0 || errno(capture) != 0;
        } catch (Throwable t) {
            throw bug("close", t);
        }
    }

    /** strerror's message and the number, e.g. "Too many levels of symbolic links (errno 40)". */
    static String errnoText(int errno) {
        try {
            MemorySegment text = (MemorySegment) strerror.invokeExact(errno);
            return text.reinterpret(256).getString(0) + " (errno " + errno + ")";
        } catch (Throwable t) {
            return "errno " + errno;
        }
    }

    private static int errno(MemorySegment capture) {
        int errno = (int) ERRNO_HANDLE.get(capture, 0L);
        return errno == 0 ? -1 : errno; // a failure without errno still reads as a failure
    }

    private static AssertionError bug(String function, Throwable t) {
        return new AssertionError("calling " + function + " failed (a wrong binding?): " + t, t);
    }

    /** A failed libc call: the function and errno. */
    static final class NativeError extends Exception {
        final int errno;

        NativeError(String function, int errno) {
            super(function + ": " + errnoText(errno));
            this.errno = errno;
        }
    }
}
