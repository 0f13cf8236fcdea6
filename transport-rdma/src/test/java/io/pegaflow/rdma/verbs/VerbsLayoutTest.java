package io.pegaflow.rdma.verbs;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * The binding's struct layouts against the real C headers: compiles {@code verbs_layout.c} (offsetof of every field
 * the binding touches) with gcc against {@code libibverbs-dev}, runs it, and compares with the Java constants and
 * the table embedded for the start-up check. Skipped, saying why, where gcc or the headers are missing.
 */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class VerbsLayoutTest {

    @Test
    void shouldMatchTheCHeadersFieldByField(@TempDir Path dir) throws Exception {
        assumeTrue(Files.exists(Path.of("/usr/include/infiniband/verbs.h")), "no libibverbs-dev headers");
        assumeTrue(onPath("gcc"), "no gcc");
        Path source = dir.resolve("verbs_layout.c");
        try (InputStream in = VerbsLayoutTest.class.getResourceAsStream("verbs_layout.c")) {
            Files.write(source, in.readAllBytes());
        }
        Path binary = dir.resolve("verbs_layout");
        run(dir, "gcc", "-O0", "-o", binary.toString(), source.toString());
        Map<String, Long> fromHeaders = parse(run(dir, binary.toString()));

        assertEquals("", VerbsLayout.diff(fromHeaders, VerbsLayout.table()), "Java constants vs C headers");
        assertEquals("", VerbsLayout.diff(fromHeaders, VerbsLayout.embedded()), "embedded table vs C headers");
    }

    @Test
    void shouldPassTheStartUpCheckWhenConstantsMatchTheEmbeddedTable() {
        VerbsLayout.verify();
        assertEquals(VerbsLayout.table().size(), VerbsLayout.embedded().size());
    }

    @Test
    void shouldNameEveryFieldThatDiffers() {
        Map<String, Long> changed = new LinkedHashMap<>(VerbsLayout.table());
        changed.put("ibv_context.ops.post_send", 200L);
        changed.remove("sizeof.ibv_wc");
        String diff = VerbsLayout.diff(VerbsLayout.table(), changed);
        assertTrue(diff.contains("ibv_context.ops.post_send: expected 208, got 200"), diff);
        assertTrue(diff.contains("sizeof.ibv_wc: expected 48, got null"), diff);
        VerbsLayoutException refused = assertThrows(VerbsLayoutException.class, () -> {
            throw new VerbsLayoutException("refusing to start:\n" + diff);
        });
        assertTrue(refused.getMessage().startsWith("refusing to start"));
    }

    private static boolean onPath(String tool) {
        for (String dir : System.getenv().getOrDefault("PATH", "").split(":")) {
            if (Files.isExecutable(Path.of(dir, tool))) {
                return true;
            }
        }
        return false;
    }

    private static String run(Path dir, String... command) throws Exception {
        Process process = new ProcessBuilder(command)
                .directory(dir.toFile())
                .redirectErrorStream(true)
                .start();
        String out = new String(process.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(process.waitFor(30, TimeUnit.SECONDS), "timed out: " + String.join(" ", command));
        assertEquals(0, process.exitValue(), String.join(" ", command) + ":\n" + out);
        return out;
    }

    private static Map<String, Long> parse(String out) {
        Map<String, Long> t = new LinkedHashMap<>();
        for (String line : out.split("\n")) {
            if (!line.isBlank()) {
                String[] parts = line.strip().split("\\s+");
                t.put(parts[0], Long.parseLong(parts[1]));
            }
        }
        return t;
    }
}
