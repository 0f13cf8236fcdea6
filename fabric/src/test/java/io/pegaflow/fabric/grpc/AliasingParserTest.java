package io.pegaflow.fabric.grpc;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import com.google.protobuf.ByteString;
import com.google.protobuf.InvalidProtocolBufferException;
import io.grpc.KnownLength;
import io.pegaflow.proto.engine.PackedHashes;
import io.pegaflow.proto.fabric.LocateRequest;
import java.io.ByteArrayInputStream;
import java.io.InputStream;
import java.util.Arrays;
import org.junit.jupiter.api.Test;

class AliasingParserTest {
    private static LocateRequest request(byte[] hashes) {
        return LocateRequest.newBuilder()
                .setNamespace("ns")
                .setPackedHashes(PackedHashes.newBuilder().setHashBytes(4).setData(ByteString.copyFrom(hashes)))
                .setPackedReply(true)
                .build();
    }

    @Test
    void shouldParseTheSameMessageAsTheGeneratedParser() throws Exception {
        byte[] wire = request(new byte[] {1, 2, 3, 4, 5, 6, 7, 8}).toByteArray();
        assertEquals(LocateRequest.parseFrom(wire), new AliasingParser<>(LocateRequest.parser()).parseFrom(wire));
    }

    @Test
    void shouldReadBytesFieldsAsViewsOfTheRequestArrayNotCopies() throws Exception {
        byte[] hashes = {1, 2, 3, 4, 5, 6, 7, 8};
        byte[] wire = request(hashes).toByteArray();
        LocateRequest parsed = new AliasingParser<>(LocateRequest.parser()).parseFrom(wire);
        // A view shows a later change of the array it was parsed from; a copy would not.
        int at = indexOf(wire, hashes);
        wire[at] = 42;
        assertEquals(42, parsed.getPackedHashes().getData().byteAt(0));
    }

    @Test
    void shouldRefuseATruncatedMessageAsTheGeneratedParserDoes() {
        byte[] hashes = {1, 2, 3, 4};
        byte[] wire = request(hashes).toByteArray();
        byte[] cut = Arrays.copyOf(wire, indexOf(wire, hashes) + 2); // ends inside the hashes' bytes
        assertThrows(
                InvalidProtocolBufferException.class,
                () -> new AliasingParser<>(LocateRequest.parser()).parseFrom(cut));
    }

    @Test
    void shouldReadAMessageWhoseStreamKnowsItsLengthIntoOneArrayOfThatLength() {
        byte[] wire = new byte[100_000];
        Arrays.fill(wire, (byte) 7);
        assertArrayEquals(wire, RequestBytes.INSTANCE.parse(new KnownLengthStream(wire, wire.length)));
        // A stream that under-reports what is left still yields every byte.
        assertArrayEquals(wire, RequestBytes.INSTANCE.parse(new KnownLengthStream(wire, 10)));
        assertArrayEquals(wire, RequestBytes.INSTANCE.parse(new ByteArrayInputStream(wire)));
    }

    /** grpc-java's message streams implement KnownLength; {@code available} as given. */
    private static final class KnownLengthStream extends InputStream implements KnownLength {
        private final ByteArrayInputStream in;
        private int reported;

        KnownLengthStream(byte[] data, int reported) {
            this.in = new ByteArrayInputStream(data);
            this.reported = reported;
        }

        @Override
        public int available() {
            int r = Math.min(reported, in.available());
            reported = 0;
            return r;
        }

        @Override
        public int read() {
            return in.read();
        }

        @Override
        public int read(byte[] b, int off, int len) {
            return in.read(b, off, len);
        }
    }

    private static int indexOf(byte[] haystack, byte[] needle) {
        for (int i = 0; i + needle.length <= haystack.length; i++) {
            if (Arrays.equals(haystack, i, i + needle.length, needle, 0, needle.length)) {
                return i;
            }
        }
        throw new AssertionError("not found");
    }
}
