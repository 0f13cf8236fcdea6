package io.pegaflow.fabric.grpc;

import com.google.protobuf.AbstractParser;
import com.google.protobuf.CodedInputStream;
import com.google.protobuf.ExtensionRegistryLite;
import com.google.protobuf.InvalidProtocolBufferException;
import com.google.protobuf.MessageLite;
import com.google.protobuf.Parser;
import com.google.protobuf.UnsafeByteOperations;

/**
 * A message's parser whose {@code bytes} fields, when it parses an array, are views of that array instead of copies
 * ({@link CodedInputStream#enableAliasing} over the array wrapped as a {@code ByteString}). For requests whose byte fields are read during the call and not kept: a kept
 * field would keep the whole request array alive. {@code Locate} uses it for its packed hashes (32 KB per call of
 * 1,000 hashes no longer copied by the parse). Stateless; the array handed to it must not change afterwards (each
 * request has its own, {@link RequestBytes}).
 */
final class AliasingParser<T extends MessageLite> extends AbstractParser<T> {
    private final Parser<T> delegate;

    AliasingParser(Parser<T> delegate) {
        this.delegate = delegate;
    }

    @Override
    public T parsePartialFrom(byte[] data, int offset, int length, ExtensionRegistryLite extensionRegistry)
            throws InvalidProtocolBufferException {
        // Aliasing applies only to an input protobuf knows to be immutable: one made from a wrapped ByteString.
        CodedInputStream input =
                UnsafeByteOperations.unsafeWrap(data, offset, length).newCodedInput();
        input.enableAliasing(true);
        T message = delegate.parsePartialFrom(input, extensionRegistry);
        input.checkLastTagWas(0);
        return message;
    }

    @Override
    public T parsePartialFrom(CodedInputStream input, ExtensionRegistryLite extensionRegistry)
            throws InvalidProtocolBufferException {
        return delegate.parsePartialFrom(input, extensionRegistry);
    }
}
