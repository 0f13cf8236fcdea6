package io.pegaflow.config;

import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import org.yaml.snakeyaml.LoaderOptions;
import org.yaml.snakeyaml.composer.Composer;
import org.yaml.snakeyaml.error.Mark;
import org.yaml.snakeyaml.error.MarkedYAMLException;
import org.yaml.snakeyaml.error.YAMLException;
import org.yaml.snakeyaml.nodes.MappingNode;
import org.yaml.snakeyaml.nodes.Node;
import org.yaml.snakeyaml.nodes.NodeTuple;
import org.yaml.snakeyaml.nodes.ScalarNode;
import org.yaml.snakeyaml.nodes.SequenceNode;
import org.yaml.snakeyaml.parser.ParserImpl;
import org.yaml.snakeyaml.reader.StreamReader;

/**
 * Composes one YAML document into SnakeYAML's node tree (each node carries its start mark), typing plain scalars with
 * {@link PlainScalarResolver} and replacing aliases and unsupported tags through {@link UnsupportedNodeFilter}. Only
 * the composer runs: no Java object is ever constructed from the file. Stateless.
 */
final class YamlReader {

    /** The file is not well-formed YAML, holds more than one document, or has a key that is not a plain value. */
    static final class SyntaxException extends Exception {
        private static final long serialVersionUID = 1L;
        private final int line;

        SyntaxException(String message, int line) {
            super(message);
            this.line = line;
        }

        /** 1-based; 0 when unknown. */
        int line() {
            return line;
        }
    }

    private YamlReader() {}

    /** @return empty for a file with no document (empty, blank or only comments) */
    static Optional<Node> read(String text) throws SyntaxException {
        LoaderOptions options = new LoaderOptions();
        UnsupportedNodeFilter parser = new UnsupportedNodeFilter(new ParserImpl(new StreamReader(text), options));
        Composer composer = new Composer(parser, new PlainScalarResolver(), options);
        try {
            if (!composer.checkNode()) {
                return Optional.empty();
            }
            Node root = composer.getNode();
            if (composer.checkNode()) {
                parser.getEvent(); // the second document's start: point at its content
                throw new SyntaxException(
                        "more than one YAML document (a second one has content here); "
                                + "a topology file holds exactly one",
                        line(parser.peekEvent().getStartMark()));
            }
            requirePlainKeys(root);
            return Optional.of(root);
        } catch (MarkedYAMLException e) {
            throw syntaxError(e);
        } catch (YAMLException e) { // limits without a place: nesting depth, file size
            throw new SyntaxException("YAML syntax error: " + e.getMessage(), 0);
        }
    }

    /** Every mapping key must be a plain scalar: a list, a mapping or an alias as a key has no path to report. */
    private static void requirePlainKeys(Node node) throws SyntaxException {
        switch (node) {
            case MappingNode mapping -> {
                for (NodeTuple entry : mapping.getValue()) {
                    Node key = entry.getKeyNode();
                    if (!(key instanceof ScalarNode scalar)
                            || YamlNodes.type(scalar) == YamlNodes.ScalarType.ALIAS
                            || YamlNodes.type(scalar) == YamlNodes.ScalarType.TAGGED) {
                        throw new SyntaxException(
                                "a mapping key must be a plain value, found " + YamlNodes.kind(key),
                                YamlNodes.line(key));
                    }
                    requirePlainKeys(entry.getValueNode());
                }
            }
            case SequenceNode sequence -> {
                for (Node item : sequence.getValue()) {
                    requirePlainKeys(item);
                }
            }
            default -> {}
        }
    }

    /**
     * One line from SnakeYAML's report, at the line of the problem: {@code YAML syntax error: while parsing a flow
     * mapping, expected ',' or '}', but got :} (context, then problem).
     */
    private static SyntaxException syntaxError(MarkedYAMLException e) {
        List<String> text = new ArrayList<>();
        for (String part : new String[] {e.getContext(), e.getProblem()}) {
            if (part != null && !part.isBlank()) {
                text.add(part.strip());
            }
        }
        if (text.isEmpty()) {
            text.add("unreadable input");
        }
        Mark at = e.getProblemMark() != null ? e.getProblemMark() : e.getContextMark();
        return new SyntaxException("YAML syntax error: " + String.join(", ", text), at == null ? 0 : line(at));
    }

    private static int line(Mark mark) {
        return mark.getLine() + 1;
    }
}
