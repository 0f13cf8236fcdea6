package io.pegaflow.fabric.node;

import io.pegaflow.gpu.cuda.ChunkedHostRegistration;
import io.pegaflow.gpu.cuda.CudaDevice;
import io.pegaflow.gpu.cuda.PinnedHostMemory;
import io.pegaflow.store.memory.HostMemory;
import java.lang.foreign.MemorySegment;
import java.util.List;
import java.util.Map;

/**
 * The node's pool on a GPU machine: host memory mapped and populated in parallel ({@link HostMemory}), pinned for the
 * GPUs chunk by chunk while the rest is still being populated ({@link ChunkedHostRegistration}, on
 * {@code pegaflow-host-register-N} threads), once, PORTABLE, in the first GPU's context, then entered in every other
 * GPU's registry ({@link PinnedHostMemory#shareWith}). {@link #report()} gives each step's time.
 *
 * <p>Settings ({@code -D} properties): {@code pegaflow.pool.populate-threads} (default: the processors, at most 64),
 * {@code pegaflow.pool.register-threads} (default 2), {@code pegaflow.pool.register-chunk-bytes} (default 1 GiB, a
 * multiple of 256 MiB), {@code pegaflow.pool.overlap} (default true; false: populate everything, then one
 * {@code cuMemHostRegister}, the old start), {@code pegaflow.pool.huge-pages} (default true: hugetlb pages when
 * enough are reserved in {@code /proc/sys/vm/nr_hugepages}, else transparent huge pages; false: 4 KiB pages).
 *
 * <p>Close after every copy that touches it; closing unregisters, then unmaps.
 */
public final class PinnedPool implements AutoCloseable {
    private final HostMemory host;
    private final PinnedHostMemory pinned;
    private final String report;

    private PinnedPool(HostMemory host, PinnedHostMemory pinned, String report) {
        this.host = host;
        this.pinned = pinned;
        this.report = report;
    }

    /** Pool start settings, from {@code pegaflow.pool.*} properties. */
    public record Settings(
            int populateThreads, int registerThreads, long registerChunkBytes, boolean overlap, boolean hugePages) {
        public Settings {
            if (populateThreads < 1 || populateThreads > 256) {
                throw new IllegalArgumentException(
                        "pegaflow.pool.populate-threads: " + populateThreads + " is out of range 1..256");
            }
            if (registerThreads < 1 || registerThreads > 64) {
                throw new IllegalArgumentException(
                        "pegaflow.pool.register-threads: " + registerThreads + " is out of range 1..64");
            }
            if (registerChunkBytes < ChunkedHostRegistration.BOUNDARY_BYTES
                    || registerChunkBytes % ChunkedHostRegistration.BOUNDARY_BYTES != 0) {
                throw new IllegalArgumentException("pegaflow.pool.register-chunk-bytes: " + registerChunkBytes
                        + " must be a positive multiple of " + ChunkedHostRegistration.BOUNDARY_BYTES);
            }
        }

        /** @throws IllegalArgumentException naming the property */
        public static Settings from(Map<?, ?> properties) {
            return new Settings(
                    intProperty(properties, "pegaflow.pool.populate-threads", HostMemory.defaultPopulateThreads()),
                    intProperty(properties, "pegaflow.pool.register-threads", 2),
                    longProperty(properties, "pegaflow.pool.register-chunk-bytes", 1L << 30),
                    boolProperty(properties, "pegaflow.pool.overlap", true),
                    boolProperty(properties, "pegaflow.pool.huge-pages", true));
        }

        private static String text(Map<?, ?> p, String key) {
            Object v = p.get(key);
            return v == null ? null : v.toString().trim();
        }

        private static int intProperty(Map<?, ?> p, String key, int dflt) {
            String v = text(p, key);
            try {
                return v == null ? dflt : Integer.parseInt(v);
            } catch (NumberFormatException e) {
                throw new IllegalArgumentException(key + ": \"" + v + "\" is not a whole number");
            }
        }

        private static long longProperty(Map<?, ?> p, String key, long dflt) {
            String v = text(p, key);
            try {
                return v == null ? dflt : Long.parseLong(v);
            } catch (NumberFormatException e) {
                throw new IllegalArgumentException(key + ": \"" + v + "\" is not a whole number of bytes");
            }
        }

        private static boolean boolProperty(Map<?, ?> p, String key, boolean dflt) {
            String v = text(p, key);
            if (v == null) {
                return dflt;
            }
            if (!v.equals("true") && !v.equals("false")) {
                throw new IllegalArgumentException(key + ": \"" + v + "\" is not true or false");
            }
            return Boolean.parseBoolean(v);
        }
    }

