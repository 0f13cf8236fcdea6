package io.pegaflow.store.memory;

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
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;

/**
 * NUMA memory policy for a range of the pool: {@code mbind(MPOL_BIND)} before the range is populated, so its pages
 * come from one node, and {@code get_mempolicy} to read a range's policy back. Both are Linux system calls made through
 * glibc's {@code syscall()}: libnuma is not used because it is a separate package many hosts lack, and these two calls
 * are all the pool needs (numbers for x86-64 and aarch64).
 *
 * <p>Stateless and thread-safe.
 */
public final class Numa {
    /** {@code MPOL_BIND}: allocate from the given nodes only. */
    public static final int MPOL_BIND = 2;

    private static final int MPOL_F_ADDR = 2;
    /** Bits of the node masks passed (nodes 0..1023). */
    private static final int MASK_BITS = 1024;

    private static final Linker LINKER = Linker.nativeLinker();
    private static final StructLayout CAPTURE_LAYOUT = Linker.Option.captureStateLayout();
    private static final VarHandle ERRNO_HANDLE =
            CAPTURE_LAYOUT.varHandle(MemoryLayout.PathElement.groupElement("errno"));
    // long syscall(long number, ...): six long arguments after the number (unused ones are ignored by the kernel).
    private static final MethodHandle SYSCALL = LINKER.downcallHandle(
            LINKER.defaultLookup().find("syscall").orElseThrow(),
            FunctionDescriptor.of(
                    JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG),
            Linker.Option.firstVariadicArg(1),
            Linker.Option.captureCallState("errno"));

    private static final boolean AARCH64 =
            System.getProperty("os.arch", "").toLowerCase(Locale.ROOT).equals("aarch64");
    private static final long SYS_MBIND = AARCH64 ? 235 : 237;
    private static final long SYS_GET_MEMPOLICY = AARCH64 ? 236 : 239;

    private Numa() {}

    /** A range's policy as the kernel reports it: the mode and the lowest node of its mask (-1 if empty). */
    public record Policy(int mode, int firstNode) {}

    /** Whether this host has NUMA node {@code node} ({@code /sys/devices/system/node/node<N>}). */
    public static boolean nodeExists(int node) {
        return node >= 0 && Files.isDirectory(Path.of("/sys/devices/system/node/node" + node));
    }

    /**
     * Binds [address, address + length) to NUMA node {@code node} ({@code MPOL_BIND}): pages faulted in afterwards
     * come from that node only. Call it before populating.
     *
     * @throws IllegalStateException naming errno when the kernel refuses (e.g. no such node, a range not page-aligned)
     */
    public static void bind(long address, long length, int node) {
        if (node < 0 || node >= MASK_BITS) {
            throw new IllegalArgumentException("NUMA node " + node + " must be in [0, " + MASK_BITS + ")");
        }
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment mask = arena.allocate(MASK_BITS / 8, 8);
            mask.set(JAVA_LONG, (node / 64) * 8L, 1L << (node % 64));
            MemorySegment capture = arena.allocate(CAPTURE_LAYOUT);
            // maxnode is one more than the bits the kernel reads (it decrements it first).
            long rc = (long) SYSCALL.invokeExact(
                    capture, SYS_MBIND, address, length, (long) MPOL_BIND, mask.address(), (long) MASK_BITS + 1, 0L);
            if (rc != 0) {
                throw new IllegalStateException(String.format(
                        "mbind(0x%x, %d bytes, MPOL_BIND, node %d) failed: %s",
                        address, length, node, Libc.errnoText(errno(capture))));
            }
        } catch (IllegalStateException e) {
            throw e;
        } catch (Throwable t) {
            throw new AssertionError("calling syscall(mbind) failed (a wrong binding?): " + t, t);
        }
    }

    /** The memory policy of the mapping that holds {@code address} ({@code get_mempolicy(MPOL_F_ADDR)}). */
    public static Policy policyAt(long address) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment mode = arena.allocate(JAVA_INT);
            MemorySegment mask = arena.allocate(MASK_BITS / 8, 8);
            MemorySegment capture = arena.allocate(CAPTURE_LAYOUT);
            long rc = (long) SYSCALL.invokeExact(
                    capture,
                    SYS_GET_MEMPOLICY,
                    mode.address(),
                    mask.address(),
                    (long) MASK_BITS + 1,
                    address,
                    (long) MPOL_F_ADDR,
                    0L);
            if (rc != 0) {
                throw new IllegalStateException(
                        String.format("get_mempolicy(0x%x) failed: %s", address, Libc.errnoText(errno(capture))));
            }
            int first = -1;
            for (int w = 0; w < MASK_BITS / 64 && first < 0; w++) {
                long bits = mask.get(JAVA_LONG, w * 8L);
                if (bits != 0) {
                    first = w * 64 + Long.numberOfTrailingZeros(bits);
                }
            }
            return new Policy(mode.get(JAVA_INT, 0), first);
        } catch (IllegalStateException e) {
            throw e;
        } catch (Throwable t) {
            throw new AssertionError("calling syscall(get_mempolicy) failed (a wrong binding?): " + t, t);
        }
    }

    private static int errno(MemorySegment capture) {
        int errno = (int) ERRNO_HANDLE.get(capture, 0L);
        return errno == 0 ? -1 : errno;
    }
}
