package io.pegaflow.fabric.engine;

import java.nio.file.Path;
import java.util.Map;

/**
 * The engine's executors and limits. Each executor is a fixed set of named daemon threads behind a bounded queue: a
 * full queue refuses the request (RESOURCE_EXHAUSTED), never grows a backlog.
 *
 * @param copyThreads {@code pegaflow-copy-N}: save (store bookkeeping that may evict, copy, seal) and load copies
 * @param copyQueue saves and loads waiting for a copy thread; a queued load holds its pins, a queued save nothing
 * @param mappingThreads {@code pegaflow-mapping-N}: RegisterContext's file mapping and CUDA IPC opening, and the
 *     first mapping of each flag file of a context
 * @param mappingQueue registrations and flag mappings waiting for a mapping thread
 * @param cleanupThreads {@code pegaflow-cleanup-N}: unmapping files, closing CUDA IPC handles (unregister, session
 *     end, a registration replaced by a newer one)
 * @param cleanupQueue unmappings waiting; when full, they wait on a retry list the sweeper drains (at most one entry
 *     per context, holding no pool space) instead of being dropped
 * @param flagFilesPerContext distinct flag files one context may keep mapped (each is mapped once and kept until
 *     the context goes)
 * @param sharedMemoryDir the only directory whose files (KV caches, load flags) the node maps
 * @param sessionlessIdleMs how long a context that never opened a Session stream may go without a Save or Load
 *     naming it before the node drops it (its mappings go; its cached blocks stay); a context with a session lives
 *     until its last session ends instead
 */
public record EngineSettings(
        int copyThreads,
        int copyQueue,
        int mappingThreads,
        int mappingQueue,
        int cleanupThreads,
        int cleanupQueue,
        int flagFilesPerContext,
        Path sharedMemoryDir,
        int sessionlessIdleMs) {

    public static final String PREFIX = "pegaflow.engine.";
    /** The shared-memory directory's key, older than the others. */
    public static final String SHM_DIR_KEY = "pegaflow.shm-dir";

    public EngineSettings {
        check("copy-threads", copyThreads, 1, 256);
        check("copy-queue", copyQueue, 1, 1 << 20);
        check("mapping-threads", mappingThreads, 1, 64);
        check("mapping-queue", mappingQueue, 1, 1 << 20);
        check("cleanup-threads", cleanupThreads, 1, 64);
        check("cleanup-queue", cleanupQueue, 1, 1 << 20);
        check("flag-files-per-context", flagFilesPerContext, 1, 1 << 20);
        check("sessionless-idle-ms", sessionlessIdleMs, 100, 86_400_000);
    }

    /**
     * 2..4 copy threads (by cores) with 1024 waiting, 2 mapping threads with 256 waiting, 1 cleanup thread with 1024
     * waiting, 1024 flag files per context, {@code /dev/shm}, contexts without a session dropped after 120 s unused.
     */
    public static EngineSettings defaults() {
        int copyThreads = Math.max(2, Math.min(4, Runtime.getRuntime().availableProcessors()));
        return new EngineSettings(copyThreads, 1024, 2, 256, 1, 1024, 1024, Path.of("/dev/shm"), 120_000);
    }

    /**
     * The defaults overridden by system properties: {@code pegaflow.engine.copy-threads}, {@code copy-queue}, {@code
     * mapping-threads}, {@code mapping-queue}, {@code cleanup-threads}, {@code cleanup-queue}, {@code
     * flag-files-per-context}, {@code sessionless-idle-ms} (all under {@code pegaflow.engine.}) and {@code
     * pegaflow.shm-dir}.
     *
     * @throws IllegalArgumentException naming the key and the allowed range
     */
    public static EngineSettings from(Map<?, ?> properties) {
        EngineSettings d = defaults();
        Object shm = properties.get(SHM_DIR_KEY);
        return new EngineSettings(
                intKey(properties, "copy-threads", d.copyThreads),
                intKey(properties, "copy-queue", d.copyQueue),
                intKey(properties, "mapping-threads", d.mappingThreads),
                intKey(properties, "mapping-queue", d.mappingQueue),
                intKey(properties, "cleanup-threads", d.cleanupThreads),
                intKey(properties, "cleanup-queue", d.cleanupQueue),
                intKey(properties, "flag-files-per-context", d.flagFilesPerContext),
                shm == null ? d.sharedMemoryDir : Path.of(shm.toString()),
                intKey(properties, "sessionless-idle-ms", d.sessionlessIdleMs));
    }

    public EngineSettings withCopy(int threads, int queue) {
        return new EngineSettings(
                threads,
                queue,
                mappingThreads,
                mappingQueue,
                cleanupThreads,
                cleanupQueue,
                flagFilesPerContext,
                sharedMemoryDir,
                sessionlessIdleMs);
    }

    public EngineSettings withMapping(int threads, int queue) {
        return new EngineSettings(
                copyThreads,
                copyQueue,
                threads,
                queue,
                cleanupThreads,
                cleanupQueue,
                flagFilesPerContext,
                sharedMemoryDir,
                sessionlessIdleMs);
    }

    public EngineSettings withCleanup(int threads, int queue) {
        return new EngineSettings(
                copyThreads,
                copyQueue,
                mappingThreads,
                mappingQueue,
                threads,
                queue,
                flagFilesPerContext,
                sharedMemoryDir,
                sessionlessIdleMs);
    }

    public EngineSettings withFlagFilesPerContext(int files) {
        return new EngineSettings(
                copyThreads,
                copyQueue,
                mappingThreads,
                mappingQueue,
                cleanupThreads,
                cleanupQueue,
                files,
                sharedMemoryDir,
                sessionlessIdleMs);
    }

    public EngineSettings withSessionlessIdleMs(int idleMs) {
        return new EngineSettings(
                copyThreads,
                copyQueue,
                mappingThreads,
                mappingQueue,
                cleanupThreads,
                cleanupQueue,
                flagFilesPerContext,
                sharedMemoryDir,
                idleMs);
    }

    private static int intKey(Map<?, ?> properties, String key, int fallback) {
        Object value = properties.get(PREFIX + key);
        if (value == null) {
            return fallback;
        }
        try {
            return Integer.parseInt(value.toString().trim());
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException(PREFIX + key + ": \"" + value + "\" is not a whole number");
        }
    }

    private static void check(String key, int value, int min, int max) {
        if (value < min || value > max) {
            throw new IllegalArgumentException(PREFIX + key + ": " + value + " is out of range " + min + ".." + max);
        }
    }
}
