package io.pegaflow.store;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.CompletableFuture;

/**
 * What one save must copy, as parallel arrays (target {@code t}: {@link #entry}, {@link #blockId}, {@link #slots}),
 * and what its reply must wait for: slots it names that another request is copying ({@link #othersTargets}, landed
 * when {@link #othersInFlight} complete). Made by {@link BlockStore#reserveForSave}; handed back once to {@link
 * BlockStore#completeSave}. The arrays are allocated with the first target: a save of sealed blocks allocates none.
 * Confined to the thread that carries the save.
 */
public final class SaveReservation {
    private final int capacity;
    private BlockEntry[] entries;
    private int[] blockIds;
    private int[][] slots;
    private int count;
    private List<BlockStore.SaveTarget> othersTargets = List.of();
    private List<CompletableFuture<Void>> othersInFlight = List.of();

    SaveReservation(int capacity) {
        this.capacity = capacity;
    }

    void add(BlockEntry entry, int blockId, int[] slotsToCopy) {
        if (entries == null) {
            entries = new BlockEntry[capacity];
            blockIds = new int[capacity];
            slots = new int[capacity][];
        }
        entries[count] = entry;
        blockIds[count] = blockId;
        slots[count] = slotsToCopy;
        count++;
    }

    void addOther(BlockStore.SaveTarget target, CompletableFuture<Void> landed) {
        if (othersTargets.isEmpty()) {
            othersTargets = new ArrayList<>();
            othersInFlight = new ArrayList<>();
        }
        othersTargets.add(target);
        othersInFlight.add(landed);
    }

    /** Blocks to copy. */
    public int count() {
        return count;
    }

    public BlockEntry entry(int t) {
        return entries[t];
    }

    /** The worker's block the target copies from. */
    public int blockId(int t) {
        return blockIds[t];
    }

    /** The slots to copy into target {@code t} (shared: read only). */
    public int[] slots(int t) {
        return slots[t];
    }

    /** Slots another request is copying that this save's reply waits for. */
    public List<BlockStore.SaveTarget> othersTargets() {
        return Collections.unmodifiableList(othersTargets);
    }

    public List<CompletableFuture<Void>> othersInFlight() {
        return Collections.unmodifiableList(othersInFlight);
    }

    /** The targets as records (allocates one per block: for tests and diagnostics, not the copy path). */
    public List<BlockStore.SaveTarget> targets() {
        List<BlockStore.SaveTarget> out = new ArrayList<>(count);
        for (int t = 0; t < count; t++) {
            out.add(new BlockStore.SaveTarget(entries[t], blockIds[t], slots[t]));
        }
        return out;
    }
}