    /**
     * Maps, populates and pins {@code bytes} (rounded up to 2 MiB) for every GPU of {@code devices}.
     *
     * @param devices at least one; the first registers, the others share the registration
     * @throws RuntimeException from mapping, populating or the driver; nothing stays mapped or pinned then
     */
    public static PinnedPool start(List<CudaDevice> devices, long bytes, Settings s) {
        return start(devices, bytes, s, List.of());
    }

    /**
     * As {@link #start(List, long, Settings)}, each of {@code numaRanges} bound to its NUMA node before it is
     * populated and pinned (one pool per NUMA node: {@link NumaPoolPlan}).
     */
    public static PinnedPool start(
            List<CudaDevice> devices, long bytes, Settings s, List<HostMemory.NodeRange> numaRanges) {
        long t0 = System.nanoTime();
        CudaDevice lead = devices.getFirst();
        ChunkedHostRegistration registration = new ChunkedHostRegistration(lead);
        HostMemory.ChunkSink sink = !s.overlap()
                ? null
                : new HostMemory.ChunkSink() {
                    @Override
                    public long chunkBytes() {
                        return s.registerChunkBytes();
                    }

                    @Override
                    public int threads() {
                        return s.registerThreads();
                    }

                    @Override
                    public void populated(MemorySegment region, long offset, long length) {
                        registration.register(region.address() + offset, length);
                    }

                    @Override
                    public void abandon() {
                        registration.abandon();
                    }
                };
        HostMemory host = HostMemory.allocate(bytes, s.populateThreads(), s.hugePages(), sink, numaRanges);
        long populatedAt = System.nanoTime();
        PinnedHostMemory pinned;
        try {
            if (!s.overlap()) {
                registration.register(host.memory().address(), host.sizeBytes());
            }
            long registeredAt = System.nanoTime();
            String how = s.overlap()
                    ? String.format(
                            "cuMemHostRegister in %d chunks of %d MiB on %d threads while populating, %.2f s in the"
                                    + " driver, the last chunk %.2f s after populate",
                            registration.chunkCount(),
                            s.registerChunkBytes() >> 20,
                            s.registerThreads(),
                            registration.registerNs() / 1e9,
                            host.sinkTailNs() / 1e9)
                    : String.format(
                            "cuMemHostRegister once after populate, %.2f s", (registeredAt - populatedAt) / 1e9);
            pinned = registration.finish(host.memory(), how);
        } catch (RuntimeException | Error e) {
            registration.abandon();
            host.close();
            throw e;
        }
        long shareStart = System.nanoTime();
        try {
            for (CudaDevice other : devices.subList(1, devices.size())) {
                pinned.shareWith(other);
            }
        } catch (RuntimeException | Error e) {
            pinned.close();
            host.close();
            throw e;
        }
        long end = System.nanoTime();
        String report = String.format(
                "total %.2f s: %s; %s%s",
                (end - t0) / 1e9,
                host.report(),
                pinned.report(),
                devices.size() > 1
                        ? String.format(
                                "; shared with %d more GPUs in %.3f s", devices.size() - 1, (end - shareStart) / 1e9)
                        : "");
        return new PinnedPool(host, pinned, report);
    }

    public PinnedHostMemory pinned() {
        return pinned;
    }

    public HostMemory host() {
        return host;
    }

    public long sizeBytes() {
        return pinned.sizeBytes();
    }

    /** Each step's time, for the start-up log. */
    public String report() {
        return report;
    }

    @Override
    public void close() {
        pinned.close(); // unregister before unmapping
        host.close();
    }
}
