package io.pegaflow.config;

import java.math.BigInteger;
import java.util.List;
import java.util.Optional;

/**
 * A YAML value and the line it starts on: the loader's own tree, because Jackson's {@code JsonNode}
 * keeps no locations. Lines are 1-based; 0 means unknown.
 */
sealed interface YamlNode permits YamlNode.Mapping, YamlNode.Sequence, YamlNode.Scalar {

    int line();

    /** What this is, for "expected a list, found ..." messages: {@code a mapping}, {@code a string}, ... */
    String kind();

    /** One {@code key: value} of a mapping. */
    record Entry(String key, int keyLine, YamlNode value) {}

    /** A mapping, entries in file order; a repeated key appears twice (the validator reports it). */
    record Mapping(int line, List<Entry> entries) implements YamlNode {
        public Mapping {
            entries = List.copyOf(entries);
        }

        /** The first entry with this key. */
        Optional<Entry> entry(String key) {
            return entries.stream().filter(e -> e.key().equals(key)).findFirst();
        }

        @Override
        public String kind() {
            return "a mapping";
        }
    }

    record Sequence(int line, List<YamlNode> items) implements YamlNode {
        public Sequence {
            items = List.copyOf(items);
        }

        @Override
        public String kind() {
            return "a list";
        }
    }

    enum ScalarType {
        STRING,
        INTEGER,
        FLOAT,
        BOOLEAN,
        NULL,
        BINARY,
        ALIAS
    }

    /**
     * A scalar as written, with its resolved YAML type.
     *
     * @param text the scalar's text (for {@link ScalarType#ALIAS}, the anchor's name)
     * @param integer the value when {@code type} is {@link ScalarType#INTEGER}, else null
     */
    record Scalar(int line, ScalarType type, String text, BigInteger integer) implements YamlNode {

        boolean isNull() {
            return type == ScalarType.NULL;
        }

        /** How the value is shown in a message: strings quoted, other scalars as written. */
        String shown() {
            return switch (type) {
                case STRING -> Quoting.quote(text);
                case ALIAS -> "*" + text;
                case BINARY -> "a !!binary value";
                default -> text;
            };
        }

        @Override
        public String kind() {
            return switch (type) {
                case STRING -> "a string";
                case INTEGER -> "an integer";
                case FLOAT -> "a decimal number";
                case BOOLEAN -> "a boolean";
                case NULL -> "nothing";
                case BINARY -> "a !!binary value";
                case ALIAS -> "an alias (*" + text + "; aliases are not supported)";
            };
        }
    }
}
