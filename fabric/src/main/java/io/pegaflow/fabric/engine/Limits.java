package io.pegaflow.fabric.engine;

/**
 * The sizes a request may have (docs/engine-api.md lists them with the status codes), and how a caller's string is
 * echoed in an error: cut to {@link #ECHO_CHARS} characters, so that an error never carries more than a few hundred
 * bytes of the caller's input (a long echo once pushed a reply's metadata over gRPC's limit). Stateless.
 */
public final class Limits {
    /** UTF-8 bytes of a RegisterContext's {@code instance_id}. */
    public static final int INSTANCE_ID_BYTES = 256;
    /** UTF-8 bytes of a namespace (RegisterContext, Query). */
    public static final int NAMESPACE_BYTES = 256;
    /** UTF-8 bytes of a RegisterContext's {@code device}. */
    public static final int DEVICE_BYTES = 128;
    /** UTF-8 bytes of a layer's {@code name}. */
    public static final int LAYER_NAME_BYTES = 256;
    /** UTF-8 bytes of a shared-memory path (KV cache region, load flag): Linux's PATH_MAX. */
    public static final int PATH_BYTES = 4096;
    /** UTF-8 bytes of a context id; the node never issues a longer one, so a longer one is NOT_FOUND. */
    public static final int CONTEXT_ID_BYTES = 512;
    /** Blocks of one Save or Load, hashes of one Query. */
    public static final int BLOCKS_PER_REQUEST = 16_384;
    /** Layers of one registration (and the bound on {@code total_layers}, so also on {@code layer_indices}). */
    public static final int LAYERS = 4096;
    /** Characters of a caller's string that an error message repeats. */
    public static final int ECHO_CHARS = 64;

    private Limits() {}

    /**
     * A caller's string as an error repeats it: quoted, cut to {@link #ECHO_CHARS} characters with its full length
     * said, e.g. {@code "aaaa…" (16000 chars)}.
     */
    public static String echo(String s) {
        if (s.length() <= ECHO_CHARS) {
            return "\"" + s + "\"";
        }
        return "\"" + s.substring(0, ECHO_CHARS) + "…\" (" + s.length() + " chars)";
    }

    /** The UTF-8 length of {@code s}, or its length in chars when that is over {@code max} already (a huge string costs nothing to measure). */
    static int utf8Bytes(String s, int max) {
        if (s.length() > max) {
            return s.length(); // at least one byte per char: over the limit whatever it holds
        }
        int bytes = 0;
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (c < 0x80) {
                bytes += 1;
            } else if (c < 0x800) {
                bytes += 2;
            } else if (Character.isHighSurrogate(c)) {
                bytes += 4;
                i++;
            } else {
                bytes += 3;
            }
        }
        return bytes;
    }

    /**
     * @return null when {@code value} has at most {@code maxBytes} UTF-8 bytes, else the refusal naming {@code field}
     */
    static String tooLong(String field, String value, int maxBytes) {
        int bytes = utf8Bytes(value, maxBytes);
        if (bytes <= maxBytes) {
            return null;
        }
        return field + ": " + (value.length() > maxBytes ? "more than " + maxBytes : String.valueOf(bytes))
                + " bytes; at most " + maxBytes + " are allowed";
    }

    /** Throws INVALID_ARGUMENT when {@code value} is longer than {@code maxBytes} in UTF-8. */
    static void checkLength(String field, String value, int maxBytes) {
        String problem = tooLong(field, value, maxBytes);
        if (problem != null) {
            throw EngineException.invalid(problem);
        }
    }

    /** Throws INVALID_ARGUMENT when a list has more than {@code max} entries. */
    static void checkCount(String field, int count, int max) {
        if (count > max) {
            throw EngineException.invalid(field + ": " + count + " entries; at most " + max + " per request");
        }
    }
}
