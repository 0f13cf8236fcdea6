package io.pegaflow.fabric.engine;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.nio.file.Path;
import java.util.Map;
import org.junit.jupiter.api.Test;

class EngineSettingsTest {
    @Test
    void shouldTakeTheDefaultsForKeysNotSet() {
        EngineSettings s = EngineSettings.from(Map.of());
        assertEquals(EngineSettings.defaults(), s);
        assertEquals(1024, s.copyQueue());
        assertEquals(Path.of("/dev/shm"), s.sharedMemoryDir());
    }

    @Test
    void shouldReadEveryKeyFromProperties() {
        EngineSettings s = EngineSettings.from(Map.of(
                "pegaflow.engine.copy-threads", "3",
                "pegaflow.engine.copy-queue", "10",
                "pegaflow.engine.mapping-threads", "4",
                "pegaflow.engine.mapping-queue", "11",
                "pegaflow.engine.cleanup-threads", "2",
                "pegaflow.engine.cleanup-queue", "12",
                "pegaflow.engine.flag-files-per-context", "13",
                "pegaflow.engine.sessionless-idle-ms", "5000",
                "pegaflow.shm-dir", "/tmp/shm"));
        assertEquals(new EngineSettings(3, 10, 4, 11, 2, 12, 13, Path.of("/tmp/shm"), 5000), s);
    }

    @Test
    void shouldNameTheKeyAndTheRangeOfABadValue() {
        IllegalArgumentException e = assertThrows(
                IllegalArgumentException.class, () -> EngineSettings.from(Map.of("pegaflow.engine.copy-queue", "0")));
        assertEquals("pegaflow.engine.copy-queue: 0 is out of range 1..1048576", e.getMessage());
        e = assertThrows(
                IllegalArgumentException.class,
                () -> EngineSettings.from(Map.of("pegaflow.engine.copy-threads", "many")));
        assertEquals("pegaflow.engine.copy-threads: \"many\" is not a whole number", e.getMessage());
    }
}
