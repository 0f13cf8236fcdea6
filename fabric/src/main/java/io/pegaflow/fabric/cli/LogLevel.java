package io.pegaflow.fabric.cli;

import java.util.Iterator;
import java.util.List;
import java.util.Locale;
import picocli.CommandLine.ITypeConverter;
import picocli.CommandLine.TypeConversionException;

/** {@code --log-level}: one of {@link #NAMES}, any case, as the lower-case name logback takes. */
public final class LogLevel implements ITypeConverter<String> {
    public static final List<String> NAMES = List.of("trace", "debug", "info", "warn", "error");

    @Override
    public String convert(String text) {
        String level = text.strip().toLowerCase(Locale.ROOT);
        if (!NAMES.contains(level)) {
            throw new TypeConversionException("\"" + text + "\" is not one of " + String.join(", ", NAMES));
        }
        return level;
    }

    /** For picocli's {@code ${COMPLETION-CANDIDATES}} in the help. */
    public static final class Names implements Iterable<String> {
        @Override
        public Iterator<String> iterator() {
            return NAMES.iterator();
        }
    }
}
