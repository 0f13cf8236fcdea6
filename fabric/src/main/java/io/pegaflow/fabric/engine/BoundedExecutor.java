package io.pegaflow.fabric.engine;

import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.ThreadFactory;
import java.util.concurrent.ThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Supplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A fixed pool of named daemon threads ({@code pegaflow-<name>-N}) behind a bounded queue: where the engine's slow
 * or blocking work runs, so that no gRPC handler or actor thread ever does. A full queue refuses the task as a value
 * (a stage failed with RESOURCE_EXHAUSTED naming the queue), a stopped pool as UNAVAILABLE; both are counted through
 * {@link EngineListener#rejected}. Thread-safe.
 */
final class BoundedExecutor {
    private static final Logger log = LoggerFactory.getLogger(BoundedExecutor.class);

    private final String name;
    private final int queueCapacity;
    private final ThreadPoolExecutor pool;
    private final EngineListener listener;
    /** Must-run tasks the full queue could not take; {@link #retryDeferred} hands them back. */
    private final ConcurrentLinkedQueue<Runnable> deferred = new ConcurrentLinkedQueue<>();

    private final AtomicInteger deferredCount = new AtomicInteger();

    BoundedExecutor(String name, int threads, int queueCapacity, EngineListener listener) {
        this.name = name;
        this.queueCapacity = queueCapacity;
        this.listener = listener;
        this.pool = new ThreadPoolExecutor(
                threads,
                threads,
                0,
                TimeUnit.MILLISECONDS,
                new ArrayBlockingQueue<>(queueCapacity),
                named("pegaflow-" + name),
                new ThreadPoolExecutor.AbortPolicy());
    }

    String name() {
        return name;
    }

    /**
     * Runs {@code work} on this pool. Never throws: a refusal, like a failure of {@code work}, fails the returned
     * stage; a refused task never ran, so whatever the caller holds for it is the caller's to release.
     *
     * @param op what the task is for, in error messages and the rejection metric (save, load, register)
     */
    <T> CompletableFuture<T> supply(String op, Supplier<T> work) {
        return supply(op, work, () -> {});
    }

    /**
     * As {@link #supply(String, Supplier)}, running {@code ifRefused} on the caller's thread, before the returned
     * stage fails, when the pool does not take the task: the place to release what was taken for it.
     */
    <T> CompletableFuture<T> supply(String op, Supplier<T> work, Runnable ifRefused) {
        CompletableFuture<T> result = new CompletableFuture<>();
        try {
            pool.execute(() -> {
                try {
                    result.complete(work.get());
                } catch (Throwable t) {
                    result.completeExceptionally(t);
                }
            });
        } catch (RejectedExecutionException e) {
            ifRefused.run();
            result.completeExceptionally(refusal(op));
        }
        return result;
    }

    /**
     * Hands {@code task} to the pool.
     *
     * @return null when taken, else the refusal (nothing ran)
     */
    EngineException tryExecute(String op, Runnable task) {
        try {
            pool.execute(task);
            return null;
        } catch (RejectedExecutionException e) {
            return refusal(op);
        }
    }

    /**
     * Runs a task that must not be lost (unmapping): when the queue is full it waits on a retry list that
     * {@link #retryDeferred} drains; once the pool is stopped, {@link #runDeferredHere} runs what is left.
     */
    void executeEventually(String op, Runnable task) {
        try {
            pool.execute(task);
        } catch (RejectedExecutionException e) {
            deferred.add(task);
            deferredCount.incrementAndGet();
            listener.rejected(op, "deferred");
        }
    }

    /** Hands deferred tasks back to the pool while it takes them (the sweeper calls this). */
    void retryDeferred() {
        Runnable task;
        while ((task = deferred.peek()) != null && !pool.isShutdown()) {
            try {
                pool.execute(task);
            } catch (RejectedExecutionException e) {
                return; // still full: the next sweep tries again
            }
            deferred.remove(task);
            deferredCount.decrementAndGet();
        }
    }

    /** After {@link #shutdown}: runs the deferred tasks on the calling thread. */
    void runDeferredHere() {
        Runnable task;
        while ((task = deferred.poll()) != null) {
            deferredCount.decrementAndGet();
            try {
                task.run();
            } catch (RuntimeException e) {
                log.warn("{}: a deferred task failed at shutdown: {}", name, e.toString());
            }
        }
    }

    private EngineException refusal(String op) {
        if (pool.isShutdown()) {
            listener.rejected(op, "stopping");
            return EngineException.unavailable("the node is stopping: " + op + " refused");
        }
        listener.rejected(op, "queue_full");
        return EngineException.exhausted("the " + name + " queue is full (" + queueCapacity + " tasks waiting for "
                + pool.getMaximumPoolSize() + " pegaflow-" + name + " threads): " + op
                + " refused; retry later");
    }

    /** Tasks waiting in the queue (plus deferred ones). */
    int queued() {
        return pool.getQueue().size() + deferredCount.get();
    }

    int active() {
        return pool.getActiveCount();
    }

    int queueCapacity() {
        return queueCapacity;
    }

    void shutdown() {
        pool.shutdown();
    }

    boolean awaitTermination(long timeoutMs) {
        try {
            return pool.awaitTermination(timeoutMs, TimeUnit.MILLISECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return false;
        }
    }

    static ThreadFactory named(String prefix) {
        AtomicLong n = new AtomicLong();
        return r -> {
            Thread t = new Thread(r, prefix + "-" + n.incrementAndGet());
            t.setDaemon(true);
            return t;
        };
    }
}
