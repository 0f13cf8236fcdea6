package io.pegaflow.fabric.grpc;

import java.util.Optional;
import java.util.concurrent.CompletionStage;
import org.apache.pekko.http.javadsl.model.HttpEntities;
import org.apache.pekko.http.javadsl.model.HttpRequest;
import org.apache.pekko.http.javadsl.model.HttpResponse;
import org.apache.pekko.japi.Pair;
import org.apache.pekko.japi.function.Function;
import org.apache.pekko.stream.javadsl.Flow;
import org.apache.pekko.util.ByteString;

/**
 * The size limit on a request's bytes, applied in front of the generated gRPC handlers: a body longer than {@link
 * #MAX_REQUEST_BYTES} is refused while it streams in (nothing larger is ever buffered) and the call answers
 * RESOURCE_EXHAUSTED ({@link GrpcErrors}). Stateless.
 */
public final class RequestLimits {
    /** The largest request body (gRPC framing included): 4 MiB, gRPC's usual message limit. */
    public static final int MAX_REQUEST_BYTES = 4 << 20;
    /** How far past the limit a body is still read (and dropped) before the stream is cut off. */
    static final long DRAIN_FACTOR = 32;

    private RequestLimits() {}

    /** A request body over the limit. */
    static final class TooLarge extends RuntimeException {
        TooLarge(long limit) {
            super("larger than the node's limit of " + limit + " bytes", null, false, false);
        }
    }

    /**
     * {@code handler} with every request's body limited to {@code maxBytes}. Past the limit the rest of the body is
     * read and dropped (nothing more is kept), up to {@link #DRAIN_FACTOR} times the limit, so that the client gets
     * the RESOURCE_EXHAUSTED reply rather than a reset stream; a body longer still is cut off at once.
     */
    public static Function<HttpRequest, CompletionStage<HttpResponse>> limited(
            Function<HttpRequest, CompletionStage<HttpResponse>> handler, long maxBytes) {
        Flow<ByteString, ByteString, ?> limit = Flow.<ByteString>create()
                .statefulMap(
                        () -> new long[1],
                        (seen, chunk) -> {
                            seen[0] += chunk.size();
                            if (seen[0] > maxBytes * DRAIN_FACTOR) {
                                throw new TooLarge(maxBytes);
                            }
                            return Pair.create(seen, seen[0] > maxBytes ? ByteString.emptyByteString() : chunk);
                        },
                        seen -> {
                            if (seen[0] > maxBytes) {
                                throw new TooLarge(maxBytes);
                            }
                            return Optional.empty();
                        })
                .filter(chunk -> !chunk.isEmpty());
        return request -> handler.apply(request.withEntity(HttpEntities.create(
                request.entity().getContentType(),
                request.entity().getDataBytes().via(limit))));
    }
}
