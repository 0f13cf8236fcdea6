package io.pegaflow.fabric.grpc;

import com.google.protobuf.InvalidProtocolBufferException;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import java.util.concurrent.CompletionException;
import java.util.concurrent.ExecutionException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * What a failed call of the node's gRPC services answers ({@link NodeCalls} asks), including failures before a
 * handler runs. Bytes that do not decode as the method's message (or carry invalid UTF-8
 * in a string) are INVALID_ARGUMENT with a short reason, a request over the size limit RESOURCE_EXHAUSTED; neither
 * logs a stack trace. Every description is cut to {@link #DESCRIPTION_CHARS} characters (gRPC carries it in a
 * header with a size limit). Repeated failures are logged at most once per {@link #LOG_INTERVAL_MS} per kind.
 * Thread-safe.
 */
public final class GrpcErrors {
    static final int DESCRIPTION_CHARS = 1024;
    static final int REASON_CHARS = 160;
    static final long LOG_INTERVAL_MS = 10_000;

    private static final Logger log = LoggerFactory.getLogger(GrpcErrors.class);
    private static final RateLimitedLog undecodable = new RateLimitedLog(log, LOG_INTERVAL_MS, System::nanoTime);
    private static final RateLimitedLog tooLarge = new RateLimitedLog(log, LOG_INTERVAL_MS, System::nanoTime);
    private static final RateLimitedLog unexpected = new RateLimitedLog(log, LOG_INTERVAL_MS, System::nanoTime);

    private GrpcErrors() {}

    /** The status a failed call answers with. */
    static Status statusOf(Throwable error) {
        Throwable t = unwrap(error);
        if (t instanceof StatusRuntimeException s) { // GrpcServiceException is one
            return cut(s.getStatus());
        }
        InvalidProtocolBufferException bad = find(t, InvalidProtocolBufferException.class);
        if (bad != null) {
            String reason = shorten(bad.getMessage());
            undecodable.warn("refused a request that is not a valid protobuf message: " + reason, null);
            return Status.INVALID_ARGUMENT.withDescription(
                    "request: not a valid message of this method (" + reason + ")");
        }
        RequestLimits.TooLarge large = find(t, RequestLimits.TooLarge.class);
        if (large != null) {
            tooLarge.warn("refused a request: " + large.getMessage(), null);
            return Status.RESOURCE_EXHAUSTED.withDescription("request: " + large.getMessage());
        }
        unexpected.warn("unexpected failure of a gRPC call: " + t, t);
        return Status.INTERNAL.withDescription(shorten(String.valueOf(t)));
    }

    private static Throwable unwrap(Throwable error) {
        Throwable t = error;
        while ((t instanceof CompletionException || t instanceof ExecutionException) && t.getCause() != null) {
            t = t.getCause();
        }
        return t;
    }

    private static <T extends Throwable> T find(Throwable error, Class<T> type) {
        for (Throwable t = error; t != null; t = t.getCause() == t ? null : t.getCause()) {
            if (type.isInstance(t)) {
                return type.cast(t);
            }
        }
        return null;
    }

    private static Status cut(Status status) {
        String d = status.getDescription();
        return d == null || d.length() <= DESCRIPTION_CHARS
                ? status
                : status.withDescription(d.substring(0, DESCRIPTION_CHARS) + "… (cut)");
    }

    private static String shorten(String reason) {
        if (reason == null) {
            return "no reason given";
        }
        String oneLine = reason.replace('\n', ' ');
        return oneLine.length() <= REASON_CHARS ? oneLine : oneLine.substring(0, REASON_CHARS) + "…";
    }
}
