package io.pegaflow.gpu;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The hand-written {@code struct stat} offsets and open flags of {@link Posix} against the C headers of this machine:
 * a tiny C program prints them (skips where no C compiler is installed).
 */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class PosixLayoutTest {
    static final String PROGRAM = """
            #define _GNU_SOURCE
            #include <fcntl.h>
            #include <stddef.h>
            #include <stdio.h>
            #include <sys/stat.h>
            int main(void) {
              printf("%zu %zu %zu %zu %zu\\n", sizeof(struct stat), offsetof(struct stat, st_dev),
                     offsetof(struct stat, st_ino), offsetof(struct stat, st_mode), offsetof(struct stat, st_size));
              printf("%d %d %d %d %d %d\\n", O_RDWR, O_NONBLOCK, O_DIRECTORY, O_NOFOLLOW, O_CLOEXEC, O_PATH);
              return 0;
            }
            """;

    @Test
    void shouldMatchTheCHeaders() throws Exception {
        Path dir = Files.createTempDirectory("pegaflow-posix-layout-");
        Path source = dir.resolve("layout.c");
        Path binary = dir.resolve("layout");
        Files.writeString(source, PROGRAM);
        Process cc;
        try {
            cc = new ProcessBuilder("cc", "-o", binary.toString(), source.toString())
                    .redirectErrorStream(true)
                    .start();
        } catch (IOException e) {
            assumeTrue(false, "no C compiler (cc) on this machine: " + e.getMessage());
            return;
        }
        String ccOut = new String(cc.getInputStream().readAllBytes());
        assertEquals(0, cc.waitFor(), ccOut);
        Process run = new ProcessBuilder(binary.toString()).start();
        String[] lines = new String(run.getInputStream().readAllBytes()).trim().split("\n");
        assertEquals(0, run.waitFor());
        assertEquals(
                Posix.STAT_BYTES + " " + Posix.ST_DEV + " " + Posix.ST_INO + " " + Posix.ST_MODE + " " + Posix.ST_SIZE,
                lines[0].trim(),
                "sizeof(struct stat), offsets of st_dev, st_ino, st_mode, st_size");
        assertEquals(
                Posix.O_RDWR + " " + Posix.O_NONBLOCK + " " + Posix.O_DIRECTORY + " " + Posix.O_NOFOLLOW + " "
                        + Posix.O_CLOEXEC + " " + Posix.O_PATH,
                lines[1].trim(),
                "O_RDWR O_NONBLOCK O_DIRECTORY O_NOFOLLOW O_CLOEXEC O_PATH");
        Files.delete(binary);
        Files.delete(source);
        Files.delete(dir);
    }
}
