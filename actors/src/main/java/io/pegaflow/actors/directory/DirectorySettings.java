package io.pegaflow.actors.directory;

import com.typesafe.config.Config;
import java.time.Duration;
import java.util.List;

/**
 * Typed {@code pegaflow.directory} settings (defaults and meaning in this module's {@code reference.conf}).
 *
 * @param flushInterval how often the publisher sends pending changes
 * @param flushThreshold pending changes that trigger a flush before the interval ends
 * @param maxPending distinct fingerprints that may wait for a flush; more are dropped and resynchronised
 * @param maxFingerprintsPerMessage fingerprints per Publish, Holdings or Lookup message
 * @param rebuildTimeout how long a starting range waits for a node's holdings before it stops reporting incomplete
 * @param snapshotRetryInterval how often a range asks again for holdings that have not arrived
 * @param rebuildLogLimit publishes (in fingerprints) a range keeps per node while awaiting its holdings
 * @param holdingsParallelism LocalHoldings scans in flight per node
 * @param wakeDelays delays after a membership change at which each node touches every range
 * @param lookupRelay whether locates go through each host's {@link LookupRelay}
 * @param lookupAskAgainAfter when a relay first asks again the ranges of a lookup that have not answered (the wait
 *     doubles after each)
 * @param rebalanceAbsoluteLimit ranges one rebalance round may move
 * @param rebalanceRelativeLimit share of all ranges one rebalance round may move
 */
public record DirectorySettings(
        Duration flushInterval,
        int flushThreshold,
        int maxPending,
        int maxFingerprintsPerMessage,
        Duration rebuildTimeout,
        Duration snapshotRetryInterval,
        int rebuildLogLimit,
        int holdingsParallelism,
        List<Duration> wakeDelays,
        boolean lookupRelay,
        Duration lookupAskAgainAfter,
        int rebalanceAbsoluteLimit,
        double rebalanceRelativeLimit) {

    /** Config path of the dispatcher that runs LocalHoldings scans. */
    public static final String HOLDINGS_DISPATCHER = "pegaflow.directory.holdings-dispatcher";

    public DirectorySettings {
        positive("flush-interval", flushInterval);
        positive("flush-threshold", flushThreshold);
        positive("max-pending", maxPending);
        positive("max-fingerprints-per-message", maxFingerprintsPerMessage);
        positive("rebuild-timeout", rebuildTimeout);
        positive("snapshot-retry-interval", snapshotRetryInterval);
        positive("rebuild-log-limit", rebuildLogLimit);
        positive("holdings-parallelism", holdingsParallelism);
        wakeDelays = List.copyOf(wakeDelays);
        for (Duration d : wakeDelays) {
            positive("wake-delays", d);
        }
        positive("lookup-ask-again-after", lookupAskAgainAfter);
        positive("rebalance-absolute-limit", rebalanceAbsoluteLimit);
        if (!(rebalanceRelativeLimit > 0 && rebalanceRelativeLimit <= 1)) {
            throw new IllegalArgumentException(
                    "pegaflow.directory.rebalance-relative-limit must be in (0, 1], got " + rebalanceRelativeLimit);
        }
    }

    /** Reads {@code pegaflow.directory} from {@code config} (an ActorSystem's settings). */
    public static DirectorySettings from(Config config) {
        Config c = config.getConfig("pegaflow.directory");
        return new DirectorySettings(
                c.getDuration("flush-interval"),
                c.getInt("flush-threshold"),
                c.getInt("max-pending"),
                c.getInt("max-fingerprints-per-message"),
                c.getDuration("rebuild-timeout"),
                c.getDuration("snapshot-retry-interval"),
                c.getInt("rebuild-log-limit"),
                c.getInt("holdings-parallelism"),
                c.getDurationList("wake-delays"),
                c.getBoolean("lookup-relay"),
                c.getDuration("lookup-ask-again-after"),
                c.getInt("rebalance-absolute-limit"),
                c.getDouble("rebalance-relative-limit"));
    }

    private static void positive(String key, Duration value) {
        if (value == null || value.isNegative() || value.isZero()) {
            throw new IllegalArgumentException("pegaflow.directory." + key + " must be > 0, got " + value);
        }
    }

    private static void positive(String key, int value) {
        if (value < 1) {
            throw new IllegalArgumentException("pegaflow.directory." + key + " must be >= 1, got " + value);
        }
    }
}
