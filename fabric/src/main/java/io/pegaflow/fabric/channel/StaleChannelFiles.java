package io.pegaflow.fabric.channel;

import java.io.IOException;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Removes the command-channel files that node processes which are gone left behind: a node stopped normally removes
 * its own, one killed with -9 cannot. A file is removed only if its name is a channel file's ({@code
 * pegaflow-chan-<pid>-<8 hex>-<n>}), it is a regular file (not a link), and no process with that pid is alive;
 * a file of a live process, of this process or of another user (the sticky /dev/shm refuses) is left alone. Clients
 * that still map a removed file keep their mapping. Runs once, when a node starts.
 */
final class StaleChannelFiles {
    private static final Logger log = LoggerFactory.getLogger(StaleChannelFiles.class);
    static final Pattern NAME = Pattern.compile("pegaflow-chan-(\\d{1,10})-[0-9a-f]{8}-\\d{1,19}");

    private StaleChannelFiles() {}

    /** Removes the stale channel files in {@code dir}; returns how many. Never throws. */
    static int sweep(Path dir, long selfPid) {
        int removed = 0;
        try (DirectoryStream<Path> files = Files.newDirectoryStream(dir, "pegaflow-chan-*")) {
            for (Path file : files) {
                Matcher m = NAME.matcher(file.getFileName().toString());
                if (!m.matches() || !Files.isRegularFile(file, LinkOption.NOFOLLOW_LINKS)) {
                    continue;
                }
                long pid = Long.parseLong(m.group(1));
                if (pid == selfPid || ProcessHandle.of(pid).isPresent()) {
                    continue;
                }
                try {
                    Files.deleteIfExists(file);
                    removed++;
                } catch (IOException e) {
                    log.debug("command channel file {} of gone process {} not removed: {}", file, pid, e.toString());
                }
            }
        } catch (IOException | RuntimeException e) {
            log.debug("stale command channel files in {} not swept: {}", dir, e.toString());
        }
        if (removed > 0) {
            log.info("removed {} command channel file(s) in {} left by node processes that are gone", removed, dir);
        }
        return removed;
    }
}
