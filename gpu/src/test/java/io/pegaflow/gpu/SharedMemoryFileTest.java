package io.pegaflow.gpu;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.RandomAccessFile;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.Comparator;
import java.util.UUID;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Mapping a worker's file with real files, directories, links and a FIFO under a fresh directory in {@code /dev/shm}
 * (the allowed root), and a decoy file outside it.
 */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class SharedMemoryFileTest {
    static final byte INSIDE = 'I';
    static final byte OUTSIDE = 'O';

    Path root;
    Path outside;

    @BeforeEach
    void setUp() throws IOException {
        root = Files.createDirectory(Path.of("/dev/shm", "pegaflow-test-root-" + UUID.randomUUID()));
        outside = Files.createTempDirectory("pegaflow-test-outside-");
        write(outside.resolve("f"), OUTSIDE, 4096);
    }

    @AfterEach
    void tearDown() throws IOException {
        for (Path dir : new Path[] {root, outside}) {
            try (Stream<Path> files = Files.walk(dir)) {
                for (Path p : files.sorted(Comparator.reverseOrder()).toList()) {
                    Files.deleteIfExists(p);
                }
            }
        }
    }

    static void write(Path file, byte value, int size) throws IOException {
        byte[] bytes = new byte[size];
        java.util.Arrays.fill(bytes, value);
        Files.write(file, bytes);
    }

    @Test
    void shouldMapARegularFileBelowTheRootReadWrite() throws IOException {
        Path dir = Files.createDirectories(root.resolve("a/b"));
        write(dir.resolve("kv"), INSIDE, 8192);
        try (SharedMemoryFile file = SharedMemoryFile.mapWithin(root, dir.resolve("kv"))) {
            assertEquals(8192, file.sizeBytes());
            assertEquals(INSIDE, file.memory().get(ValueLayout.JAVA_BYTE, 8191));
            file.memory().set(ValueLayout.JAVA_BYTE, 0, (byte) 7);
            assertNull(file.damage());
        }
        assertEquals(7, Files.readAllBytes(dir.resolve("kv"))[0], "the mapping is shared with the file");
    }

    @Test
    void shouldRefuseALinkAsTheFileEvenOnePointingInside() throws IOException {
        write(root.resolve("real"), INSIDE, 4096);
        Files.createSymbolicLink(root.resolve("to-real"), root.resolve("real"));
        Files.createSymbolicLink(root.resolve("to-outside"), outside.resolve("f"));
        for (String name : new String[] {"to-real", "to-outside"}) {
            IOException e = assertThrows(IOException.class, () -> SharedMemoryFile.mapWithin(root, root.resolve(name)));
            assertTrue(e.getMessage().contains("\"" + name + "\" is a symbolic link"), e.getMessage());
        }
    }

    @Test
    void shouldRefuseALinkAsADirectoryOnTheWay() throws IOException {
        Files.createSymbolicLink(root.resolve("d"), outside);
        IOException e = assertThrows(IOException.class, () -> SharedMemoryFile.mapWithin(root, root.resolve("d/f")));
        assertTrue(e.getMessage().contains("\"d\" is a symbolic link or not a directory"), e.getMessage());
    }

    @Test
    void shouldRefusePathsOutsideTheRootOrClimbingOutOfIt() {
        for (String path : new String[] {
            outside.resolve("f").toString(),
            root + "/../" + root.getFileName() + "/x",
            root + "/./x",
            "relative/x",
            root.toString()
        }) {
            assertThrows(IOException.class, () -> SharedMemoryFile.mapWithin(root, Path.of(path)), path);
        }
    }

    @Test
    void shouldRefuseMissingEmptyAndNonRegularFiles() throws Exception {
        assertThrows(NoSuchFileException.class, () -> SharedMemoryFile.mapWithin(root, root.resolve("missing")));
        Files.createFile(root.resolve("empty"));
        IOException empty =
                assertThrows(IOException.class, () -> SharedMemoryFile.mapWithin(root, root.resolve("empty")));
        assertTrue(empty.getMessage().contains("the file is empty"), empty.getMessage());
        Files.createDirectory(root.resolve("dir"));
        assertThrows(IOException.class, () -> SharedMemoryFile.mapWithin(root, root.resolve("dir")));
        Process mkfifo = new ProcessBuilder("mkfifo", root.resolve("fifo").toString()).start();
        assertEquals(0, mkfifo.waitFor());
        IOException fifo =
                assertThrows(IOException.class, () -> SharedMemoryFile.mapWithin(root, root.resolve("fifo")));
        assertTrue(fifo.getMessage().contains("not a regular file"), fifo.getMessage());
    }

    @Test
    void shouldReportDamageOnceTheFileShrinksAfterMapping() throws IOException {
        write(root.resolve("kv"), INSIDE, 8192);
        try (SharedMemoryFile file = SharedMemoryFile.mapWithin(root, root.resolve("kv"))) {
            assertNull(file.damage());
            try (RandomAccessFile f = new RandomAccessFile(root.resolve("kv").toFile(), "rw")) {
                f.setLength(4096);
            }
            assertEquals("the file shrank to 4096 bytes after it was mapped with 8192", file.damage());
        }
    }

    private static void spin(long nanos) {
        long end = System.nanoTime() + nanos;
        while (System.nanoTime() < end) {
            Thread.onSpinWait();
        }
    }

    /**
     * The attack of the issue: a thread swaps a directory under the root for a link to a directory outside, in a
     * loop, while mappings of a file inside it run. A mapping may fail (the path is a link or missing at that moment)
     * but must never map the outside file.
     */
    @Test
    void shouldNeverMapAFileOutsideWhileADirectoryIsSwappedForALink() throws Exception {
        Path d = root.resolve("d");
        Path parked = root.resolve("d.dir");
        Path link = root.resolve("d.lnk");
        Files.createDirectory(d);
        write(d.resolve("f"), INSIDE, 4096);
        Files.createSymbolicLink(link, outside);
        AtomicBoolean stop = new AtomicBoolean();
        Thread swapper = new Thread(
                () -> {
                    while (!stop.get()) {
                        try {
                            // Each state held for a moment: a mapping's steps then see different states.
                            Files.move(d, parked, StandardCopyOption.ATOMIC_MOVE);
                            Files.move(link, d, StandardCopyOption.ATOMIC_MOVE);
                            spin(20_000);
                            Files.move(d, link, StandardCopyOption.ATOMIC_MOVE);
                            Files.move(parked, d, StandardCopyOption.ATOMIC_MOVE);
                            spin(20_000);
                        } catch (IOException e) {
                            throw new IllegalStateException(e);
                        }
                    }
                },
                "swapper");
        swapper.start();
        int mapped = 0;
        int outsideMapped = 0;
        try {
            for (int i = 0; i < 3000; i++) {
                try (SharedMemoryFile file = SharedMemoryFile.mapWithin(root, d.resolve("f"))) {
                    mapped++;
                    if (file.memory().get(ValueLayout.JAVA_BYTE, 0) != INSIDE) {
                        outsideMapped++;
                    }
                } catch (IOException refused) {
                    // the path was a link or missing at that moment: a refusal is the right answer
                }
            }
        } finally {
            stop.set(true);
            swapper.join(10_000);
        }
        assertEquals(0, outsideMapped, "mappings of the file outside the root (of " + mapped + " mapped)");
        assertTrue(mapped > 0, "no attempt found the directory in place: the race was not exercised");
    }
}
