package io.pegaflow.config;

import java.math.BigDecimal;
import java.math.RoundingMode;
import java.util.Locale;
import java.util.Map;
import java.util.Objects;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * PegaFlow's size syntax: plain bytes ({@code 1073741824}) or a number with a binary unit
 * ({@code 512mb}, {@code 1.5tb}, {@code 0.5 GB}).
 *
 * <p>Units ignore case and are powers of 1024: {@code b}; {@code kb}, {@code mb}, {@code gb},
 * {@code tb}; and their synonyms {@code kib}, {@code mib}, {@code gib}, {@code tib}. One or more
 * spaces may separate number and unit. The number is decimal, with an optional fraction; the result
 * must be a positive whole number of bytes no larger than {@link Long#MAX_VALUE}.
 */
public final class ByteSize {

    private static final long KIB = 1L << 10;
    private static final long MIB = 1L << 20;
    private static final long GIB = 1L << 30;
    private static final long TIB = 1L << 40;

    private static final Map<String, Long> UNITS = Map.ofEntries(
            Map.entry("", 1L), Map.entry("b", 1L),
            Map.entry("kb", KIB), Map.entry("kib", KIB),
            Map.entry("mb", MIB), Map.entry("mib", MIB),
            Map.entry("gb", GIB), Map.entry("gib", GIB),
            Map.entry("tb", TIB), Map.entry("tib", TIB));

    private static final long[] FORMAT_UNITS = {1, KIB, MIB, GIB, TIB};
    private static final String[] FORMAT_NAMES = {"B", "KiB", "MiB", "GiB", "TiB"};

    /** Sign, then digits with an optional fraction (or a bare fraction), then an optional unit. */
    private static final Pattern SIZE = Pattern.compile("(-?)([0-9]+(?:\\.[0-9]+)?|\\.[0-9]+)[ \\t]*([A-Za-z]*)");

    private static final String SYNTAX_HINT = "use bytes or a number with b, kb, mb, gb, tb";
    private static final BigDecimal LONG_MAX = BigDecimal.valueOf(Long.MAX_VALUE);

    private ByteSize() {}

    /**
     * Parses a size.
     *
     * @return the size in bytes, always positive
     * @throws IllegalArgumentException saying what is wrong, e.g.
     *     {@code "10zb" is not a size (use bytes or a number with b, kb, mb, gb, tb)}
     */
    public static long parse(String text) {
        Objects.requireNonNull(text, "text");
        return parse(text, Quoting.quote(text));
    }

    /**
     * Parses a size, naming it {@code shown} in the exception message (the loader shows YAML integers
     * without quotes).
     */
    static long parse(String text, String shown) {
        String trimmed = text.strip();
        if (trimmed.isEmpty()) {
            throw invalid(shown, "empty; " + SYNTAX_HINT);
        }
        Matcher m = SIZE.matcher(trimmed);
        if (!m.matches()) {
            throw invalid(shown, SYNTAX_HINT);
        }
        Long unit = UNITS.get(m.group(3).toLowerCase(Locale.ROOT));
        if (unit == null) {
            throw invalid(shown, SYNTAX_HINT);
        }
        BigDecimal bytes = new BigDecimal(m.group(2)).multiply(BigDecimal.valueOf(unit));
        if (!m.group(1).isEmpty() || bytes.signum() == 0) {
            throw invalid(shown, "must be positive");
        }
        if (bytes.stripTrailingZeros().scale() > 0) {
            throw invalid(
                    shown,
                    "not a whole number of bytes: " + bytes.stripTrailingZeros().toPlainString());
        }
        if (bytes.compareTo(LONG_MAX) > 0) {
            throw invalid(shown, "larger than " + Long.MAX_VALUE + " bytes");
        }
        return bytes.longValueExact();
    }

    /**
     * A short human form with a binary unit and at most two decimals: {@code 512 B}, {@code 1.5 GiB},
     * {@code 256 MiB}. Whole values parse back to the same size; rounded ones only approximately.
     *
     * @throws IllegalArgumentException if {@code bytes} is negative
     */
    public static String format(long bytes) {
        if (bytes < 0) {
            throw new IllegalArgumentException("negative size: " + bytes);
        }
        int u = FORMAT_UNITS.length - 1;
        while (u > 0 && bytes < FORMAT_UNITS[u]) {
            u--;
        }
        BigDecimal value =
                BigDecimal.valueOf(bytes).divide(BigDecimal.valueOf(FORMAT_UNITS[u]), 2, RoundingMode.HALF_UP);
        if (u < FORMAT_UNITS.length - 1 && value.compareTo(BigDecimal.valueOf(KIB)) >= 0) {
            // 1048575 bytes rounds to "1024 KiB"; say "1 MiB" instead.
            u++;
            value = BigDecimal.valueOf(bytes).divide(BigDecimal.valueOf(FORMAT_UNITS[u]), 2, RoundingMode.HALF_UP);
        }
        return value.stripTrailingZeros().toPlainString() + " " + FORMAT_NAMES[u];
    }

    private static IllegalArgumentException invalid(String shown, String reason) {
        return new IllegalArgumentException(shown + " is not a size (" + reason + ")");
    }
}
