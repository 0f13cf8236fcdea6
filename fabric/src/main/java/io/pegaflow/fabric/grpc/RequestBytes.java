package io.pegaflow.fabric.grpc;

import io.grpc.MethodDescriptor;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;

/**
 * The request side of every node method: the message's bytes as they came, parsed later by {@link NodeCalls} (so a
 * bad or oversized message is answered by {@link GrpcErrors}, not by grpc-java's generic "application error").
 * The transport hands over the whole message, already buffered; reading it cannot block. Stateless.
 */
final class RequestBytes implements MethodDescriptor.Marshaller<byte[]> {
    static final RequestBytes INSTANCE = new RequestBytes();

    private RequestBytes() {}

    @Override
    public InputStream stream(byte[] value) {
        return new ByteArrayInputStream(value);
    }

    @Override
    public byte[] parse(InputStream stream) {
        try (stream) {
            return stream.readAllBytes();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }
}
