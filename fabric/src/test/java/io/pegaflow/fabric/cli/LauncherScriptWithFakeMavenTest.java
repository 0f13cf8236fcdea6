package io.pegaflow.fabric.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.FileTime;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * The real {@code ./pegaflow} script in a scratch checkout, with a fake Maven and a fake JDK on its path: a real build
 * would take minutes and rebuild this very project from inside its own test. The fakes record how they were called;
 * the fake Maven "builds" by writing the jar.
 */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class LauncherScriptWithFakeMavenTest {
    /** Surefire runs in fabric/; the launcher sits at the checkout's root. */
    private static final Path SCRIPT = Path.of("../pegaflow");

    @TempDir
    Path root;

    private Path jar;

    @BeforeEach
    void scratchCheckout() throws IOException {
        Files.copy(SCRIPT, root.resolve("pegaflow"));
        executable(root.resolve("pegaflow"));
        write("pom.xml", "<project/>");
        write("store/pom.xml", "<project/>");
        write("store/src/main/java/Store.java", "class Store {}");
        write("store/src/test/java/StoreTest.java", "class StoreTest {}");
        write("jdk/bin/javac", "#!/bin/sh\nexit 0\n");
        write("jdk/bin/java", """
                #!/bin/sh
                if [ "$1" = "-XshowSettings:properties" ]; then echo "    java.specification.version = 25" >&2; exit 0; fi
                echo "$*" >> "$(dirname "$0")/../../java.log"
                echo "picocli help from the JVM"
                """);
        write("bin/mvn", """
                #!/bin/sh
                echo "$*" >> mvn.log
                mkdir -p fabric/target/lib && touch fabric/target/pegaflow-fabric.jar
                """);
        for (String tool : List.of("jdk/bin/javac", "jdk/bin/java", "bin/mvn")) {
            executable(root.resolve(tool));
        }
        Files.createDirectories(root.resolve("tmp"));
        jar = root.resolve("fabric/target/pegaflow-fabric.jar");
    }

    @Test
    void shouldBuildOnFirstUseThenRunTheJvmCommand() throws Exception {
        Run run = pegaflow("node", "--help");
        assertEquals(0, run.code(), run.toString());
        assertEquals(
                List.of("pegaflow: building (first use, no fabric/target/pegaflow-fabric.jar yet; about 1-2 minutes"
                        + " cold)..."),
                run.err());
        assertEquals(List.of("-B -ntp -Dstyle.color=never -q -DskipTests install"), log("mvn.log"));
        assertTrue(log("java.log").getFirst().endsWith("io.pegaflow.fabric.cli.Main node --help"), run.toString());
    }

    @Test
    void shouldRebuildWithOneNoteWhenAMainSourceIsNewerThanTheJar() throws Exception {
        builtAt(Instant.now().minusSeconds(60));
        Files.setLastModifiedTime(root.resolve("store/src/main/java/Store.java"), FileTime.from(Instant.now()));
        Run run = pegaflow("status");
        assertEquals(0, run.code(), run.toString());
        assertEquals(
                List.of("pegaflow: building (store/src/main/java/Store.java is newer than"
                        + " fabric/target/pegaflow-fabric.jar; about 1-2 minutes cold)..."),
                run.err());
        assertEquals(1, log("mvn.log").size());
        assertEquals(List.of("picocli help from the JVM"), run.out());
    }

    @Test
    void shouldRebuildWhenAPomIsNewerThanTheJar() throws Exception {
        builtAt(Instant.now().minusSeconds(60));
        Files.setLastModifiedTime(root.resolve("pom.xml"), FileTime.from(Instant.now()));
        Run run = pegaflow("status");
        assertTrue(run.err().getFirst().startsWith("pegaflow: building (pom.xml is newer"), run.toString());
        assertEquals(1, log("mvn.log").size());
    }

    @Test
    void shouldRunTheJarWithoutBuildingWhenNoMainSourceIsNewer() throws Exception {
        Instant built = Instant.now();
        builtAt(built);
        // A test source changes nothing in the jar.
        Files.setLastModifiedTime(
                root.resolve("store/src/test/java/StoreTest.java"), FileTime.from(built.plusSeconds(5)));
        Run run = pegaflow("demo", "--timeout-s", "5");
        assertEquals(0, run.code(), run.toString());
        assertEquals(List.of(), run.err());
        assertFalse(Files.exists(root.resolve("mvn.log")));
        assertTrue(
                log("java.log").getFirst().endsWith("Main demo --timeout-s 5"),
                log("java.log").toString());
    }

    @Test
    void shouldGiveTestAndBuildTheirOwnHelpWithoutRunningMaven() throws Exception {
        Run test = pegaflow("test", "--help");
        assertEquals(0, test.code(), test.toString());
        assertEquals("Usage: ./pegaflow test [MAVEN_ARGS...]", test.out().getFirst());
        assertTrue(String.join("\n", test.out()).contains("passed to Maven as they are"), test.toString());
        Run build = pegaflow("build", "-h");
        assertEquals("Usage: ./pegaflow build [MAVEN_ARGS...]", build.out().getFirst());
        assertEquals(pegaflow("help", "test").out(), test.out());
        assertFalse(Files.exists(root.resolve("mvn.log")));
    }

    @Test
    void shouldListTheLauncherCommandsAfterTheJvmHelp() throws Exception {
        builtAt(Instant.now());
        Run run = pegaflow("--help");
        assertEquals(0, run.code(), run.toString());
        assertEquals("picocli help from the JVM", run.out().getFirst());
        String help = String.join("\n", run.out());
        assertTrue(help.contains("\n  test    Run the whole test suite"), help);
        assertTrue(help.contains("\n  build   (Re)build the Java modules"), help);
        assertEquals(
                List.of("--help"),
                log("java.log").stream()
                        .map(l -> l.substring(l.lastIndexOf(' ') + 1))
                        .toList());
    }

    private void builtAt(Instant time) throws IOException {
        Files.createDirectories(root.resolve("fabric/target/lib"));
        Files.write(jar, new byte[0]);
        Files.setLastModifiedTime(jar, FileTime.from(time));
        for (String source : List.of("pom.xml", "store/pom.xml", "store/src/main/java/Store.java")) {
            Files.setLastModifiedTime(root.resolve(source), FileTime.from(time.minusSeconds(30)));
        }
    }

    private record Run(int code, List<String> out, List<String> err) {}

    private Run pegaflow(String... args) throws Exception {
        List<String> command =
                new ArrayList<>(List.of("bash", root.resolve("pegaflow").toString()));
        command.addAll(List.of(args));
        ProcessBuilder builder = new ProcessBuilder(command).directory(root.toFile());
        builder.environment().put("JAVA_HOME", root.resolve("jdk").toString());
        builder.environment().put("PATH", root.resolve("bin") + ":" + System.getenv("PATH"));
        builder.environment().put("TMPDIR", root.resolve("tmp").toString());
        builder.environment().remove("PEGAFLOW_JVM_OPTS");
        // The scratch checkout has no python/: name a Python so `demo` does not try to build a .venv there (and the
        // test does not depend on whether Maven was started by ./pegaflow test, which exports its own).
        builder.environment().put("PEGAFLOW_PYTHON", "/bin/true");
        Path out = root.resolve("out.txt");
        Path err = root.resolve("err.txt");
        Process process = builder.redirectOutput(out.toFile())
                .redirectError(err.toFile())
                .redirectInput(ProcessBuilder.Redirect.from(new java.io.File("/dev/null")))
                .start();
        if (!process.waitFor(30, TimeUnit.SECONDS)) {
            process.destroyForcibly();
            throw new AssertionError("./pegaflow " + String.join(" ", args) + " did not finish in 30 s");
        }
        return new Run(process.exitValue(), lines(out), lines(err));
    }

    private List<String> log(String name) throws IOException {
        return lines(root.resolve(name));
    }

    private static List<String> lines(Path file) throws IOException {
        return Files.exists(file) ? Files.readAllLines(file, StandardCharsets.UTF_8) : List.of();
    }

    private void write(String path, String text) throws IOException {
        Path file = root.resolve(path);
        Files.createDirectories(file.getParent());
        Files.writeString(file, text);
    }

    private static void executable(Path file) throws IOException {
        Files.setPosixFilePermissions(file, PosixFilePermissions.fromString("rwxr-xr-x"));
    }
}
