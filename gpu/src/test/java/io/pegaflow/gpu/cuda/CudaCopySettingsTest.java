package io.pegaflow.gpu.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Map;
import org.junit.jupiter.api.Test;

class CudaCopySettingsTest {
    @Test
    void shouldTakeDefaultsAndOverrides() {
        assertEquals(CudaCopySettings.defaults(), CudaCopySettings.from(Map.of()));
        CudaCopySettings s = CudaCopySettings.from(Map.of(
                "pegaflow.cuda.mode", "memcpy", "pegaflow.cuda.scatter-mode", "Kernel", "pegaflow.cuda.lanes", "3"));
        assertEquals(CudaCopyMode.MEMCPY, s.gatherMode());
        assertEquals(CudaCopyMode.KERNEL, s.scatterMode());
        assertEquals(3, s.lanes());
    }

    @Test
    void shouldChooseTheModePerCopyByDefaultAndStageOnlyWhereAsked() {
        CudaCopySettings d = CudaCopySettings.defaults();
        assertEquals(CudaCopyMode.AUTO, d.gatherMode());
        assertEquals(CudaCopyMode.AUTO, d.scatterMode());
        assertEquals(128 * 1024, d.autoStagedMinBytes());
        assertTrue(d.stages(), "AUTO may stage: the lanes need their ring");
        assertEquals(
                false, d.withModes(CudaCopyMode.KERNEL, CudaCopyMode.MEMCPY).stages());
        CudaCopySettings s = CudaCopySettings.from(Map.of("pegaflow.cuda.auto-staged-min-bytes", "65536"));
        assertEquals(65536, s.autoStagedMinBytes());
        assertEquals(CudaCopyMode.AUTO, CudaCopyMode.parse("Auto"));
        IllegalArgumentException e = assertThrows(
                IllegalArgumentException.class,
                () -> CudaCopySettings.from(Map.of("pegaflow.cuda.auto-staged-min-bytes", "-1")));
        assertEquals("auto-staged-min-bytes: -1 must be >= 0", e.getMessage());
    }

    @Test
    void shouldBatchLargeRunsInAutoModeWhereTheDriverCanAndStageOrUseTheKernelOtherwise() {
        CudaCopySettings d = CudaCopySettings.defaults();
        assertEquals(64 * 1024, d.autoBatchMinBytes());
        assertEquals(
                0,
                CudaCopySettings.from(Map.of("pegaflow.cuda.auto-batch-min-bytes", "0"))
                        .autoBatchMinBytes());
        IllegalArgumentException e = assertThrows(
                IllegalArgumentException.class,
                () -> CudaCopySettings.from(Map.of("pegaflow.cuda.auto-batch-min-bytes", "-5")));
        assertEquals("auto-batch-min-bytes: -5 must be >= 0", e.getMessage());

        // Two 64 KiB runs, apart on the GPU side but one contiguous range on the pool (host) side.
        io.pegaflow.gpu.CopyBatch big = new io.pegaflow.gpu.CopyBatch(4);
        big.add(0, 0, 64 * 1024);
        big.add(1 << 20, 64 * 1024, 64 * 1024);
        assertEquals(CudaCopyMode.BATCH, CudaCopyEngine.autoMode(big, false, 128 * 1024, 64 * 1024));
        assertEquals(CudaCopyMode.STAGED, CudaCopyEngine.autoMode(big, false, 128 * 1024, 0), "batching off");
        // 8 KiB runs (TP 8 with one allocation per layer): below the batch size, the staged/kernel rule decides.
        io.pegaflow.gpu.CopyBatch small = new io.pegaflow.gpu.CopyBatch(4);
        small.add(0, 0, 8192);
        small.add(1 << 20, 8192, 8192);
        assertEquals(CudaCopyMode.KERNEL, CudaCopyEngine.autoMode(small, false, 128 * 1024, 64 * 1024));
    }

