package io.pegaflow.fabric.grpc;

/**
 * The size limit on a request message. The transport refuses a message longer than {@link #TRANSPORT_MAX_BYTES}
 * from its length prefix (gRPC's own RESOURCE_EXHAUSTED text, nothing buffered); one between {@link
 * #MAX_REQUEST_BYTES} and that is read, then refused by {@link NodeCalls} with our RESOURCE_EXHAUSTED ({@link
 * GrpcErrors}) before it is parsed. Stateless.
 */
public final class RequestLimits {
    /** The largest request (gRPC framing included): 4 MiB, gRPC's usual message limit. */
    public static final int MAX_REQUEST_BYTES = 4 << 20;
    /** How far past the limit a message is still read (and dropped) so that the client gets our reason. */
    static final int DRAIN_FACTOR = 32;
    /** The transport's own limit: past it a message is refused from its length prefix alone. */
    public static final int TRANSPORT_MAX_BYTES = MAX_REQUEST_BYTES * DRAIN_FACTOR;
    /** gRPC's length-prefixed framing: a flag byte and a 4-byte length before each message. */
    static final int FRAME_HEADER_BYTES = 5;

    private RequestLimits() {}

    /** Whether a message of {@code messageBytes} (framing not included) is over the node's limit. */
    static boolean tooLarge(int messageBytes) {
        return messageBytes + FRAME_HEADER_BYTES > MAX_REQUEST_BYTES;
    }

    /** A request over the limit. */
    static final class TooLarge extends RuntimeException {
        TooLarge(long limit) {
            super("larger than the node's limit of " + limit + " bytes", null, false, false);
        }
    }
}
