package io.pegaflow.fabric.node;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.pegaflow.store.memory.HostMemory;
import java.util.Map;
import org.junit.jupiter.api.Test;

class PinnedPoolSettingsTest {
    @Test
    void shouldOverlapRegistrationInGibChunksOnTwoThreadsByDefault() {
        PinnedPool.Settings s = PinnedPool.Settings.from(Map.of());
        assertEquals(HostMemory.defaultPopulateThreads(), s.populateThreads());
        assertEquals(2, s.registerThreads());
        assertEquals(1L << 30, s.registerChunkBytes());
        assertTrue(s.overlap());
        assertTrue(s.hugePages());
    }

    @Test
    void shouldTakeEachSettingFromItsProperty() {
        PinnedPool.Settings s = PinnedPool.Settings.from(Map.of(
                "pegaflow.pool.populate-threads", "32",
                "pegaflow.pool.register-threads", " 4 ",
                "pegaflow.pool.register-chunk-bytes", String.valueOf(512L << 20),
                "pegaflow.pool.overlap", "false",
                "pegaflow.pool.huge-pages", "false"));
        assertEquals(new PinnedPool.Settings(32, 4, 512L << 20, false, false), s);
    }

    @Test
    void shouldRefuseBadValuesNamingTheProperty() {
        for (var bad : Map.of(
                        "pegaflow.pool.populate-threads", "0",
                        "pegaflow.pool.register-threads", "many",
                        "pegaflow.pool.register-chunk-bytes", String.valueOf(100L << 20),
                        "pegaflow.pool.overlap", "yes")
                .entrySet()) {
            IllegalArgumentException e = assertThrows(
                    IllegalArgumentException.class,
                    () -> PinnedPool.Settings.from(Map.of(bad.getKey(), bad.getValue())));
            assertTrue(e.getMessage().startsWith(bad.getKey()), e.getMessage());
        }
    }
}
