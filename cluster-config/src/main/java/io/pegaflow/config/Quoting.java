package io.pegaflow.config;

import java.util.Locale;

/** How values from a topology file are shown in error messages. */
final class Quoting {

    /** Longer strings are cut in messages, so a stray paste does not flood the report. */
    private static final int MAX_SHOWN_CHARS = 80;

    private Quoting() {}

    /**
     * {@code text} in double quotes, with quotes, backslashes and control characters escaped and
     * anything past {@value #MAX_SHOWN_CHARS} characters replaced by {@code ...}.
     */
    static String quote(String text) {
        StringBuilder sb = new StringBuilder(Math.min(text.length(), MAX_SHOWN_CHARS) + 5).append('"');
        int shown = Math.min(text.length(), MAX_SHOWN_CHARS);
        for (int i = 0; i < shown; i++) {
            char c = text.charAt(i);
            switch (c) {
                case '"' -> sb.append("\\\"");
                case '\\' -> sb.append("\\\\");
                case '\n' -> sb.append("\\n");
                case '\t' -> sb.append("\\t");
                case '\r' -> sb.append("\\r");
                default -> {
                    if (c < 0x20 || c == 0x7f) {
                        sb.append(String.format(Locale.ROOT, "\\u%04x", (int) c));
                    } else {
                        sb.append(c);
                    }
                }
            }
        }
        if (shown < text.length()) {
            sb.append("...");
        }
        return sb.append('"').toString();
    }
}
