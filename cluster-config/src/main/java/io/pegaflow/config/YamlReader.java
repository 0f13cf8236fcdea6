package io.pegaflow.config;

import com.fasterxml.jackson.core.JsonLocation;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.core.JsonToken;
import com.fasterxml.jackson.dataformat.yaml.YAMLFactory;
import com.fasterxml.jackson.dataformat.yaml.YAMLParser;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Reads one YAML document into a {@link YamlNode} tree, keeping each value's line from Jackson's
 * streaming YAML parser.
 */
final class YamlReader {

    /**
     * Only {@code true} and {@code false} are booleans: YAML 1.1 would also read {@code y}, {@code no},
     * {@code on} as booleans, which turns a node id like {@code n} into {@code false}. An empty value
     * ({@code host:}) is null, so a key with no value counts as missing rather than as an empty string.
     */
    private static final YAMLFactory FACTORY = YAMLFactory.builder()
            .enable(YAMLParser.Feature.PARSE_BOOLEAN_LIKE_WORDS_AS_STRINGS)
            .enable(YAMLParser.Feature.EMPTY_STRING_AS_NULL)
            .build();

    /** The file is not well-formed YAML, or holds more than one document. */
    static final class SyntaxException extends Exception {
        private static final long serialVersionUID = 1L;
        private final int line;

        SyntaxException(String message, int line) {
            super(message);
            this.line = line;
        }

        int line() {
            return line;
        }
    }

    /** SnakeYAML's position line, e.g. {@code  in 'reader', line 2, column 6:}. */
    private static final Pattern MARK = Pattern.compile("\\s*in '[^']*', line (\\d+), column \\d+:?");

    private YamlReader() {}

    /** @return empty for a file with no document (empty, blank or only comments) */
    static Optional<YamlNode> read(String text) throws SyntaxException {
        try (JsonParser p = FACTORY.createParser(text)) {
            if (p.nextToken() == null) {
                return Optional.empty();
            }
            YamlNode root = readValue(p);
            if (p.nextToken() != null) {
                throw new SyntaxException(
                        "more than one YAML document (a second one has content here); "
                                + "a topology file holds exactly one",
                        line(p));
            }
            return Optional.of(root);
        } catch (JsonProcessingException e) {
            throw syntaxError(e);
        } catch (IOException e) {
            throw new UncheckedIOException("reading YAML from a string", e);
        }
    }

    /** Reads the value whose first token is current, leaving its last token current. */
    private static YamlNode readValue(JsonParser p) throws IOException {
        int line = line(p);
        JsonToken token = p.currentToken();
        return switch (token) {
            case START_OBJECT -> {
                List<YamlNode.Entry> entries = new ArrayList<>();
                while (p.nextToken() == JsonToken.FIELD_NAME) {
                    String key = p.currentName();
                    int keyLine = line(p);
                    p.nextToken();
                    entries.add(new YamlNode.Entry(key, keyLine, readValue(p)));
                }
                yield new YamlNode.Mapping(line, entries);
            }
            case START_ARRAY -> {
                List<YamlNode> items = new ArrayList<>();
                while (p.nextToken() != JsonToken.END_ARRAY) {
                    items.add(readValue(p));
                }
                yield new YamlNode.Sequence(line, items);
            }
            case VALUE_STRING ->
                p instanceof YAMLParser y && y.isCurrentAlias()
                        ? scalar(line, YamlNode.ScalarType.ALIAS, p.getText())
                        : scalar(line, YamlNode.ScalarType.STRING, p.getText());
            case VALUE_NUMBER_INT ->
                new YamlNode.Scalar(line, YamlNode.ScalarType.INTEGER, p.getText(), p.getBigIntegerValue());
            case VALUE_NUMBER_FLOAT -> scalar(line, YamlNode.ScalarType.FLOAT, p.getText());
            case VALUE_TRUE, VALUE_FALSE -> scalar(line, YamlNode.ScalarType.BOOLEAN, p.getText());
            case VALUE_NULL -> scalar(line, YamlNode.ScalarType.NULL, "null");
            case VALUE_EMBEDDED_OBJECT -> scalar(line, YamlNode.ScalarType.BINARY, "");
            default -> throw new IllegalStateException("unexpected token " + token + " at line " + line);
        };
    }

    private static YamlNode.Scalar scalar(int line, YamlNode.ScalarType type, String text) {
        return new YamlNode.Scalar(line, type, text, null);
    }

    private static int line(JsonParser p) {
        return Math.max(p.currentTokenLocation().getLineNr(), 0);
    }

    /**
     * Turns SnakeYAML's multi-line report (context, problem, each followed by {@code in 'reader', line
     * L, column C:} and a snippet with a caret) into one line, at the line of the last mark: the
     * problem's. Jackson's own location is the parser's, which can lag behind the scanner's.
     */
    private static SyntaxException syntaxError(JsonProcessingException e) {
        String report = e.getOriginalMessage() == null ? "unreadable input" : e.getOriginalMessage();
        List<String> lines = report.lines().toList();
        List<String> text = new ArrayList<>();
        int problemLine = 0;
        for (int i = 0; i < lines.size(); i++) {
            Matcher mark = MARK.matcher(lines.get(i));
            if (mark.matches()) {
                problemLine = Integer.parseInt(mark.group(1));
                if (i + 2 < lines.size() && lines.get(i + 2).strip().equals("^")) {
                    i += 2; // the snippet and its caret
                }
            } else if (!lines.get(i).isBlank()) {
                text.add(lines.get(i).strip());
            }
        }
        if (problemLine == 0) {
            JsonLocation at = e.getLocation();
            problemLine = at == null ? 0 : Math.max(at.getLineNr(), 0);
        }
        return new SyntaxException("YAML syntax error: " + String.join(", ", text), problemLine);
    }
}
