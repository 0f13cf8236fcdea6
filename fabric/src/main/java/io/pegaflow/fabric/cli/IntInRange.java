package io.pegaflow.fabric.cli;

import picocli.CommandLine.ITypeConverter;
import picocli.CommandLine.TypeConversionException;

/**
 * An integer option checked against its allowed range while picocli parses, so a bad value is reported as
 * {@code Invalid value for option '--device': -1 is out of range 0..1023}. One subclass per range.
 */
public abstract class IntInRange implements ITypeConverter<Integer> {
    private final int min;
    private final int max;

    protected IntInRange(int min, int max) {
        this.min = min;
        this.max = max;
    }

    @Override
    public Integer convert(String text) {
        int value;
        try {
            value = Integer.parseInt(text.strip());
        } catch (NumberFormatException e) {
            throw new TypeConversionException("\"" + text + "\" is not an integer");
        }
        if (value < min || value > max) {
            throw new TypeConversionException(value + " is out of range " + min + ".." + max);
        }
        return value;
    }

    /** 1..65535. */
    public static final class Port extends IntInRange {
        public Port() {
            super(1, 65535);
        }
    }

    /** A CUDA device index, 0..1023. */
    public static final class DeviceIndex extends IntInRange {
        public DeviceIndex() {
            super(0, 1023);
        }
    }

    /** 100 ms .. 1 h. */
    public static final class PartialTimeoutMs extends IntInRange {
        public PartialTimeoutMs() {
            super(100, 3_600_000);
        }
    }

    /** 1 ms .. 1 h. */
    public static final class CallTimeoutMs extends IntInRange {
        public CallTimeoutMs() {
            super(1, 3_600_000);
        }
    }

    /** 5 s .. 1 h. */
    public static final class FormTimeoutS extends IntInRange {
        public FormTimeoutS() {
            super(5, 3600);
        }
    }
}
