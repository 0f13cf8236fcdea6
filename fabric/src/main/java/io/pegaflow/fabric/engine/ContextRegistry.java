package io.pegaflow.fabric.engine;

import io.pegaflow.store.NamespaceLayout;
import java.security.SecureRandom;
import java.util.HexFormat;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicLong;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The registered worker contexts, the namespace layouts they fixed, and which context is current for each worker
 * (instance, tp rank, pp rank): a re-registration replaces the older context. Lookups are map reads that any thread
 * may do; closing a context only marks it, its unmapping runs on a cleanup thread. Thread-safe.
 */
final class ContextRegistry {
    private static final Logger log = LoggerFactory.getLogger(ContextRegistry.class);

    private final ConcurrentHashMap<String, WorkerContext> contexts = new ConcurrentHashMap<>();
    private final ConcurrentHashMap<String, NamespaceLayout> namespaces = new ConcurrentHashMap<>();
    private final ConcurrentHashMap<String, String> contextByWorker = new ConcurrentHashMap<>();
    private final AtomicLong contextSeq = new AtomicLong();
    private final SecureRandom idRandom = new SecureRandom();
    private final EngineListener listener;

    ContextRegistry(EngineListener listener) {
        this.listener = listener;
    }

    /**
     * A fresh id for a context of {@code workerKey}: {@code <worker>#<sequence>-<64 random bits in hex>}. The
     * sequence orders the registrations of this engine (later ones replace earlier ones); the random part makes ids
     * unique across restarts and unguessable, so a worker's id from before a restart is NOT_FOUND, never another
     * worker's new context.
     */
    String nextId(String workerKey) {
        return workerKey + "#" + contextSeq.incrementAndGet() + "-"
                + HexFormat.of().toHexDigits(idRandom.nextLong());
    }

    /**
     * Fixes the namespace's layout on its first registration, or checks it against the fixed one.
     *
     * @throws EngineException FAILED_PRECONDITION when they disagree (nothing changed)
     */
    void claimLayout(NamespaceLayout layout) {
        NamespaceLayout existing = namespaces.putIfAbsent(layout.namespace(), layout);
        if (existing != null && existing.mismatch(layout) != null) {
            throw mismatch(existing, layout);
        }
    }

    /**
     * Makes {@code context} visible and current for its worker; from here on the context owns its mappings. A
     * context this one replaces is closed.
     *
     * @throws EngineException when a newer registration of the worker won the race (this context is closed then)
     */
    void publish(WorkerContext context) {
        String id = context.id;
        String worker = context.workerKey();
        contexts.put(id, context);
        // Two registrations of one worker may race (on the mapping threads): the higher sequence number wins.
        String[] replaced = new String[1];
        contextByWorker.compute(worker, (w, current) -> {
            if (current == null || sequenceOf(current) < sequenceOf(id)) {
                replaced[0] = current;
                return id;
            }
            replaced[0] = id;
            return current;
        });
        if (replaced[0] != null) {
            remove(replaced[0], "replaced by a newer registration of " + worker);
        }
        if (id.equals(replaced[0])) {
            throw EngineException.precondition("a newer registration of " + worker
                    + " arrived while this one was being set up; use the newer one");
        }
        listener.contextsChanged(contexts.size());
    }

    /**
     * Drops a context (its cached blocks stay): new operations get NOT_FOUND at once.
     *
     * @return completes once its mappings are unmapped (after its operations in flight); null if it is unknown
     */
    CompletableFuture<Void> remove(String contextId, String why) {
        WorkerContext context = contexts.remove(contextId);
        if (context == null) {
            return null;
        }
        contextByWorker.remove(context.workerKey(), contextId);
        log.info("context {} unregistered ({})", contextId, why);
        listener.contextsChanged(contexts.size());
        return context.close();
    }

    /** The context for an operation: INVALID_ARGUMENT for a blank id, NOT_FOUND for an unknown one. */
    WorkerContext require(String contextId) {
        if (contextId.isBlank()) {
            throw EngineException.invalid("context_id: missing");
        }
        WorkerContext context = contexts.get(contextId);
        if (context == null) {
            throw EngineException.notFound("context_id: " + Limits.echo(contextId)
                    + " is not registered (never registered, unregistered, its session ended, or the node restarted)");
        }
        return context;
    }

    /** The live context named {@code contextId}, or null. */
    WorkerContext find(String contextId) {
        return contexts.get(contextId);
    }

    /**
     * Drops the contexts that never had a session and were not used for {@code idleNs} (called by the sweeper).
     *
     * @return how many were dropped
     */
    int dropIdleWithoutSession(long nowNs, long idleNs) {
        int dropped = 0;
        for (WorkerContext context : contexts.values()) {
            if (context.idleWithoutSession(nowNs, idleNs)) {
                remove(context.id, "no Session stream and unused for " + idleNs / 1_000_000 + " ms");
                dropped++;
            }
        }
        return dropped;
    }

    boolean contains(String contextId) {
        return contexts.containsKey(contextId);
    }

    int count() {
        return contexts.size();
    }

    List<String> ids() {
        return List.copyOf(contexts.keySet());
    }

    NamespaceLayout layout(String namespace) {
        return namespaces.get(namespace);
    }

    private static EngineException mismatch(NamespaceLayout existing, NamespaceLayout layout) {
        return EngineException.precondition("namespace " + Limits.echo(layout.namespace()) + ": "
                + existing.mismatch(layout) + " (registered earlier)");
    }

    private static long sequenceOf(String contextId) {
        int from = contextId.lastIndexOf('#') + 1;
        return Long.parseLong(contextId.substring(from, contextId.indexOf('-', from)));
    }
}