    @Test
    void shouldNameTheKeyOfABadValue() {
        IllegalArgumentException e = assertThrows(
                IllegalArgumentException.class,
                () -> CudaCopySettings.from(Map.of("pegaflow.cuda.gather-mode", "dma")));
        assertTrue(
                e.getMessage().startsWith("pegaflow.cuda.gather-mode: copy mode \"dma\" is not one of"),
                e.getMessage());
        e = assertThrows(
                IllegalArgumentException.class, () -> CudaCopySettings.from(Map.of("pegaflow.cuda.lanes", "x")));
        assertTrue(e.getMessage().contains("pegaflow.cuda.lanes"), e.getMessage());
        e = assertThrows(
                IllegalArgumentException.class, () -> CudaCopySettings.from(Map.of("pegaflow.cuda.lanes", "0")));
        assertTrue(e.getMessage().startsWith("lanes: 0 is out of range"), e.getMessage());
    }

    @Test
    void shouldPutTheLanesStreamsAtLowPriorityUnlessToldDefault() {
        assertTrue(CudaCopySettings.defaults().lowPriorityStreams());
        assertFalse(CudaCopySettings.from(Map.of("pegaflow.cuda.stream-priority", "default"))
                .lowPriorityStreams());
        assertTrue(CudaCopySettings.from(Map.of("pegaflow.cuda.stream-priority", " LOW "))
                .lowPriorityStreams());
        IllegalArgumentException e = assertThrows(
                IllegalArgumentException.class,
                () -> CudaCopySettings.from(Map.of("pegaflow.cuda.stream-priority", "high")));
        assertEquals("pegaflow.cuda.stream-priority: \"high\" is neither low nor default", e.getMessage());
    }

    @Test
    void shouldTakeTheGridAndTheStagingRampFromTheirProperties() {
        CudaCopySettings s = CudaCopySettings.from(Map.of(
                "pegaflow.cuda.grid-ctas", "8",
                "pegaflow.cuda.staging-chunk-bytes", String.valueOf(32 << 20),
                "pegaflow.cuda.staging-first-chunk-bytes", String.valueOf(1 << 20)));
        assertEquals(8, s.gridCtas());
        assertEquals(32 << 20, s.stagingChunkBytes());
        assertEquals(1 << 20, s.stagingFirstChunkBytes());
        IllegalArgumentException e = assertThrows(
                IllegalArgumentException.class,
                () -> CudaCopySettings.from(Map.of("pegaflow.cuda.staging-first-chunk-bytes", "1000")));
        assertTrue(e.getMessage().startsWith("staging-first-chunk-bytes: 1000"), e.getMessage());
    }

    @Test
    void shouldSubmitBatchedCopiesOnOneStreamByDefaultAndTakeTheBatchStreamsProperty() {
        assertEquals(1, CudaCopySettings.defaults().batchStreams());
        assertEquals(
                4,
                CudaCopySettings.from(Map.of("pegaflow.cuda.batch-streams", "4"))
                        .batchStreams());
        assertEquals(2, CudaCopySettings.defaults().withBatchStreams(2).batchStreams());
        IllegalArgumentException e = assertThrows(
                IllegalArgumentException.class,
                () -> CudaCopySettings.from(Map.of("pegaflow.cuda.batch-streams", "0")));
        assertEquals("batch-streams: 0 is out of range 1..8", e.getMessage());
        assertThrows(
                IllegalArgumentException.class,
                () -> CudaCopySettings.defaults().withBatchStreams(9));
    }

    @Test
    void shouldMake2dDmasOf32RowsByDefaultAndTakeTheDmaRowsMinProperty() {
        assertEquals(32, CudaCopySettings.defaults().dmaRowsMin());
        assertEquals(
                0,
                CudaCopySettings.from(Map.of("pegaflow.cuda.dma-rows-min", "0")).dmaRowsMin(),
                "off");
        assertEquals(
                32,
                CudaCopySettings.from(Map.of("pegaflow.cuda.dma-rows-min", "32"))
                        .dmaRowsMin());
        assertEquals(8, CudaCopySettings.defaults().withDmaRowsMin(8).dmaRowsMin());
        CudaCopySettings changed = CudaCopySettings.defaults().withGrid(8, 128).withDmaRowsMin(16);
        assertEquals(8, changed.gridCtas(), "a with* keeps the other fields");
        assertEquals(128, changed.threadsPerCta());
        IllegalArgumentException e = assertThrows(
                IllegalArgumentException.class, () -> CudaCopySettings.from(Map.of("pegaflow.cuda.dma-rows-min", "1")));
        assertEquals("dma-rows-min: 1 must be 0 (off) or in 2..1048576", e.getMessage());
    }
}
