package io.pegaflow.fabric.engine;

import io.pegaflow.gpu.MappedRegion;
import java.io.IOException;
import java.nio.file.Path;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;

/**
 * The load-flag files of one context, each mapped once (on a mapping thread) the first time a Load names it and kept
 * until the context goes: a Load with a known path does no file I/O. Keyed by the path as the worker sends it, so a
 * flag file must keep its size and must not be replaced at the same path while its context lives (the worker's
 * flag pool creates fresh files). Thread-safe; {@link #closeAll} runs once no Load of the context is in flight.
 */
final class FlagFiles {
    private final String contextId;
    private final Path root;
    private final SharedMemoryMapper mapper;
    private final BoundedExecutor mapping;
    private final int limit;
    private final ConcurrentHashMap<String, CompletableFuture<MappedRegion>> byPath = new ConcurrentHashMap<>();
    private boolean closed;

    FlagFiles(String contextId, Path root, SharedMemoryMapper mapper, BoundedExecutor mapping, int limit) {
        this.contextId = contextId;
        this.root = root;
        this.mapper = mapper;
        this.mapping = mapping;
        this.limit = limit;
    }

    /**
     * The mapped flag file at {@code path}: at once when mapped before, else after a mapping thread mapped it. Fails
     * with INVALID_ARGUMENT when the file cannot be mapped (not cached: a later Load tries again), RESOURCE_EXHAUSTED
     * when the context has its limit of flag files or the mapping queue is full.
     */
    CompletableFuture<MappedRegion> get(String path) {
        CompletableFuture<MappedRegion> known = byPath.get(path);
        if (known != null) {
            return known;
        }
        if (byPath.size() >= limit) {
            return CompletableFuture.failedFuture(EngineException.exhausted("flag.path: context " + contextId
                    + " has " + limit + " flag files mapped already (" + EngineSettings.PREFIX
                    + "flag-files-per-context); reuse their slots"));
        }
        CompletableFuture<MappedRegion> mine = new CompletableFuture<>();
        known = byPath.putIfAbsent(path, mine);
        if (known != null) {
            return known;
        }
        mapping.supply("load", () -> map(path)).whenComplete((file, error) -> {
            if (error != null) {
                byPath.remove(path, mine);
                mine.completeExceptionally(error);
            } else {
                mine.complete(file);
            }
        });
        return mine;
    }

    /** Runs on a mapping thread. */
    private MappedRegion map(String path) {
        MappedRegion file;
        try {
            file = mapper.map(root, Path.of(path));
        } catch (IOException | RuntimeException e) {
            throw EngineException.invalid("flag.path: cannot map " + Limits.echo(path) + ": " + e.getMessage());
        }
        synchronized (this) {
            if (!closed) {
                return file;
            }
        }
        file.close(); // the context went meanwhile (cannot happen while the Load holds its reference)
        throw EngineException.notFound("context_id: " + contextId + " was unregistered");
    }

    int mappedCount() {
        return byPath.size();
    }

    /** Unmaps every flag file; called on a cleanup thread once the context is idle. */
    void closeAll() {
        synchronized (this) {
            closed = true;
        }
        for (CompletableFuture<MappedRegion> file : byPath.values()) {
            if (file.isDone() && !file.isCompletedExceptionally()) {
                try {
                    file.join().close();
                } catch (RuntimeException e) {
                    org.slf4j.LoggerFactory.getLogger(FlagFiles.class)
                            .warn("context {}: closing a flag file failed: {}", contextId, e.toString());
                }
            }
        }
        byPath.clear();
    }
}
