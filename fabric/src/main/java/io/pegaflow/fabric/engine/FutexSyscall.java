package io.pegaflow.fabric.engine;

import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.util.Locale;

/**
 * Linux {@code futex(2)} through glibc's variadic {@code syscall()}: the syscall number of this architecture and the
 * downcall handle, shared by {@link FutexWake} and the command channel's waiter. Stateless and thread-safe.
 */
public final class FutexSyscall {
    /** {@code SYS_futex} on this architecture, or -1 where it is not known (the callers then poll). */
    public static final long NUMBER = switch (System.getProperty("os.arch", "").toLowerCase(Locale.ROOT)) {
        case "amd64", "x86_64" -> 202;
        case "aarch64", "arm64" -> 98;
        default -> -1;
    };

    private FutexSyscall() {}

    /**
     * {@code long syscall(long number, void *uaddr, int op, int val, <more>)} with {@code more} as the trailing
     * argument layouts, or null where the call is not available (not Linux, an unknown architecture, no symbol).
     */
    public static MethodHandle handle(MemoryLayout... more) {
        if (NUMBER < 0
                || !System.getProperty("os.name", "").toLowerCase(Locale.ROOT).contains("linux")) {
            return null;
        }
        MemoryLayout[] args = new MemoryLayout[4 + more.length];
        args[0] = ValueLayout.JAVA_LONG;
        args[1] = ValueLayout.ADDRESS;
        args[2] = ValueLayout.JAVA_INT;
        args[3] = ValueLayout.JAVA_INT;
        System.arraycopy(more, 0, args, 4, more.length);
        try {
            Linker linker = Linker.nativeLinker();
            return linker.downcallHandle(
                    linker.defaultLookup().find("syscall").orElseThrow(),
                    FunctionDescriptor.of(ValueLayout.JAVA_LONG, args),
                    Linker.Option.firstVariadicArg(1));
        } catch (RuntimeException | LinkageError e) {
            return null;
        }
    }
}
