package io.pegaflow.rdma;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import org.junit.jupiter.api.Test;

class RdmaSettingsTest {

    @Test
    void shouldUseEachNicsOwnQueuePairsAndDepthAndTheSettingsValuesForTheRest() {
        RdmaSettings s = RdmaSettings.of("mlx5_0", 1, 3)
                .withNics(List.of(new RdmaNic("mlx5_0", 1, 3, 4, 1024), new RdmaNic("mlx5_1", 1, 3)));

        assertEquals(4, s.qpsPerPeer(0));
        assertEquals(1024, s.queueDepth(0));
        assertEquals(RdmaSettings.DEFAULT_QPS_PER_PEER, s.qpsPerPeer(1));
        assertEquals(RdmaSettings.DEFAULT_QUEUE_DEPTH, s.queueDepth(1));
        assertEquals(4 + RdmaSettings.DEFAULT_QPS_PER_PEER, s.totalQpsPerPeer());
        assertEquals(1024, s.maxQueueDepth());
    }

    @Test
    void shouldRefuseANicQueuePairCountOrDepthOutOfRangeNamingTheField() {
        IllegalArgumentException qps =
                assertThrows(IllegalArgumentException.class, () -> new RdmaNic("mlx5_0", 1, 3, 65, 0));
        assertTrue(
                qps.getMessage().startsWith("qpsPerPeer must be 0 (the settings' value) or in [1, 64]"),
                qps.getMessage());
        IllegalArgumentException depth =
                assertThrows(IllegalArgumentException.class, () -> new RdmaNic("mlx5_0", 1, 3, 0, 2));
        assertTrue(
                depth.getMessage().contains("queueDepth must be 0 (the settings' value) or in [4, 16384], got 2"),
                depth.getMessage());
    }
}
