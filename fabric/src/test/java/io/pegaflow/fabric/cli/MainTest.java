package io.pegaflow.fabric.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.pegaflow.fabric.TestPorts;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import org.junit.jupiter.api.Test;

class MainTest {
    private final ByteArrayOutputStream out = new ByteArrayOutputStream();
    private final ByteArrayOutputStream err = new ByteArrayOutputStream();

    private int run(String... argv) {
        return Main.run(argv, new PrintStream(out, true), new PrintStream(err, true));
    }

    @Test
    void shouldPrintHelpListingEveryCommand() {
        assertEquals(0, run("--help"));
        String help = out.toString(StandardCharsets.UTF_8);
        for (String command : new String[] {"node", "status", "demo", "test"}) {
            assertTrue(help.contains("  " + command + " "), help);
        }
    }

    @Test
    void shouldDocumentEveryNodeFlag() {
        assertEquals(0, run("node", "--help"));
        String help = out.toString(StandardCharsets.UTF_8);
        for (String flag : new String[] {"--topology", "--node", "--addr", "--pool-size", "--device", "--log-level"}) {
            assertTrue(help.contains(flag), flag);
        }
    }

    @Test
    void shouldExitTwoOnAnUnknownCommandOrFlag() {
        assertEquals(2, run("frobnicate"));
        assertEquals(2, run("status", "--bogus"));
        assertTrue(err.toString(StandardCharsets.UTF_8).contains("unknown option --bogus"));
    }

    @Test
    void shouldExitOneWithAClearMessageWhenNoNodeAnswers() {
        int port = TestPorts.free(1)[0];
        assertEquals(1, run("status", "--endpoint", "127.0.0.1:" + port, "--timeout-ms", "1500"));
        assertTrue(err.toString(StandardCharsets.UTF_8).contains("no answer from 127.0.0.1:" + port), err.toString());
    }
}
