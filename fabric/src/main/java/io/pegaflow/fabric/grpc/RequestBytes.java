package io.pegaflow.fabric.grpc;

import io.grpc.KnownLength;
import io.grpc.MethodDescriptor;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
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
            if (!(stream instanceof KnownLength)) {
                return stream.readAllBytes();
            }
            // grpc-java's message stream knows its length: one array of that size (readAllBytes reads in 8 KiB
            // chunks and copies them into the result, about twice the message in garbage per call).
            byte[] bytes = new byte[stream.available()];
            int read = stream.readNBytes(bytes, 0, bytes.length);
            int next = read == bytes.length ? stream.read() : -2; // not readAllBytes: it allocates 16 KiB to see EOF
            if (next == -1) {
                return bytes;
            }
            ByteArrayOutputStream all = new ByteArrayOutputStream(read + 8192);
            all.write(bytes, 0, read);
            if (next >= 0) {
                all.write(next);
            }
            stream.transferTo(all);
            return all.toByteArray();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }
}
