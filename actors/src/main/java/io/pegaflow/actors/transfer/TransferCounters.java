package io.pegaflow.actors.transfer;

import java.util.concurrent.atomic.LongAdder;

/**
 * The transfer coordinator's counters, written by the coordinator and read by the node's metrics sampler (any
 * thread). Monotonic.
 */
public final class TransferCounters {
    public final LongAdder fetchesStarted = new LongAdder();
    public final LongAdder fetchesFailed = new LongAdder();
    public final LongAdder blocksFetched = new LongAdder();
    public final LongAdder blocksFailed = new LongAdder();
    public final LongAdder bytesFetched = new LongAdder();
    /** Fetches refused because too many were in flight. */
    public final LongAdder refusedBusy = new LongAdder();
    /** Transfers the transport refused with {@code BACK_PRESSURED}. */
    public final LongAdder backPressured = new LongAdder();

    public final LongAdder transferFailures = new LongAdder();
    public final LongAdder leaseFailures = new LongAdder();
    /** Holder side: leases granted to peers and refused (nothing held). */
    public final LongAdder leasesGranted = new LongAdder();

    public final LongAdder leasesRefused = new LongAdder();
}
