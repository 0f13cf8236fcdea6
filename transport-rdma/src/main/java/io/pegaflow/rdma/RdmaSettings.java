package io.pegaflow.rdma;

import java.util.List;

/**
 * The RDMA transport's hardware settings, beside the {@link io.pegaflow.transport.TransportSettings} every transport
 * takes.
 *
 * @param nics the NIC ports to use (at least one); a transfer is striped over every NIC's queue pairs to a peer
 * @param qpsPerPeer RC queue pairs per peer per NIC (one QP flow tops out well below a 400G NIC's line rate), for
 *     the NICs that do not give their own ({@link RdmaNic#qpsPerPeer()})
 * @param queueDepth send work requests each queue pair may have outstanding (its preallocated WR ring), for the NICs
 *     that do not give their own ({@link RdmaNic#queueDepth()})
 * @param stripeMinBytes a transfer smaller than this goes to one queue pair; larger ones are split across all of
 *     the peer's queue pairs in runs of at least this size
 * @param maxRegistrationBytes the longest single memory registration (0: the device's {@code max_mr_size}); a longer
 *     region is registered as several, and no work request crosses two
 * @param ackTimeoutExponent the RC local ACK timeout, 4.096 µs × 2^value (14: about 67 ms)
 * @param retryCount RC transport retries before a work request fails with a retry error (dead peer), 0..7
 */
public record RdmaSettings(
        List<RdmaNic> nics,
        int qpsPerPeer,
        int queueDepth,
        long stripeMinBytes,
        long maxRegistrationBytes,
        int ackTimeoutExponent,
        int retryCount) {

    public static final int DEFAULT_QPS_PER_PEER = 2;
    public static final int DEFAULT_QUEUE_DEPTH = 256;
    public static final long DEFAULT_STRIPE_MIN_BYTES = 256 * 1024;

    public RdmaSettings {
        nics = List.copyOf(nics);
        if (nics.isEmpty()) {
            throw new IllegalArgumentException("nics must name at least one NIC");
        }
        if (qpsPerPeer < 1 || qpsPerPeer > 64) {
            throw new IllegalArgumentException("qpsPerPeer must be in [1, 64], got " + qpsPerPeer);
        }
        if (queueDepth < 4 || queueDepth > 16_384) {
            throw new IllegalArgumentException("queueDepth must be in [4, 16384], got " + queueDepth);
        }
        if (stripeMinBytes < 1) {
            throw new IllegalArgumentException("stripeMinBytes must be >= 1, got " + stripeMinBytes);
        }
        if (maxRegistrationBytes < 0 || (maxRegistrationBytes > 0 && maxRegistrationBytes < 4096)) {
            throw new IllegalArgumentException(
                    "maxRegistrationBytes must be 0 (device limit) or >= 4096, got " + maxRegistrationBytes);
        }
        if (ackTimeoutExponent < 1 || ackTimeoutExponent > 31) {
            throw new IllegalArgumentException("ackTimeoutExponent must be in [1, 31], got " + ackTimeoutExponent);
        }
        if (retryCount < 0 || retryCount > 7) {
            throw new IllegalArgumentException("retryCount must be in [0, 7], got " + retryCount);
        }
    }

    /** One NIC port with the default queue pairs (2 per peer), depth (256) and timeouts. */
    public static RdmaSettings of(String device, int port, int gidIndex) {
        return new RdmaSettings(
                List.of(new RdmaNic(device, port, gidIndex)),
                DEFAULT_QPS_PER_PEER,
                DEFAULT_QUEUE_DEPTH,
                DEFAULT_STRIPE_MIN_BYTES,
                0,
                14,
                7);
    }

    /** Queue pairs per peer on NIC {@code nic} (its own value, else {@link #qpsPerPeer()}). */
    public int qpsPerPeer(int nic) {
        int own = nics.get(nic).qpsPerPeer();
        return own == 0 ? qpsPerPeer : own;
    }

    /** Queue depth on NIC {@code nic} (its own value, else {@link #queueDepth()}). */
    public int queueDepth(int nic) {
        int own = nics.get(nic).queueDepth();
        return own == 0 ? queueDepth : own;
    }

    /** Queue pairs per peer over every NIC: the most parts one transfer is striped into. */
    public int totalQpsPerPeer() {
        int total = 0;
        for (int n = 0; n < nics.size(); n++) {
            total += qpsPerPeer(n);
        }
        return total;
    }

    /** The deepest queue pair of any NIC. */
    public int maxQueueDepth() {
        int max = 0;
        for (int n = 0; n < nics.size(); n++) {
            max = Math.max(max, queueDepth(n));
        }
        return max;
    }

    public RdmaSettings withNics(List<RdmaNic> newNics) {
        return new RdmaSettings(
                newNics, qpsPerPeer, queueDepth, stripeMinBytes, maxRegistrationBytes, ackTimeoutExponent, retryCount);
    }

    public RdmaSettings withQpsPerPeer(int qps) {
        return new RdmaSettings(
                nics, qps, queueDepth, stripeMinBytes, maxRegistrationBytes, ackTimeoutExponent, retryCount);
    }

    public RdmaSettings withQueueDepth(int depth) {
        return new RdmaSettings(
                nics, qpsPerPeer, depth, stripeMinBytes, maxRegistrationBytes, ackTimeoutExponent, retryCount);
    }

    public RdmaSettings withStripeMinBytes(long bytes) {
        return new RdmaSettings(
                nics, qpsPerPeer, queueDepth, bytes, maxRegistrationBytes, ackTimeoutExponent, retryCount);
    }

    public RdmaSettings withMaxRegistrationBytes(long bytes) {
        return new RdmaSettings(nics, qpsPerPeer, queueDepth, stripeMinBytes, bytes, ackTimeoutExponent, retryCount);
    }

    public RdmaSettings withTimeouts(int ackTimeoutExp, int retries) {
        return new RdmaSettings(
                nics, qpsPerPeer, queueDepth, stripeMinBytes, maxRegistrationBytes, ackTimeoutExp, retries);
    }
}
