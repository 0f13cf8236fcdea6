package io.pegaflow.config;

import java.math.BigInteger;
import java.util.Optional;
import org.yaml.snakeyaml.nodes.MappingNode;
import org.yaml.snakeyaml.nodes.Node;
import org.yaml.snakeyaml.nodes.NodeTuple;
import org.yaml.snakeyaml.nodes.ScalarNode;
import org.yaml.snakeyaml.nodes.SequenceNode;
import org.yaml.snakeyaml.nodes.Tag;

/**
 * What the validator asks of SnakeYAML's nodes (as {@link YamlReader} composes them): a scalar's type, a line for a
 * message, a mapping's entry by key, how a value is described and shown. Lines are 1-based. Stateless.
 */
final class YamlNodes {

    /** What a scalar stands for; {@link #TAGGED} and {@link #ALIAS} are {@link UnsupportedNodeFilter}'s placeholders. */
    enum ScalarType {
        STRING,
        INTEGER,
        FLOAT,
        BOOLEAN,
        NULL,
        TAGGED,
        ALIAS
    }

    private YamlNodes() {}

    static int line(Node node) {
        return node.getStartMark().getLine() + 1;
    }

    /** The key of a mapping entry; {@link YamlReader} has checked that every key is a plain scalar. */
    static String key(NodeTuple entry) {
        return ((ScalarNode) entry.getKeyNode()).getValue();
    }

    static int keyLine(NodeTuple entry) {
        return line(entry.getKeyNode());
    }

    /** The first entry with this key (a repeated key appears twice; the validator reports it). */
    static Optional<NodeTuple> entry(MappingNode mapping, String key) {
        return mapping.getValue().stream().filter(e -> key(e).equals(key)).findFirst();
    }

    /**
     * The scalar's type from its tag, resolved by {@link PlainScalarResolver} or written in the file: a value whose
     * explicit core tag does not fit it ({@code !!int abc}) is a string.
     */
    static ScalarType type(ScalarNode scalar) {
        Tag tag = scalar.getTag();
        String text = scalar.getValue();
        if (tag.equals(UnsupportedNodeFilter.ALIAS)) {
            return ScalarType.ALIAS;
        }
        if (tag.equals(UnsupportedNodeFilter.TAGGED)) {
            return ScalarType.TAGGED;
        }
        if (tag.equals(Tag.NULL)) {
            return ScalarType.NULL;
        }
        if (tag.equals(Tag.INT) && PlainScalarResolver.INT.matcher(text).matches()) {
            return ScalarType.INTEGER;
        }
        if (tag.equals(Tag.FLOAT) && PlainScalarResolver.FLOAT.matcher(text).matches()) {
            return ScalarType.FLOAT;
        }
        if (tag.equals(Tag.BOOL) && PlainScalarResolver.BOOL.matcher(text).matches()) {
            return ScalarType.BOOLEAN;
        }
        return ScalarType.STRING;
    }

    static boolean isNull(Node node) {
        return node instanceof ScalarNode s && type(s) == ScalarType.NULL;
    }

    /**
     * The value of an {@link ScalarType#INTEGER} scalar: {@code 0b}, {@code 0x} and a leading {@code 0} (octal) set
     * the base, {@code _} separates digits.
     */
    static BigInteger integer(ScalarNode scalar) {
        String text = scalar.getValue().replace("_", "");
        boolean negative = text.startsWith("-");
        if (negative || text.startsWith("+")) {
            text = text.substring(1);
        }
        int radix = 10;
        if (text.startsWith("0b")) {
            radix = 2;
            text = text.substring(2);
        } else if (text.startsWith("0x")) {
            radix = 16;
            text = text.substring(2);
        } else if (text.length() > 1 && text.startsWith("0")) {
            radix = 8;
            text = text.substring(1);
        }
        BigInteger value = new BigInteger(text, radix);
        return negative ? value.negate() : value;
    }

    /** How a scalar is shown in a message: strings quoted, other scalars as written. */
    static String shown(ScalarNode scalar) {
        return switch (type(scalar)) {
            case STRING -> Quoting.quote(scalar.getValue());
            case ALIAS -> "*" + scalar.getValue();
            case TAGGED -> "a value tagged " + shortTag(scalar.getValue());
            case NULL -> "null";
            default -> scalar.getValue();
        };
    }

    /** What a value is, for "expected a list, found ..." messages: {@code a mapping}, {@code a string}, ... */
    static String kind(Node node) {
        return switch (node) {
            case MappingNode m -> "a mapping";
            case SequenceNode s -> "a list";
            case ScalarNode s ->
                switch (type(s)) {
                    case STRING -> "a string";
                    case INTEGER -> "an integer";
                    case FLOAT -> "a decimal number";
                    case BOOLEAN -> "a boolean";
                    case NULL -> "nothing";
                    case TAGGED ->
                        "a value tagged " + shortTag(s.getValue())
                                + " (tags other than !!str, !!int, !!float, !!bool, !!null, !!map, !!seq are not"
                                + " supported)";
                    case ALIAS -> "an alias (*" + s.getValue() + "; aliases are not supported)";
                };
            default -> "a " + node.getNodeId() + " node";
        };
    }

    /** {@code !!binary} for {@code tag:yaml.org,2002:binary}; other tags as written. */
    private static String shortTag(String tag) {
        return tag.startsWith(Tag.PREFIX) ? "!!" + tag.substring(Tag.PREFIX.length()) : tag;
    }
}
