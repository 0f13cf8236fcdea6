package io.pegaflow.fabric.channel;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * Channel files of node processes that are gone (a node killed with -9) are removed when a node starts; those of live
 * processes, of this process, links and other names stay. Real processes, real files.
 */
@Timeout(60)
class StaleChannelFilesTest {

    private static long exitedPid() throws Exception {
        Process p = new ProcessBuilder("true").start();
        assertTrue(p.waitFor(10, TimeUnit.SECONDS));
        long pid = p.pid();
        assertFalse(ProcessHandle.of(pid).isPresent(), "the process is gone");
        return pid;
    }

    @Test
    void shouldRemoveOnlyTheChannelFilesOfProcessesThatAreGone(@TempDir Path dir) throws Exception {
        long gone = exitedPid();
        long self = ProcessHandle.current().pid();
        Process live = new ProcessBuilder("sleep", "30").start();
        try {
            Path stale = Files.createFile(dir.resolve("pegaflow-chan-" + gone + "-0a1b2c3d-1"));
            Path staleToo = Files.createFile(dir.resolve("pegaflow-chan-" + gone + "-0a1b2c3d-12"));
            Path mine = Files.createFile(dir.resolve("pegaflow-chan-" + self + "-ffffffff-1"));
            Path livePeer = Files.createFile(dir.resolve("pegaflow-chan-" + live.pid() + "-00000000-3"));
            Path otherName = Files.createFile(dir.resolve("pegaflow-chan-" + gone + "-notahex!-1"));
            Path aDirectory = Files.createDirectory(dir.resolve("pegaflow-chan-" + gone + "-0a1b2c3d-2"));
            Path target = Files.createFile(dir.resolve("kept-target"));
            Path link = Files.createSymbolicLink(dir.resolve("pegaflow-chan-" + gone + "-0a1b2c3d-3"), target);

            assertEquals(2, StaleChannelFiles.sweep(dir, self));

            assertFalse(Files.exists(stale));
            assertFalse(Files.exists(staleToo));
            for (Path kept : new Path[] {mine, livePeer, otherName, aDirectory, target}) {
                assertTrue(Files.exists(kept), kept + " kept");
            }
            assertTrue(Files.isSymbolicLink(link), "a link is not followed nor removed");
            assertEquals(0, StaleChannelFiles.sweep(dir, self), "nothing left to remove");
        } finally {
            live.destroyForcibly();
        }
    }

    @Test
    void shouldNotFailWhereTheDirectoryIsMissing(@TempDir Path dir) {
        assertEquals(
                0,
                StaleChannelFiles.sweep(
                        dir.resolve("absent"), ProcessHandle.current().pid()));
    }
}
