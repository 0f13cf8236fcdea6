package io.pegaflow.transport;

import java.lang.foreign.MemorySegment;

/**
 * Local memory registered with one transport ({@link Transport#registerRegion}): the only memory transfers move bytes
 * into or out of. Registration is a control-path operation, done once per pool (RDMA pins and registers the memory
 * with the NIC, which is slow); descriptors then name a region and an offset inside it.
 *
 * <p>Thread-safe; an immutable handle.
 */
public interface LocalRegion {

    /** The region's id on this node, unique among this transport's live registrations. */
    int regionId();

    /** The registered memory (native, from a shared or global arena). */
    MemorySegment segment();

    /** The region's length, {@code segment().byteSize()}. */
    default long lengthBytes() {
        return segment().byteSize();
    }

    /** The plain-values description peers use to name this region in their descriptors. */
    RemoteRegion describe();

    /** Whether {@code [offset, offset + length)} lies inside this region. */
    default boolean contains(long offset, long length) {
        return offset >= 0 && length > 0 && offset <= lengthBytes() - length;
    }
}
