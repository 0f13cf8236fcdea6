package io.pegaflow.fabric.channel;

import io.pegaflow.fabric.engine.FutexSyscall;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;

/**
 * {@code futex(FUTEX_WAIT)} on a 32-bit word of a shared mapping through FFM: the channel's thread sleeps in the
 * kernel until a client's {@code FUTEX_WAKE} (or the timeout). Where the call is unavailable (another OS or
 * architecture) {@link #await} sleeps a short while instead, so the caller polls. One instance per waiting thread: it
 * owns the timespec it passes, so a wait allocates nothing. Not thread-safe.
 */
final class FutexWait implements AutoCloseable {
    private static final int FUTEX_WAIT = 0; // shared (not FUTEX_PRIVATE_FLAG): the waker is another process
    private static final MethodHandle SYSCALL = FutexSyscall.handle(ValueLayout.ADDRESS); // + the timeout
    private static final long SYS_FUTEX = FutexSyscall.NUMBER;

    private final Arena arena = Arena.ofConfined();
    private final MemorySegment timespec = arena.allocate(16, 8);

    static boolean available() {
        return SYSCALL != null;
    }

    /**
     * Sleeps while the word at the start of {@code word} holds {@code expected}, at most {@code timeoutNs}. Returns on a
     * wake-up, a changed value, the timeout or a signal alike: the caller re-reads the word.
     */
    void await(MemorySegment word, int expected, long timeoutNs) {
        if (SYSCALL == null) {
            sleepBriefly(Math.min(timeoutNs, 1_000_000));
            return;
        }
        timespec.set(ValueLayout.JAVA_LONG, 0, timeoutNs / 1_000_000_000L);
        timespec.set(ValueLayout.JAVA_LONG, 8, timeoutNs % 1_000_000_000L);
        try {
            long unused = (long) SYSCALL.invokeExact(SYS_FUTEX, word, FUTEX_WAIT, expected, timespec);
        } catch (Throwable e) {
            sleepBriefly(Math.min(timeoutNs, 1_000_000));
        }
    }

    private static void sleepBriefly(long ns) {
        try {
            Thread.sleep(ns / 1_000_000, (int) (ns % 1_000_000));
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    @Override
    public void close() {
        arena.close();
    }
}
