package io.pegaflow.fabric.cli;

import ch.qos.logback.classic.Level;
import io.pegaflow.fabric.node.NodeStartException;
import java.io.PrintStream;
import java.io.PrintWriter;
import java.nio.charset.StandardCharsets;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.HelpCommand;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.ParameterException;
import picocli.CommandLine.Spec;
import picocli.CommandLine.UnmatchedArgumentException;

/**
 * Entry point of every {@code ./pegaflow} subcommand that runs on the JVM; picocli parses the command line and writes
 * the help from the options. Exit codes: 0 done, 1 the command failed, 2 a bad command line (one line naming the
 * problem, then a pointer to the command's {@code --help}).
 */
@Command(
        name = "pegaflow",
        mixinStandardHelpOptions = true,
        versionProvider = PegaflowVersion.class,
        description = "PegaFlow: a KV-cache data path for LLM inference. JVM commands:",
        synopsisSubcommandLabel = "COMMAND",
        footer = {"", "Run `pegaflow COMMAND --help` for the options of one command."})
public final class Main implements Runnable {
    /** Columns of the help text, for this command and every subcommand. */
    private static final int USAGE_WIDTH = 100;

    @Spec
    private CommandSpec spec;

    private Main() {}

    public static void main(String[] argv) {
        System.exit(run(argv, System.out, System.err));
    }

    /** Runs one command line, writing to {@code out} and {@code err}; returns the exit code. */
    public static int run(String[] argv, PrintStream out, PrintStream err) {
        PrintWriter outWriter = new PrintWriter(out, true, StandardCharsets.UTF_8);
        PrintWriter errWriter = new PrintWriter(err, true, StandardCharsets.UTF_8);
        CommandLine commandLine = new CommandLine(new Main())
                .addSubcommand(new NodeCommand())
                .addSubcommand(new StatusCommand(out, err))
                .addSubcommand(new LocateCommand(out, err))
                .addSubcommand(new DemoCommand(out, err))
                .addSubcommand(new io.pegaflow.proxy.ProxyCommand(out))
                .addSubcommand(new RdmaCheckCommand(out, err))
                .addSubcommand(new HelpCommand())
                .setUsageHelpWidth(USAGE_WIDTH)
                .setOut(outWriter)
                .setErr(errWriter)
                .setParameterExceptionHandler(Main::usageError)
                .setExecutionExceptionHandler((e, failed, parseResult) -> {
                    String name = failed.getCommandSpec().qualifiedName();
                    failed.getErr()
                            .println(name + ": " + (e instanceof NodeStartException ? e.getMessage() : rootMessage(e)));
                    return 1;
                });
        int code = commandLine.execute(argv);
        outWriter.flush();
        errWriter.flush();
        return code;
    }

    /** No command given. */
    @Override
    public void run() {
        throw new ParameterException(spec.commandLine(), "missing a command");
    }

    /** One line naming the problem (and picocli's "did you mean" if it has one), then where the help is. */
    private static int usageError(ParameterException e, String[] argv) {
        CommandLine failed = e.getCommandLine();
        PrintWriter err = failed.getErr();
        String name = failed.getCommandSpec().qualifiedName();
        err.println(name + ": " + e.getMessage());
        UnmatchedArgumentException.printSuggestions(e, err);
        err.println("Try '" + name + " --help' for more information.");
        return failed.getCommandSpec().exitCodeOnInvalidInput();
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
