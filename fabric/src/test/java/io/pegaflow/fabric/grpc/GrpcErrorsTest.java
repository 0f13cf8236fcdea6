package io.pegaflow.fabric.grpc;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.protobuf.InvalidProtocolBufferException;
import io.grpc.Status;
import io.pegaflow.proto.engine.QueryRequest;
import java.util.List;
import java.util.concurrent.CompletionException;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.pekko.grpc.GrpcServiceException;
import org.junit.jupiter.api.Test;
import org.slf4j.helpers.MarkerIgnoringBase;

/** What a failed call answers ({@link GrpcErrors}) and how repeated failures are logged ({@link RateLimitedLog}). */
class GrpcErrorsTest {
    @Test
    void shouldAnswerUndecodableBytesAndInvalidUtf8InvalidArgumentWithAShortReason() {
        for (byte[] bad : List.of(new byte[] {(byte) 0xff, (byte) 0xff}, new byte[] {0x0a, 0x02, (byte) 0xc3, 0x28})) {
            InvalidProtocolBufferException parse = null;
            try {
                QueryRequest.parseFrom(bad);
            } catch (InvalidProtocolBufferException e) {
                parse = e;
            }
            Status s = GrpcErrors.statusOf(new CompletionException(parse));
            assertEquals(Status.Code.INVALID_ARGUMENT, s.getCode());
            assertTrue(
                    s.getDescription().startsWith("request: not a valid message of this method ("), s.getDescription());
            assertTrue(s.getDescription().length() < 250, s.getDescription());
        }
    }

    @Test
    void shouldAnswerATooLargeRequestResourceExhausted() {
        Status s = GrpcErrors.statusOf(new RuntimeException("stream failed", new RequestLimits.TooLarge(4194304)));
        assertEquals(Status.Code.RESOURCE_EXHAUSTED, s.getCode());
        assertEquals("request: larger than the node's limit of 4194304 bytes", s.getDescription());
    }

    @Test
    void shouldKeepAServiceStatusButCutALongDescription() {
        Status s = GrpcErrors.statusOf(new GrpcServiceException(Status.NOT_FOUND.withDescription("x".repeat(5000))));
        assertEquals(Status.Code.NOT_FOUND, s.getCode());
        assertTrue(
                s.getDescription().length() <= GrpcErrors.DESCRIPTION_CHARS + 10,
                "" + s.getDescription().length());
        assertEquals(
                Status.Code.INTERNAL,
                GrpcErrors.statusOf(new IllegalStateException("bug")).getCode());
    }

    @Test
    void shouldLogOneLinePerIntervalAndCountTheRest() {
        List<String> lines = new CopyOnWriteArrayList<>();
        AtomicLong clock = new AtomicLong(1_000_000_000L);
        RateLimitedLog log = new RateLimitedLog(new RecordingLogger(lines), 10_000, clock::get);
        assertTrue(log.warn("bad request", null));
        for (int i = 0; i < 1000; i++) {
            assertFalse(log.warn("bad request", null));
        }
        clock.addAndGet(10_000_000_001L);
        assertTrue(log.warn("bad request", null));
        assertEquals(List.of("bad request", "bad request (and 1000 more like it since the last such line)"), lines);
    }

    /** Records WARN lines; nothing else is called by RateLimitedLog. */
    static final class RecordingLogger extends MarkerIgnoringBase {
        final List<String> lines;

        RecordingLogger(List<String> lines) {
            this.lines = lines;
        }

        @Override
        public void warn(String msg) {
            lines.add(msg);
        }

        @Override
        public void warn(String msg, Throwable t) {
            lines.add(msg);
        }

        // @formatter:off
        @Override
        public boolean isTraceEnabled() {
            return false;
        }

        @Override
        public void trace(String msg) {}

        @Override
        public void trace(String format, Object arg) {}

        @Override
        public void trace(String format, Object arg1, Object arg2) {}

        @Override
        public void trace(String format, Object... arguments) {}

        @Override
        public void trace(String msg, Throwable t) {}

        @Override
        public boolean isDebugEnabled() {
            return false;
        }

        @Override
        public void debug(String msg) {}

        @Override
        public void debug(String format, Object arg) {}

        @Override
        public void debug(String format, Object arg1, Object arg2) {}

        @Override
        public void debug(String format, Object... arguments) {}

        @Override
        public void debug(String msg, Throwable t) {}

        @Override
        public boolean isInfoEnabled() {
            return false;
        }

        @Override
        public void info(String msg) {}

        @Override
        public void info(String format, Object arg) {}

        @Override
        public void info(String format, Object arg1, Object arg2) {}

        @Override
        public void info(String format, Object... arguments) {}

        @Override
        public void info(String msg, Throwable t) {}

        @Override
        public boolean isWarnEnabled() {
            return true;
        }

        @Override
        public void warn(String format, Object arg) {
            lines.add(format);
        }

        @Override
        public void warn(String format, Object... arguments) {
            lines.add(format);
        }

        @Override
        public void warn(String format, Object arg1, Object arg2) {
            lines.add(format);
        }

        @Override
        public boolean isErrorEnabled() {
            return false;
        }

        @Override
        public void error(String msg) {}

        @Override
        public void error(String format, Object arg) {}

        @Override
        public void error(String format, Object arg1, Object arg2) {}

        @Override
        public void error(String format, Object... arguments) {}

        @Override
        public void error(String msg, Throwable t) {}
        // @formatter:on
    }
}
