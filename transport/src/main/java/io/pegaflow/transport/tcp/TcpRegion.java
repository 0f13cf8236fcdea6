package io.pegaflow.transport.tcp;

import io.pegaflow.transport.LocalRegion;
import io.pegaflow.transport.RemoteRegion;
import java.lang.foreign.MemorySegment;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * A region registered with one {@link TcpTransport}. Transfers (local side) and requests served from it (passive
 * side) pin it for their duration, so that it cannot be deregistered while a thread may still touch its memory.
 *
 * <p>Thread-safe: the pin count is atomic, the registration flag volatile (a pin and a deregistration each write
 * their own variable and then read the other's, so at least one of them sees the other and backs off).
 */
final class TcpRegion implements LocalRegion {

    private final TcpTransport owner;
    private final int regionId;
    private final MemorySegment segment;
    private final RemoteRegion description;
    private final AtomicInteger pins = new AtomicInteger();
    private volatile boolean registered = true;

    TcpRegion(TcpTransport owner, String nodeId, int regionId, MemorySegment segment, long key) {
        this.owner = owner;
        this.regionId = regionId;
        this.segment = segment;
        this.description = new RemoteRegion(nodeId, regionId, segment.address(), segment.byteSize(), key);
    }

    @Override
    public int regionId() {
        return regionId;
    }

    @Override
    public MemorySegment segment() {
        return segment;
    }

    @Override
    public RemoteRegion describe() {
        return description;
    }

    long key() {
        return description.remoteKey();
    }

    boolean belongsTo(TcpTransport transport) {
        return owner == transport;
    }

    /** Pins the region for one transfer or request; false (and no pin) if it is no longer registered. */
    boolean pin() {
        pins.incrementAndGet();
        if (!registered) {
            pins.decrementAndGet();
            return false;
        }
        return true;
    }

    void unpin() {
        pins.decrementAndGet();
    }

    boolean isRegistered() {
        return registered;
    }

    /** Ends the registration unless the region is pinned; true if it ended. */
    boolean tryDeregister() {
        registered = false;
        if (pins.get() > 0) {
            registered = true;
            return false;
        }
        return true;
    }

    @Override
    public String toString() {
        return "TcpRegion[id=" + regionId + ", bytes=" + segment.byteSize() + "]";
    }
}
