package io.pegaflow.fabric.metrics;

import io.pegaflow.fabric.engine.CallPhase;
import io.pegaflow.fabric.engine.EngineListener;
import io.pegaflow.fabric.engine.KvEngine;
import io.pegaflow.store.BlockStore;
import io.pegaflow.store.PoolSnapshot;
import io.pegaflow.store.StoreCounters;
import java.util.HashMap;
import java.util.Map;
import java.util.concurrent.atomic.AtomicInteger;
import kamon.Kamon;
import kamon.metric.Histogram;
import kamon.metric.MeasurementUnit;
import kamon.tag.TagSet;

/**
 * Engine and block-store metrics. Save/load sizes and durations are recorded as they happen (copy threads);
 * store counters and pool gauges are sampled by {@link #sample()} once a second, turning the store's cumulative
 * counts into Kamon counter increments.
 *
 * <p>Exported (Prometheus names): {@code pegaflow_pool_capacity_bytes}, {@code pegaflow_pool_used_bytes},
 * {@code pegaflow_pool_largest_free_bytes}, {@code pegaflow_store_blocks{state}}, {@code
 * pegaflow_block_hits_total}, {@code pegaflow_block_misses_total}, {@code pegaflow_block_insertions_total}, {@code
 * pegaflow_block_evictions_total}, {@code pegaflow_block_partial_dropped_total}, {@code
 * pegaflow_save_rejected_total}, {@code pegaflow_save_size_bytes}, {@code pegaflow_save_duration_seconds}, {@code
 * pegaflow_save_phase_seconds{phase}} and {@code pegaflow_load_phase_seconds{phase}} (one call's phases, {@link
 * CallPhase}: queue, reserve, copy, seal, reply; pin, queue, copy, commit, reply), {@code
 * pegaflow_load_size_bytes}, {@code pegaflow_load_duration_seconds}, {@code pegaflow_load_blocks_total{outcome}},
 * {@code pegaflow_leases_active}, {@code pegaflow_leases_total{event}}, {@code pegaflow_engine_contexts}, {@code
 * pegaflow_engine_rejected_total{op,reason}} (work an engine executor refused: {@code queue_full}, {@code stopping},
 * or put off: {@code deferred}), {@code pegaflow_engine_queued_tasks{executor}} and {@code
 * pegaflow_engine_active_tasks{executor}} (copy, mapping, cleanup), {@code pegaflow_copy_mode_total{direction,mode}}
 * (the mode each GPU copy ran in), {@code pegaflow_pool_part_capacity_bytes{pool}} and {@code
 * pegaflow_pool_part_used_bytes{pool}} (each pool of a node with one per NUMA node; pool "0" alone otherwise), {@code
 * pegaflow_pool_remote_numa_saves_total} (blocks a save put in another NUMA node's pool because its GPU's own pool
 * could not make room).
 */
public final class EngineMetrics implements EngineListener {
    private static final MeasurementUnit BYTES = MeasurementUnit.information().bytes();
    private static final MeasurementUnit NANOS = MeasurementUnit.time().nanoseconds();

    private final TagSet engineTag;
    /** One histogram per {@link CallPhase}, resolved once: recording a phase looks nothing up. */
    private final Histogram[] phases = new Histogram[CallPhase.values().length];

    private final AtomicInteger contexts = new AtomicInteger();
    private volatile BlockStore store;
    private volatile KvEngine engine;
    private final long[] last = new long[10];
    /** Only the sampler thread touches it. */
    private final Map<String, Long> lastCopyModes = new HashMap<>();

    public EngineMetrics(String copyEngine) {
        this.engineTag = TagSet.of("copy_engine", copyEngine);
        for (CallPhase p : CallPhase.values()) {
            phases[p.ordinal()] = Kamon.histogram(
                            "pegaflow." + p.op() + ".phase",
                            "Time of one phase of a " + p.op() + " (queue, reserve/pin, copy, seal/commit, reply)",
                            NANOS)
                    .withTags(engineTag.withTag("phase", p.phase()));
        }
    }

    @Override
    public void phase(CallPhase phase, long durationNs) {
        phases[phase.ordinal()].record(Math.max(0, durationNs));
    }

    /** The engine (and its store) to sample; set once the engine exists. */
    public void attach(KvEngine engine) {
        this.store = engine.store();
        this.engine = engine;
    }

    @Override
    public void rejected(String op, String reason) {
        Kamon.counter("pegaflow.engine.rejected", "Engine work refused (queue full, stopping) or deferred")
                .withTags(TagSet.builder().add("op", op).add("reason", reason).build())
                .increment();
    }

    @Override
    public void saved(long bytes, long durationNs, int blocksStored) {
        Kamon.histogram("pegaflow.save.size", "Bytes copied into the pool per Save", BYTES)
                .withTags(engineTag)
                .record(bytes);
        Kamon.histogram("pegaflow.save.duration", "Save copy time", NANOS)
                .withTags(engineTag)
                .record(durationNs);
    }

    @Override
    public void loaded(long bytes, long durationNs, int blocksLoaded, int blocksFailed) {
        if (bytes > 0) {
            Kamon.histogram("pegaflow.load.size", "Bytes copied out of the pool per Load", BYTES)
                    .withTags(engineTag)
                    .record(bytes);
            Kamon.histogram("pegaflow.load.duration", "Load copy time", NANOS)
                    .withTags(engineTag)
                    .record(durationNs);
        }
        Kamon.counter("pegaflow.load.blocks", "Blocks requested by Load, by outcome")
                .withTag("outcome", "loaded")
                .increment(blocksLoaded);
        Kamon.counter("pegaflow.load.blocks", "Blocks requested by Load, by outcome")
                .withTag("outcome", "failed")
                .increment(blocksFailed);
    }

