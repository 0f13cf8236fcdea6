package io.pegaflow.fabric.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.pegaflow.fabric.TestPorts;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

class MainTest {
    private final ByteArrayOutputStream out = new ByteArrayOutputStream();
    private final ByteArrayOutputStream err = new ByteArrayOutputStream();

    private int run(String... argv) {
        return Main.run(argv, new PrintStream(out, true), new PrintStream(err, true));
    }

    private String out() {
        return out.toString(StandardCharsets.UTF_8);
    }

    private String err() {
        return err.toString(StandardCharsets.UTF_8);
    }

    @Test
    void shouldPrintHelpListingEveryJvmCommand() {
        assertEquals(0, run("--help"));
        for (String command : new String[] {"node", "status", "demo", "help"}) {
            assertTrue(out().contains("  " + command + " "), out());
        }
        assertTrue(out().contains("--version"), out());
    }

    @Test
    void shouldDocumentEveryNodeFlag() {
        assertEquals(0, run("node", "--help"));
        for (String flag : new String[] {
            "--topology",
            "--node",
            "--addr",
            "--pool-size",
            "--device",
            "--cluster-port",
            "--metrics-port",
            "--log-level",
            "--partial-timeout-ms"
        }) {
            assertTrue(out().contains(flag), flag);
        }
        assertTrue(out().contains("trace, debug, info, warn, error (default info)"), out());
    }

    @Test
    void shouldPrintHelpForEachCommandWithItsOwnOptionsAndDefaults() {
        assertEquals(0, run("status", "--help"));
        assertTrue(out().startsWith("Usage: pegaflow status"), out());
        for (String text : List.of("--endpoint", "--json", "--timeout-ms", "default 127.0.0.1:50055", "default 5000")) {
            assertTrue(out().contains(text), text + " in\n" + out());
        }
        out.reset();
        assertEquals(0, run("demo", "--help"));
        assertTrue(out().startsWith("Usage: pegaflow demo"), out());
        for (String text : List.of("--topology", "--log-dir", "--timeout-s", "default examples/cluster-3node.yaml")) {
            assertTrue(out().contains(text), text + " in\n" + out());
        }
        out.reset();
        assertEquals(0, run("help", "node"));
        assertTrue(out().startsWith("Usage: pegaflow node"), out());
    }

    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"--version", "node --version", "status -V"})
    void shouldPrintTheProjectVersionFromTheBuild(String argv) {
        assertEquals(0, run(argv.split(" ")));
        String expected = "pegaflow " + PegaflowVersion.current() + System.lineSeparator();
        assertTrue(out().startsWith(expected), out());
        assertTrue(PegaflowVersion.current().matches("\\d+\\.\\d+\\.\\d+.*"), PegaflowVersion.current());
    }

    @Test
    void shouldExitTwoOnAnUnknownCommandOrFlagWithOneLineAndAHint() {
        assertEquals(2, run("frobnicate"));
        assertTrue(err().contains("'frobnicate'"), err());
        err.reset();
        assertEquals(2, run("status", "--bogus"));
        List<String> lines = err().lines().toList();
        assertEquals("pegaflow status: Unknown option: '--bogus'", lines.getFirst());
        assertEquals("Try 'pegaflow status --help' for more information.", lines.getLast());
        assertEquals("", out());
    }

    @Test
    void shouldExitTwoOnABadValueNamingTheFlagAndTheRange() {
        assertEquals(2, run("status", "--timeout-ms", "0"));
        assertEquals(
                List.of(
                        "pegaflow status: Invalid value for option '--timeout-ms': 0 is out of range 1..3600000",
                        "Try 'pegaflow status --help' for more information."),
                err().lines().toList());
        err.reset();
        assertEquals(2, run("node", "--pool-size", "lots"));
        assertTrue(err().startsWith("pegaflow node: Invalid value for option '--pool-size': \"lots\" is not a size"));
        err.reset();
        assertEquals(2, run("status", "--endpoint", "nohost"));
        assertTrue(err().contains("'--endpoint': \"nohost\" is not HOST:PORT"), err());
    }

    @Test
    void shouldReportFlagsThatDoNotGoTogetherAsAUsageError() {
        assertEquals(2, run("node", "--node", "n1"));
        assertEquals(
                List.of(
                        "pegaflow node: --node needs --topology FILE",
                        "Try 'pegaflow node --help' for more information."),
                err().lines().toList());
    }

    @Test
    void shouldExitTwoWithoutACommand() {
        assertEquals(2, run());
        assertTrue(err().startsWith("pegaflow: missing a command"), err());
    }

    @Test
    void shouldExitOneWithTheTopologyProblemWhenANodeCannotStart() {
        assertEquals(1, run("node", "--topology", "no/such/file.yaml", "--node", "n1"));
        assertTrue(err().startsWith("pegaflow node: no/such/file.yaml: 1 problem:"), err());
    }

    @Test
    void shouldExitOneWithAClearMessageWhenNoNodeAnswers() {
        int port = TestPorts.free(1)[0];
        assertEquals(1, run("status", "--endpoint", "127.0.0.1:" + port, "--timeout-ms", "1500"));
        assertTrue(err().contains("no answer from 127.0.0.1:" + port), err());
    }
}
