package io.pegaflow.fabric.cli;

import io.pegaflow.config.ByteSize;
import picocli.CommandLine.ITypeConverter;
import picocli.CommandLine.TypeConversionException;

/** A size option in {@link ByteSize}'s syntax ({@code 1073741824}, {@code 16gb}, {@code 1.5tb}), in bytes. */
public final class PoolSize implements ITypeConverter<Long> {
    @Override
    public Long convert(String text) {
        try {
            return ByteSize.parse(text);
        } catch (IllegalArgumentException e) {
            throw new TypeConversionException(e.getMessage());
        }
    }
}
