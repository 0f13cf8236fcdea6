package io.pegaflow.store.memory;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.StructLayout;
import java.lang.invoke.MethodHandle;
import java.lang.invoke.VarHandle;

/**
 * The binding layer for the libc calls host memory needs ({@code mmap}, {@code munmap}, {@code madvise}), Linux x86-64
 * and aarch64 constants, {@code errno} captured per call. Each handle is resolved once; every wrapper takes its own
 * capture segment, so it is thread-safe.
 */
final class Libc {
    static final int PROT_READ = 0x1;
    static final int PROT_WRITE = 0x2;
    static final int MAP_PRIVATE = 0x02;
    static final int MAP_ANONYMOUS = 0x20;
    static final int MAP_HUGETLB = 0x40000;
    static final int MADV_HUGEPAGE = 14;
    static final int MADV_NOHUGEPAGE = 15;
    static final int MADV_POPULATE_WRITE = 23;
    static final long MAP_FAILED = -1L;

    private static final Linker LINKER = Linker.nativeLinker();
    private static final Linker.Option ERRNO = Linker.Option.captureCallState("errno");
    private static final StructLayout CAPTURE_LAYOUT = Linker.Option.captureStateLayout();
    private static final VarHandle ERRNO_HANDLE =
            CAPTURE_LAYOUT.varHandle(MemoryLayout.PathElement.groupElement("errno"));

    private static final MethodHandle mmap = LINKER.downcallHandle(
            LINKER.defaultLookup().find("mmap").orElseThrow(),
            FunctionDescriptor.of(ADDRESS, ADDRESS, JAVA_LONG, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_LONG),
            ERRNO);
    private static final MethodHandle munmap = LINKER.downcallHandle(
            LINKER.defaultLookup().find("munmap").orElseThrow(),
            FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG),
            ERRNO);
    private static final MethodHandle madvise = LINKER.downcallHandle(
            LINKER.defaultLookup().find("madvise").orElseThrow(),
            FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG, JAVA_INT),
            ERRNO);
    private static final MethodHandle strerror = LINKER.downcallHandle(
            LINKER.defaultLookup().find("strerror").orElseThrow(), FunctionDescriptor.of(ADDRESS, JAVA_INT));

    private Libc() {}

    /** The result of one call: its return value and, when it failed, errno. */
    record Result(long value, int errno) {
        boolean failed() {
            return errno != 0;
        }
    }

    /** An anonymous private read-write mapping; {@code value} is the address, or errno is set. */
    static Result mmapAnonymous(long bytes, int extraFlags) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment capture = arena.allocate(CAPTURE_LAYOUT);
            MemorySegment p = (MemorySegment) mmap.invokeExact(
                    capture,
                    MemorySegment.NULL,
                    bytes,
                    PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS | extraFlags,
                    -1,
                    0L);
            return p.address() == MAP_FAILED ? new Result(0, errno(capture)) : new Result(p.address(), 0);
        } catch (Throwable t) {
            throw bug("mmap", t);
        }
    }

    static Result madvise(long address, long bytes, int advice) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment capture = arena.allocate(CAPTURE_LAYOUT);
            int rc = (int) madvise.invokeExact(capture, MemorySegment.ofAddress(address), bytes, advice);
            return rc == 0 ? new Result(0, 0) : new Result(rc, errno(capture));
        } catch (Throwable t) {
            throw bug("madvise", t);
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

    private static int errno(MemorySegment capture) {
        int errno = (int) ERRNO_HANDLE.get(capture, 0L);
        return errno == 0 ? -1 : errno; // a failure without errno still reads as a failure
    }

    /** strerror's message and the number, e.g. "Cannot allocate memory (errno 12)". */
    static String errnoText(int errno) {
        try {
            MemorySegment text = (MemorySegment) strerror.invokeExact(errno);
            return text.reinterpret(256).getString(0) + " (errno " + errno + ")";
        } catch (Throwable t) {
            return "errno " + errno;
        }
    }

    private static AssertionError bug(String function, Throwable t) {
        return new AssertionError("calling " + function + " failed (a wrong binding?): " + t, t);
    }
}
