package io.pegaflow.fabric.engine;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.VarHandle;
import java.nio.ByteOrder;

/**
 * Writes a worker's 32-byte load flag: {@code [0,8)} state (0 pending, 1 done, 2 failed), {@code [8,16)} blocks
 * loaded, {@code [16,24)} blocks failed, {@code [24,32)} node-side duration in ns, all little-endian int64. Counters
 * go first and the state last with release semantics, so a reader that sees the state sees the counters; then the
 * state word's futex waiters are woken ({@link FutexWake}).
 */
final class LoadFlagWriter {
    static final long FLAG_BYTES = 32;
    static final long PENDING = 0;
    static final long DONE = 1;
    static final long FAILED = 2;

    private static final ValueLayout.OfLong LE_LONG = ValueLayout.JAVA_LONG.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final VarHandle STATE = LE_LONG.varHandle();

    private LoadFlagWriter() {}

    static void pending(MemorySegment flag) {
        flag.set(LE_LONG, 8, 0L);
        flag.set(LE_LONG, 16, 0L);
        flag.set(LE_LONG, 24, 0L);
        STATE.setRelease(flag, 0L, PENDING);
    }

    static void finish(MemorySegment flag, long loaded, long failed, long durationNs) {
        flag.set(LE_LONG, 8, loaded);
        flag.set(LE_LONG, 16, failed);
        flag.set(LE_LONG, 24, durationNs);
        STATE.setRelease(flag, 0L, failed == 0 ? DONE : FAILED);
        FutexWake.wakeAll(flag); // a worker blocked in futex(FUTEX_WAIT) on the state wakes now, not at its next poll
    }
}
