package io.pegaflow.fabric.engine;

import java.lang.foreign.MemorySegment;
import java.lang.invoke.MethodHandle;

/**
 * Wakes the processes waiting on a load flag's state word (Linux {@code futex(FUTEX_WAKE)} on the shared mapping, so a
 * worker in another process that mapped the same file wakes at once instead of polling). One syscall per finished
 * load, no allocation; a no-op where the call is not available (another OS or architecture: waiters then fall back to
 * polling). Stateless and thread-safe.
 */
public final class FutexWake {
    private static final int FUTEX_WAKE = 1; // shared (not FUTEX_PRIVATE_FLAG): the waiter is another process
    private static final MethodHandle SYSCALL = FutexSyscall.handle();
    private static final long SYS_FUTEX = FutexSyscall.NUMBER;

    private FutexWake() {}

    public static boolean available() {
        return SYSCALL != null;
    }

    /**
     * Wakes every waiter on the 32-bit word at the start of {@code word} (the low half of the little-endian state).
     *
     * @return how many waiters were woken, or -1 when unavailable or the call failed (the waiters' timeouts cover it)
     */
    public static long wakeAll(MemorySegment word) {
        if (SYSCALL == null) {
            return -1;
        }
        try {
            return (long) SYSCALL.invokeExact(SYS_FUTEX, word, FUTEX_WAKE, Integer.MAX_VALUE);
        } catch (Throwable e) {
            return -1;
        }
    }
}
