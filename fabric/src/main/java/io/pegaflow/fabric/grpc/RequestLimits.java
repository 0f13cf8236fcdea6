package io.pegaflow.fabric.grpc;

import java.util.concurrent.CompletionStage;
import org.apache.pekko.http.javadsl.model.HttpEntities;
import org.apache.pekko.http.javadsl.model.HttpRequest;
import org.apache.pekko.http.javadsl.model.HttpResponse;
import org.apache.pekko.japi.function.Function;
import org.apache.pekko.stream.javadsl.Flow;
import org.apache.pekko.util.ByteString;

/**
 * The size limit on a request's bytes, applied in front of the generated gRPC handlers: a body longer than {@link
 * #MAX_REQUEST_BYTES} fails while it streams in (nothing larger is ever buffered) and the call answers
 * RESOURCE_EXHAUSTED ({@link GrpcErrors}). Stateless.
 */
public final class RequestLimits {
    /** The largest request body (gRPC framing included): 4 MiB, gRPC's usual message limit. */
    public static final int MAX_REQUEST_BYTES = 4 << 20;

    private RequestLimits() {}

    /** A request body over the limit. */
    static final class TooLarge extends RuntimeException {
        TooLarge(long limit) {
            super("larger than the node's limit of " + limit + " bytes", null, false, false);
        }
    }

    /** {@code handler} with every request's body limited to {@code maxBytes}. */
    public static Function<HttpRequest, CompletionStage<HttpResponse>> limited(
            Function<HttpRequest, CompletionStage<HttpResponse>> handler, long maxBytes) {
        Flow<ByteString, ByteString, ?> limit = Flow.<ByteString>create()
                .statefulMap(
                        () -> new long[1],
                        (seen, chunk) -> {
                            seen[0] += chunk.size();
                            if (seen[0] > maxBytes) {
                                throw new TooLarge(maxBytes);
                            }
                            return org.apache.pekko.japi.Pair.create(seen, chunk);
                        },
                        seen -> java.util.Optional.empty());
        return request -> handler.apply(request.withEntity(HttpEntities.create(
                request.entity().getContentType(),
                request.entity().getDataBytes().via(limit))));
    }
}
