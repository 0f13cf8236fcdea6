package io.pegaflow.gpu.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;

import io.pegaflow.gpu.CopyBatch;
import org.junit.jupiter.api.Test;

/**
 * Measures, without a GPU, what one TP rank's save of 10K tokens of Llama-3.1-8B (625 blocks x 32 layers, 2 MiB pool
 * blocks) asks of the staged copy's DMA engines under the two pool block layouts, and what AUTO picks for each.
 * The batches are built the way the engine builds them (per block, per layer, in pool order); the plan runs over
 * fake addresses (only counted, never dereferenced).
 *
 * <p>Result (TP 4): layer-major slots (layer x tp + rank) cut each rank's share into 20,000 DMAs of 16 KiB, the
 * diagnosis of issue [7 of 12] (staged 13.5% of the link at 16 KiB per DMA); rank-major slots (rank x layers + layer)
 * give 625 DMAs of 512 KiB, one per block.
 */
class TpLayoutDmaTest {
    static final int BLOCKS = 625;
    static final int LAYERS = 32;
    static final long TP1_LAYER_BYTES = 64 * 1024;
    static final long POOL = 0x7000_0000_0000L;
    static final long GPU = 0x1000_0000_0000L;
    static final long RING = 0x2000_0000_0000L;
    static final long CHUNK = 16L << 20;

    /** One rank's save: GPU (one allocation per layer, block ids spread) to the pool, as SaveOperation adds runs. */
    static CopyBatch rankSave(int tpSize, int rank, boolean rankMajor) {
        long slot = TP1_LAYER_BYTES / tpSize;
        long blockBytes = LAYERS * TP1_LAYER_BYTES;
        long layerAllocation = 4096 * slot;
        CopyBatch batch = new CopyBatch(BLOCKS * LAYERS);
        for (int b = 0; b < BLOCKS; b++) {
            long poolBlock = POOL + (long) b * blockBytes; // the pool hands out adjacent blocks
            int blockId = (b * 7) % 4096;
            for (int l = 0; l < LAYERS; l++) {
                int slotIndex = rankMajor ? rank * LAYERS + l : l * tpSize + rank;
                batch.add(GPU + l * layerAllocation + blockId * slot, poolBlock + slotIndex * slot, slot);
            }
        }
        return batch;
    }

    private static int stagedDmas(CopyBatch batch) {
        CopyPlan plan = new CopyPlan();
        long[] ring = {RING, RING + CHUNK, RING + 2 * CHUNK, RING + 3 * CHUNK};
        plan.planStaged(batch, new long[] {0}, new long[] {0}, false, ring, CHUNK, 64 * 1024);
        return plan.dmaCount;
    }

    @Test
    void shouldCutEachRanksShareIntoOneDmaPerLayerWithLayerMajorSlots() {
        CopyBatch batch = rankSave(4, 1, false);
        assertEquals(BLOCKS * LAYERS, batch.contiguousRanges(false), "pool-side ranges");
        assertEquals(BLOCKS * LAYERS, stagedDmas(batch));
        assertEquals(16 * 1024, batch.totalBytes() / stagedDmas(batch), "bytes per DMA");
        assertEquals(CudaCopyMode.KERNEL, CudaCopyEngine.autoMode(batch, false, 128 * 1024));
    }

    @Test
    void shouldMoveEachRanksShareOfABlockAsOneDmaWithRankMajorSlots() {
        for (int tp : new int[] {2, 4, 8}) {
            CopyBatch batch = rankSave(tp, tp - 1, true);
            assertEquals(BLOCKS, batch.contiguousRanges(false), "TP " + tp + ": pool-side ranges");
            int dmas = stagedDmas(batch);
            // A 16 MiB staging chunk may end inside a block's share: at most one extra DMA per chunk.
            long chunks = (batch.totalBytes() + CHUNK - 1) / CHUNK;
            assertEquals(true, dmas >= BLOCKS && dmas <= BLOCKS + chunks, "TP " + tp + ": " + dmas + " DMAs");
            assertEquals(LAYERS * TP1_LAYER_BYTES / tp, batch.totalBytes() / BLOCKS, "TP " + tp + ": bytes per block");
            assertEquals(CudaCopyMode.STAGED, CudaCopyEngine.autoMode(batch, false, 128 * 1024), "TP " + tp);
        }
    }

    @Test
    void shouldMergeTp1BlocksThatAreAdjacentInThePoolIntoOneRangeAndStageThem() {
        CopyBatch batch = rankSave(1, 0, true);
        assertEquals(1, batch.contiguousRanges(false), "adjacent pool blocks form one range");
        assertEquals(CudaCopyMode.STAGED, CudaCopyEngine.autoMode(batch, false, 128 * 1024));
    }

    @Test
    void shouldCountTheHostSideOfALoadFromTheSource() {
        CopyBatch load = new CopyBatch(4);
        load.add(POOL, GPU, 4096);
        load.add(POOL + 4096, GPU + 65536, 4096); // pool continues, GPU does not: one host range
        load.add(POOL + (1 << 20), GPU + 8192, 4096);
        assertEquals(2, load.contiguousRanges(true));
        assertEquals(3, load.contiguousRanges(false));
        assertEquals(CudaCopyMode.KERNEL, CudaCopyEngine.autoMode(load, true, 8192));
        assertEquals(CudaCopyMode.STAGED, CudaCopyEngine.autoMode(load, true, 6144));
    }
}
