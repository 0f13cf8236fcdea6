package io.pegaflow.config;

import java.util.regex.Pattern;
import org.yaml.snakeyaml.nodes.NodeId;
import org.yaml.snakeyaml.nodes.Tag;
import org.yaml.snakeyaml.resolver.Resolver;

/**
 * Types untagged plain scalars for topology files: YAML 1.1 numbers, but only {@code true} and {@code false} as
 * booleans. YAML 1.1 would also read {@code y}, {@code no}, {@code on} as booleans, which turns a node id like
 * {@code n} into {@code false}. Quoted and block scalars are always strings; an empty plain value ({@code host:}) is
 * null, so a key with no value counts as missing. Stateless.
 */
final class PlainScalarResolver extends Resolver {

    static final Pattern NULL = Pattern.compile("|~|null|Null|NULL");
    static final Pattern BOOL = Pattern.compile("true|True|TRUE|false|False|FALSE");
    /** Binary, octal (leading 0), decimal and hex, with {@code _} separators; no base-60 forms like {@code 1:30}. */
    static final Pattern INT = Pattern.compile(
            "[-+]?0b_*[01][01_]*|[-+]?0_*[0-7][0-7_]*|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x_*[0-9a-fA-F][0-9a-fA-F_]*");
    /** SnakeYAML's YAML 1.1 float: fractions, exponents, {@code .inf}, {@code .nan}. */
    static final Pattern FLOAT = Resolver.FLOAT;

    @Override
    public Tag resolve(NodeId kind, String value, boolean implicit) {
        return switch (kind) {
            case scalar -> implicit ? plain(value) : Tag.STR;
            case sequence -> Tag.SEQ;
            default -> Tag.MAP;
        };
    }

    private static Tag plain(String value) {
        if (NULL.matcher(value).matches()) {
            return Tag.NULL;
        }
        if (BOOL.matcher(value).matches()) {
            return Tag.BOOL;
        }
        if (INT.matcher(value).matches()) {
            return Tag.INT;
        }
        if (FLOAT.matcher(value).matches()) {
            return Tag.FLOAT;
        }
        return Tag.STR;
    }
}
