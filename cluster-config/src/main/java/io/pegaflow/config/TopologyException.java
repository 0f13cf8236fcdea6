package io.pegaflow.config;

import java.io.Serial;
import java.util.List;
import java.util.Objects;

/**
 * A topology file that cannot be used, with every problem found in it. Each problem starts with the
 * path of the value it is about ({@code nodes[2].grpcPort}, or {@code (file)} for the file as a
 * whole) and ends with {@code (line N)} where the line is known.
 *
 * <p>The message reads:
 *
 * <pre>
 * cluster.yaml: 2 problems:
 *   - nodes[1].host: missing (line 9)
 *   - nodes[2].grpcPort: 70000 is not a port (1..65535) (line 18)
 * </pre>
 */
public final class TopologyException extends Exception {

    @Serial
    private static final long serialVersionUID = 1L;

    private final String source;
    private final List<String> problems;

    /**
     * @param source the file name or other label the problems are about
     * @param problems at least one problem, each a line of text
     */
    public TopologyException(String source, List<String> problems) {
        super(message(source, problems));
        this.source = source;
        this.problems = List.copyOf(problems);
    }

    /** The file name or other label given to the loader. */
    public String source() {
        return source;
    }

    /** Every problem, in file order where possible; never empty. */
    public List<String> problems() {
        return problems;
    }

    private static String message(String source, List<String> problems) {
        Objects.requireNonNull(source, "source");
        if (problems.isEmpty()) {
            throw new IllegalArgumentException("a TopologyException needs at least one problem");
        }
        StringBuilder sb = new StringBuilder(source)
                .append(": ")
                .append(problems.size())
                .append(problems.size() == 1 ? " problem:" : " problems:");
        for (String p : problems) {
            sb.append("\n  - ").append(p);
        }
        return sb.toString();
    }
}
