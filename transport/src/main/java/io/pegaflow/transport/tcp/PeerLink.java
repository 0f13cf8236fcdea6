package io.pegaflow.transport.tcp;

import io.pegaflow.transport.PeerAddress;
import io.pegaflow.transport.PeerCounters;
import io.pegaflow.transport.PeerState;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * What every thread of a transport shares about one peer: its address, its state, its in-flight count (the
 * back-pressure bound) and its counters. The connection itself belongs to the I/O thread ({@link ClientConnection}).
 */
final class PeerLink {

    final int index;
    final PeerAddress address;
    final PeerCounters counters = new PeerCounters();
    /** Transfers claimed and not yet completed; a submission that would pass the bound is refused. */
    final AtomicInteger inFlight = new AtomicInteger();

    volatile PeerState state = PeerState.CONNECTING;
    /** Set by the I/O thread when the connection is lost; the connector dials again and clears it. */
    volatile boolean needsConnect = true;
    /** Why the last connection ended, for the connector's log line. */
    volatile String lossReason;

    // Connector thread only.
    long nextAttemptNanos;
    long backoffMs = 10;

    PeerLink(int index, PeerAddress address) {
        this.index = index;
        this.address = address;
    }

    String nodeId() {
        return address.nodeId();
    }
}
