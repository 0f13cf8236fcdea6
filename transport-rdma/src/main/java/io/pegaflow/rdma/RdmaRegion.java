package io.pegaflow.rdma;

import io.pegaflow.transport.LocalRegion;
import io.pegaflow.transport.RemoteRegion;
import java.lang.foreign.MemorySegment;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * A region registered with every NIC of one transport, as chunks of at most {@link #chunkBytes} (the devices'
 * {@code max_mr_size} or the settings' limit): {@code lkeys[nic][chunk]}, {@code rkeys[nic][chunk]}. A work request
 * never crosses a chunk boundary. Peers reach it through {@link #describe()} (a random per-registration key, so a
 * description of an earlier registration is refused) and the rkeys the side channel announced.
 *
 * <p>Thread-safe: immutable but for the pin count (transfers in flight pin their local regions; deregistration needs
 * none pinned and then retires the region for good).
 */
final class RdmaRegion implements LocalRegion {
    final RdmaTransport owner;
    private final int id;
    private final MemorySegment segment;
    final long key;
    final long chunkBytes;
    final MemorySegment[][] mrs;
    final int[][] lkeys;
    final int[][] rkeys;
    private final String nodeId;
    private final AtomicInteger pins = new AtomicInteger();

    RdmaRegion(
            RdmaTransport owner,
            String nodeId,
            int id,
            MemorySegment segment,
            long key,
            long chunkBytes,
            MemorySegment[][] mrs,
            int[][] lkeys,
            int[][] rkeys) {
        this.owner = owner;
        this.nodeId = nodeId;
        this.id = id;
        this.segment = segment;
        this.key = key;
        this.chunkBytes = chunkBytes;
        this.mrs = mrs;
        this.lkeys = lkeys;
        this.rkeys = rkeys;
    }

    @Override
    public int regionId() {
        return id;
    }

    @Override
    public MemorySegment segment() {
        return segment;
    }

    @Override
    public RemoteRegion describe() {
        return new RemoteRegion(nodeId, id, segment.address(), segment.byteSize(), key);
    }

    Handshake.RegionAdvert advert() {
        return new Handshake.RegionAdvert(id, key, segment.address(), segment.byteSize(), chunkBytes, rkeys);
    }

    boolean isRegistered() {
        return pins.get() >= 0;
    }

    /** Pins the region for one transfer; false once it is deregistered. */
    boolean pin() {
        for (; ; ) {
            int p = pins.get();
            if (p < 0) {
                return false;
            }
            if (pins.compareAndSet(p, p + 1)) {
                return true;
            }
        }
    }

    void unpin() {
        pins.decrementAndGet();
    }

    /** Retires the region if no transfer pins it; after this no transfer can pin it again. */
    boolean retire() {
        return pins.compareAndSet(0, -1);
    }
}
