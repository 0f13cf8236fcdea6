package io.pegaflow.transport.tcp;

import io.pegaflow.transport.TransportException;
import java.util.concurrent.atomic.AtomicReferenceArray;

/**
 * The regions registered with one transport, by id. Lookups (the passive side, per descriptor) are a plain array
 * read; registrations and deregistrations are rare and synchronised. Ids of ended registrations are reused, each time
 * with a new key, so a descriptor made for an earlier registration is refused.
 */
final class RegionTable {

    static final int MAX_REGIONS = 1024;

    private final AtomicReferenceArray<TcpRegion> regions = new AtomicReferenceArray<>(MAX_REGIONS);

    /** The live region with this id, or null. */
    TcpRegion get(int regionId) {
        return regionId >= 0 && regionId < MAX_REGIONS ? regions.get(regionId) : null;
    }

    /** A free id; the caller then {@link #put}s the region under the same lock. */
    synchronized int freeId() {
        for (int id = 0; id < MAX_REGIONS; id++) {
            if (regions.get(id) == null) {
                return id;
            }
        }
        throw new TransportException("cannot register more than " + MAX_REGIONS + " regions with one transport");
    }

    synchronized void put(TcpRegion region) {
        regions.set(region.regionId(), region);
    }

    synchronized boolean remove(TcpRegion region) {
        return regions.compareAndSet(region.regionId(), region, null);
    }
}