    @Override
    public void contextsChanged(int registered) {
        contexts.set(registered);
    }

    /** Called by the node's sampler thread. */
    public void sample() {
        BlockStore s = store;
        if (s == null) {
            return;
        }
        PoolSnapshot pool = s.poolSnapshot();
        Kamon.gauge("pegaflow.pool.capacity", "Pool size", BYTES).withoutTags().update(pool.capacityBytes());
        Kamon.gauge("pegaflow.pool.used", "Pool bytes allocated to blocks", BYTES)
                .withoutTags()
                .update(pool.usedBytes());
        Kamon.gauge("pegaflow.pool.largest.free", "Largest block the pool can take now", BYTES)
                .withoutTags()
                .update(pool.largestFreeBytes());
        java.util.List<PoolSnapshot> pools = s.poolSnapshots();
        for (int p = 0; p < pools.size(); p++) {
            String tag = Integer.toString(p);
            Kamon.gauge("pegaflow.pool.part.capacity", "Size of each pool (one per NUMA node)", BYTES)
                    .withTag("pool", tag)
                    .update(pools.get(p).capacityBytes());
            Kamon.gauge("pegaflow.pool.part.used", "Bytes allocated to blocks in each pool (one per NUMA node)", BYTES)
                    .withTag("pool", tag)
                    .update(pools.get(p).usedBytes());
        }
        Kamon.gauge("pegaflow.store.blocks", "Blocks in the pool by state")
                .withTag("state", "sealed")
                .update(s.sealedBlocks());
        Kamon.gauge("pegaflow.store.blocks", "Blocks in the pool by state")
                .withTag("state", "inflight")
                .update(s.inFlightBlocks());
        Kamon.gauge("pegaflow.leases.active", "Leases held").withoutTags().update(s.activeLeases());
        Kamon.gauge("pegaflow.engine.contexts", "Registered worker contexts")
                .withoutTags()
                .update(contexts.get());
        KvEngine e = engine;
        if (e != null) {
            for (KvEngine.ExecutorLoad load : e.executorLoads()) {
                Kamon.gauge("pegaflow.engine.queued.tasks", "Tasks waiting for an engine executor")
                        .withTag("executor", load.executor())
                        .update(load.queued());
                Kamon.gauge("pegaflow.engine.active.tasks", "Tasks running on an engine executor")
                        .withTag("executor", load.executor())
                        .update(load.active());
            }
        }
        if (e != null) {
            sampleCopyModes(e);
        }
        StoreCounters c = s.counters();
        bump(
                0,
                c.hits(),
                Kamon.counter("pegaflow.block.hits", "Query hits (blocks)").withoutTags());
        bump(
                1,
                c.misses(),
                Kamon.counter("pegaflow.block.misses", "Query misses (blocks)").withoutTags());
        bump(
                2,
                c.insertions(),
                Kamon.counter("pegaflow.block.insertions", "Blocks sealed").withoutTags());
        bump(
                3,
                c.evictions(),
                Kamon.counter("pegaflow.block.evictions", "Blocks evicted (LRU)")
                        .withoutTags());
        bump(
                4,
                c.partialDropped(),
                Kamon.counter("pegaflow.block.partial.dropped", "Stale partial blocks dropped")
                        .withoutTags());
        bump(
                5,
                c.saveRejectedFull(),
                Kamon.counter("pegaflow.save.rejected", "Saves refused: pool full")
                        .withoutTags());
        bump(
                6,
                c.leasesCreated(),
                Kamon.counter("pegaflow.leases", "Lease events").withTag("event", "created"));
        bump(
                7,
                c.leasesReleased(),
                Kamon.counter("pegaflow.leases", "Lease events").withTag("event", "released"));
        bump(
                8,
                c.leasesExpired(),
                Kamon.counter("pegaflow.leases", "Lease events").withTag("event", "expired"));
        bump(
                9,
                c.remotePoolBlocks(),
                Kamon.counter(
                                "pegaflow.pool.remote.numa.saves",
                                "Blocks saved into another NUMA node's pool: the GPU's own pool was full")
                        .withoutTags());
    }

    /** {@code pegaflow_copy_mode_total{direction,mode}}: which mode each copy ran in (AUTO picks per copy). */
    private void sampleCopyModes(KvEngine e) {
        for (Map.Entry<String, Long> entry : e.copiesByMode().entrySet()) {
            String key = entry.getKey();
            int slash = key.indexOf('/');
            long previous = lastCopyModes.getOrDefault(key, 0L);
            Kamon.counter("pegaflow.copy.mode", "Copies by direction and the mode the copy engine ran them in")
                    .withTags(TagSet.builder()
                            .add("direction", key.substring(0, slash))
                            .add("mode", key.substring(slash + 1))
                            .build())
                    .increment(entry.getValue() - previous);
            lastCopyModes.put(key, entry.getValue());
        }
    }

    private void bump(int slot, long now, kamon.metric.Counter counter) {
        counter.increment(now - last[slot]);
        last[slot] = now;
    }
}
