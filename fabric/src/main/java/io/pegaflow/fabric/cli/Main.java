package io.pegaflow.fabric.cli;

import ch.qos.logback.classic.Level;
import io.pegaflow.fabric.node.FabricNode;
import io.pegaflow.fabric.node.NodeLaunch;
import io.pegaflow.fabric.node.NodeOptions;
import io.pegaflow.fabric.node.NodeStartException;
import java.io.PrintStream;
import java.util.Arrays;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/** Entry point of every {@code ./pegaflow} subcommand that runs on the JVM. */
public final class Main {
    public static final String HELP = """
      Usage: pegaflow <command> [options]

      Commands:
        node     start a node (single-node on 127.0.0.1 with no --topology)
        status   print the cluster as a node sees it
        demo     start the example 3-node cluster as three processes, show its status, shut it down
        test     run the whole test suite (Java and Python)   [handled by the ./pegaflow script]
        build    (re)build the Java modules                   [handled by the ./pegaflow script]

      Run `pegaflow <command> --help` for its options.
      """;

    private Main() {}

    public static void main(String[] argv) {
        System.exit(run(argv, System.out, System.err));
    }

    static int run(String[] argv, PrintStream out, PrintStream err) {
        if (argv.length == 0 || argv[0].equals("--help") || argv[0].equals("-h") || argv[0].equals("help")) {
            out.print(HELP);
            return argv.length == 0 ? 2 : 0;
        }
        String command = argv[0];
        String[] rest = Arrays.copyOfRange(argv, 1, argv.length);
        try {
            return switch (command) {
                case "node" -> node(rest, out, err);
                case "status" -> {
                    setRootLogLevel("warn");
                    yield StatusCommand.run(rest, out, err);
                }
                case "demo" -> {
                    setRootLogLevel("warn");
                    yield DemoCommand.run(rest, out, err);
                }
                default -> {
                    err.println("pegaflow: unknown command \"" + command + "\"\n");
                    err.print(HELP);
                    yield 2;
                }
            };
        } catch (Args.UsageException e) {
            err.println("pegaflow " + command + ": " + e.getMessage() + " (see pegaflow " + command + " --help)");
            return 2;
        } catch (NodeStartException e) {
            err.println("pegaflow " + command + ": " + e.getMessage());
            return 1;
        } catch (Exception e) {
            err.println("pegaflow " + command + ": " + rootMessage(e));
            return 1;
        }
    }

    private static int node(String[] argv, PrintStream out, PrintStream err) {
        if (Arrays.asList(argv).contains("--help")) {
            out.print(NodeOptions.HELP);
            return 0;
        }
        NodeLaunch launch = NodeOptions.resolve(argv);
        setRootLogLevel(launch.logLevel());
        Logger log = LoggerFactory.getLogger(Main.class);
        FabricNode node = FabricNode.start(launch);
        node.whenTerminated().toCompletableFuture().join();
        log.info("node {} stopped", launch.self().id());
        return 0;
    }

    /** Sets the root level and Pekko's (which logback.xml pins to INFO) together. */
    static void setRootLogLevel(String level) {
        for (String name : new String[] {Logger.ROOT_LOGGER_NAME, "org.apache.pekko"}) {
            if (LoggerFactory.getLogger(name) instanceof ch.qos.logback.classic.Logger logger) {
                logger.setLevel(Level.toLevel(level, Level.INFO));
            }
        }
    }

    public static String rootMessage(Throwable e) {
        Throwable t = e;
        while (t.getCause() != null && t.getCause() != t) {
            t = t.getCause();
        }
        String message = t.getMessage() == null ? t.getClass().getSimpleName() : t.getMessage();
        return t == e ? message : message + " (" + t.getClass().getSimpleName() + ")";
    }
}
