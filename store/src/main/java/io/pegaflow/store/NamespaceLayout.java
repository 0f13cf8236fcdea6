package io.pegaflow.store;

/**
 * How one block of a namespace sits in the pool: {@code totalLayers * tpSize} slots of {@code slotBytes}, slot
 * (layer, rank) at {@code (layer * tpSize + rank) * slotBytes}, all contiguous so the block moves as one piece.
 * Fixed by the namespace's first registration; every later one must match.
 */
public record NamespaceLayout(String namespace, int totalLayers, int tpSize, long slotBytes) {
    public int slotCount() {
        return totalLayers * tpSize;
    }

    public long blockBytes() {
        return slotCount() * slotBytes;
    }

    public int slotIndex(int layer, int tpRank) {
        return layer * tpSize + tpRank;
    }

    public long slotOffset(int layer, int tpRank) {
        return slotIndex(layer, tpRank) * slotBytes;
    }

    /** Describes the difference from {@code other}, or null when both lay blocks out the same way. */
    public String mismatch(NamespaceLayout other) {
        if (totalLayers != other.totalLayers) {
            return "total_layers " + other.totalLayers + " differs from the namespace's " + totalLayers;
        }
        if (tpSize != other.tpSize) {
            return "tp_size " + other.tpSize + " differs from the namespace's " + tpSize;
        }
        if (slotBytes != other.slotBytes) {
            return "bytes per block per layer " + other.slotBytes + " differ from the namespace's " + slotBytes;
        }
        return null;
    }
}
