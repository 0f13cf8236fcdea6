package io.pegaflow.store;

/**
 * How one block of a namespace sits in the pool: slots of {@code slotBytes}, all contiguous so the block moves as one
 * piece (cross-node transfers copy it whole).
 *
 * <p>Split layers (each TP rank holds its own KV heads): {@code totalLayers * tpSize} slots, rank-major, slot (layer,
 * rank) at {@code (rank * totalLayers + layer) * slotBytes}: one rank's bytes of every layer are one contiguous
 * {@link #rankBytes()} range, so a save or load of any TP size moves large contiguous pool runs (layer-major order
 * cut each rank's share into {@code totalLayers} pieces strided by {@code tpSize} slots).
 *
 * <p>Replicated layers (MLA: identical on every rank): {@code totalLayers} slots, slot (layer, any rank) at {@code
 * layer * slotBytes}; the first rank that saves a block copies them, the others find them in flight or arrived. Such a
 * block does not depend on the TP size: instances of any TP size share it.
 *
 * <p>Fixed by the namespace's first registration; every later one must match.
 */
public record NamespaceLayout(String namespace, int totalLayers, int tpSize, long slotBytes, boolean replicated) {
    /** A layout of split layers. */
    public NamespaceLayout(String namespace, int totalLayers, int tpSize, long slotBytes) {
        this(namespace, totalLayers, tpSize, slotBytes, false);
    }

    /** Ranks with slots of their own: 1 when the layers are replicated. */
    public int rankSections() {
        return replicated ? 1 : tpSize;
    }

    public int slotCount() {
        return totalLayers * rankSections();
    }

    public long blockBytes() {
        return slotCount() * slotBytes;
    }

    /** Bytes of one rank's slots (all its layers) in a block: contiguous. */
    public long rankBytes() {
        return totalLayers * slotBytes;
    }

    public int slotIndex(int layer, int tpRank) {
        return replicated ? layer : tpRank * totalLayers + layer;
    }

    public long slotOffset(int layer, int tpRank) {
        return slotIndex(layer, tpRank) * slotBytes;
    }

    /** The layer a slot holds. */
    public int layerOfSlot(int slot) {
        return slot % totalLayers;
    }

    /** Describes the difference from {@code other}, or null when both lay blocks out the same way. */
    public String mismatch(NamespaceLayout other) {
        if (totalLayers != other.totalLayers) {
            return "total_layers " + other.totalLayers + " differs from the namespace's " + totalLayers;
        }
        if (tpSize != other.tpSize && !(replicated && other.replicated)) { // replicated blocks do not depend on it
            return "tp_size " + other.tpSize + " differs from the namespace's " + tpSize;
        }
        if (slotBytes != other.slotBytes) {
            return "bytes per block per layer " + other.slotBytes + " differ from the namespace's " + slotBytes;
        }
        if (replicated != other.replicated) {
            return (other.replicated ? "replicated" : "split") + " layers, but the namespace's are "
                    + (replicated ? "replicated" : "split") + " across TP ranks";
        }
        return null;
    }
}
