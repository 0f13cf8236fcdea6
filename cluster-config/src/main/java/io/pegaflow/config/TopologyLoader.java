package io.pegaflow.config;

import java.io.IOException;
import java.nio.charset.CharacterCodingException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.List;
import java.util.Objects;
import java.util.Optional;
import org.yaml.snakeyaml.nodes.Node;

/**
 * Reads a topology file (YAML, see the module's README) into a validated {@link Topology}.
 *
 * <p>Every problem in the file is reported at once, in one {@link TopologyException}. Stateless and
 * thread-safe.
 */
public final class TopologyLoader {

    /** Path used for problems with the file as a whole. */
    static final String FILE_PATH = "(file)";

    private TopologyLoader() {}

    /**
     * Reads and validates the topology file at {@code file} (UTF-8).
     *
     * @throws TopologyException if the file cannot be read or is not a valid topology
     */
    public static Topology load(Path file) throws TopologyException {
        Objects.requireNonNull(file, "file");
        String text;
        try {
            text = Files.readString(file);
        } catch (NoSuchFileException e) {
            throw new TopologyException(file.toString(), List.of(FILE_PATH + ": no such file"));
        } catch (CharacterCodingException e) {
            throw new TopologyException(file.toString(), List.of(FILE_PATH + ": not valid UTF-8"));
        } catch (IOException e) {
            throw new TopologyException(file.toString(), List.of(FILE_PATH + ": cannot read: " + e));
        }
        return parse(text, file.toString());
    }

    /**
     * Validates topology YAML held in memory.
     *
     * @param sourceName what to call the text in the exception message, e.g. its file name
     * @throws TopologyException if the text is not a valid topology
     */
    public static Topology parse(String yamlText, String sourceName) throws TopologyException {
        Objects.requireNonNull(yamlText, "yamlText");
        Objects.requireNonNull(sourceName, "sourceName");
        Optional<Node> root;
        try {
            root = YamlReader.read(yamlText);
        } catch (YamlReader.SyntaxException e) {
            throw new TopologyException(sourceName, List.of(Problems.format(FILE_PATH, e.line(), e.getMessage())));
        }
        if (root.isEmpty()) {
            throw new TopologyException(
                    sourceName, List.of(FILE_PATH + ": empty file (expected a mapping with cluster and nodes)"));
        }
        Problems problems = new Problems();
        Topology topology = new TopologyValidator(problems).validate(root.get());
        if (!problems.isEmpty()) {
            throw new TopologyException(sourceName, problems.list());
        }
        return topology;
    }
}
