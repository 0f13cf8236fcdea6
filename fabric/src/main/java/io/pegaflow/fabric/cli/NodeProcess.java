package io.pegaflow.fabric.cli;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * A node started as a separate JVM with this JVM's runtime and classpath, its output in a log file. Used by the demo
 * and by multi-process tests.
 */
public final class NodeProcess implements AutoCloseable {
    /** JVM flags every node needs (FFM, Pekko/Netty's Unsafe use). */
    public static final List<String> REQUIRED_JVM_FLAGS =
            List.of("--enable-native-access=ALL-UNNAMED", "--sun-misc-unsafe-memory-access=allow");

    /**
     * The node's collector unless the caller picks one: ZGC, whose pauses stay well under a millisecond. With G1 a
     * node's young pauses (2-20 ms) made the tail of every RPC: on 16 idle cores a Locate of 1,000 hashes had p99
     * 3.7-6.8 ms with G1 against 2.3-2.7 ms with ZGC, at less CPU per call (bench/results/locate-grpc.md). The
     * launcher ({@code ./pegaflow node}) does the same.
     */
    public static final List<String> DEFAULT_COLLECTOR = List.of("-XX:+UseZGC");

    /** {@link #DEFAULT_COLLECTOR} unless {@code jvmFlags} already select a collector ({@code -XX:+Use...GC}). */
    public static List<String> collectorFlags(List<String> jvmFlags) {
        boolean chosen = jvmFlags.stream().anyMatch(f -> f.matches("-XX:\\+Use\\w*GC"));
        return chosen ? List.of() : DEFAULT_COLLECTOR;
    }

    private final String nodeId;
    private final Process process;
    private final Path log;

    private NodeProcess(String nodeId, Process process, Path log) {
        this.nodeId = nodeId;
        this.process = process;
        this.log = log;
    }

    /**
     * @param extraJvmFlags e.g. heap limits
     * @param nodeArgs arguments after {@code node}
     */
    public static NodeProcess start(String nodeId, List<String> extraJvmFlags, List<String> nodeArgs, Path logDir)
            throws IOException {
        Files.createDirectories(logDir);
        Path log = logDir.resolve(nodeId + ".log");
        List<String> command = new ArrayList<>();
        command.add(ProcessHandle.current()
                .info()
                .command()
                .orElse(Path.of(System.getProperty("java.home"), "bin", "java").toString()));
        command.addAll(REQUIRED_JVM_FLAGS);
        command.addAll(collectorFlags(extraJvmFlags));
        command.addAll(extraJvmFlags);
        command.add("-cp");
        command.add(System.getProperty("java.class.path"));
        command.add(Main.class.getName());
        command.add("node");
        command.addAll(nodeArgs);
        Process process = new ProcessBuilder(command)
                .redirectErrorStream(true)
                .redirectOutput(log.toFile())
                .redirectInput(ProcessBuilder.Redirect.from(new java.io.File("/dev/null")))
                .start();
        return new NodeProcess(nodeId, process, log);
    }

    public String nodeId() {
        return nodeId;
    }

    public Process process() {
        return process;
    }

    public Path log() {
        return log;
    }

    public boolean isAlive() {
        return process.isAlive();
    }

    /** The exit code, or -1 if it did not exit within {@code timeout}. */
    public int waitForExit(Duration timeout) throws InterruptedException {
        return process.waitFor(timeout.toMillis(), TimeUnit.MILLISECONDS) ? process.exitValue() : -1;
    }

    /** SIGTERM: the node leaves the cluster and exits. */
    public void terminate() {
        process.destroy();
    }

    /** The last {@code lines} lines of the node's log, for failure reports. */
    public String logTail(int lines) {
        try {
            List<String> all = Files.readAllLines(log, StandardCharsets.UTF_8);
            return String.join("\n", all.subList(Math.max(0, all.size() - lines), all.size()));
        } catch (IOException e) {
            return "(no log: " + e.getMessage() + ")";
        }
    }

    /** Kills the process if it still runs. */
    @Override
    public void close() {
        if (process.isAlive()) {
            process.destroyForcibly();
            try {
                process.waitFor(10, TimeUnit.SECONDS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
    }
}
