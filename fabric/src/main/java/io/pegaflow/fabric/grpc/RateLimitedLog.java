package io.pegaflow.fabric.grpc;

import java.util.concurrent.atomic.AtomicLong;
import java.util.function.LongSupplier;
import org.slf4j.Logger;

/**
 * One log line per interval for a kind of repeated event (a flood of bad requests must not flood the log): the
 * first event of an interval is logged with how many were left out since the last line; the others are counted.
 * Thread-safe and lock-free.
 */
final class RateLimitedLog {
    private final Logger log;
    private final long intervalNs;
    private final LongSupplier clockNs;
    private final AtomicLong nextLineNs;
    private final AtomicLong suppressed = new AtomicLong();

    RateLimitedLog(Logger log, long intervalMs, LongSupplier clockNs) {
        this.log = log;
        this.intervalNs = intervalMs * 1_000_000;
        this.clockNs = clockNs;
        this.nextLineNs = new AtomicLong(clockNs.getAsLong());
    }

    /**
     * Logs {@code message} at WARN (with {@code error}'s stack trace when it is given) if no line went out this
     * interval, else counts it.
     *
     * @return true if it was logged
     */
    boolean warn(String message, Throwable error) {
        long now = clockNs.getAsLong();
        long next = nextLineNs.get();
        if (now - next < 0 || !nextLineNs.compareAndSet(next, now + intervalNs)) {
            suppressed.incrementAndGet();
            return false;
        }
        long left = suppressed.getAndSet(0);
        String line = left == 0 ? message : message + " (and " + left + " more like it since the last such line)";
        if (error == null) {
            log.warn(line);
        } else {
            log.warn(line, error);
        }
        return true;
    }
}
