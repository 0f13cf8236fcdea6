package io.pegaflow.gpu.cuda;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.LockSupport;
import java.util.concurrent.locks.ReentrantLock;

/**
 * Hands requests from calling threads to a fixed set of agent threads, one per lane, through one bounded queue, and
 * parks each caller until its request has run or has been refused. Knows nothing of CUDA: the lanes say what running
 * a request means.
 *
 * <p>Admission (is the dispatcher open, is there room) and enqueueing happen under the one lock that {@link #close}
 * takes to shut the door and empty the queue. So a request is either refused {@link Outcome#CLOSED} at once, or
 * queued before the close and then run to its end or failed {@link Outcome#CLOSED} by the close: no caller is ever
 * left parked behind a stopped agent.
 *
 * <p>Thread-safe. Allocates nothing per request: each caller reuses its own {@link Ticket}.
 *
 * @param <R> the request type, carrying what a lane needs to run it
 */
final class LaneDispatcher<R extends LaneDispatcher.Ticket> {

    /** How a submission ended. */
    enum Outcome {
        /** A lane ran the request to its end. */
        COMPLETED,
        /** A lane ran the request and it threw: {@link Ticket#failure()} says what. */
        FAILED,
        /** The queue was full: the request was not queued and did not run. */
        QUEUE_FULL,
        /** The dispatcher was closed before a lane took the request: it did not run. */
        CLOSED
    }

    /** What an agent thread does with the requests it takes. Owned by that one thread. */
    interface Lane<R> {
        /** Runs once on the agent's thread before its first request (e.g. to make a CUDA context current). */
        default void onAgentStart() {}

        /** Runs one request; returns when it is done, throws when it failed. */
        void run(R request) throws Exception;
    }

    /**
     * A request's hand-off state. One object per calling thread, reused for each of its submissions (so never shared
     * by two submissions in flight).
     */
    abstract static class Ticket {
        private Thread waiter;
        private Throwable failure;
        private volatile Outcome outcome;

        /** What the lane threw, after {@link Outcome#FAILED}; null otherwise. */
        final Throwable failure() {
            return failure;
        }

        private void prepare() {
            waiter = Thread.currentThread();
            failure = null;
            outcome = null;
        }

        /** Publishes the outcome (the volatile write orders {@code failure} before it) and wakes the caller. */
        private void complete(Outcome result, Throwable cause) {
            Thread w = waiter;
            failure = cause;
            outcome = result;
            LockSupport.unpark(w);
        }

        private Outcome await() {
            boolean interrupted = false;
            Outcome result;
            while ((result = outcome) == null) {
                LockSupport.park(this);
                if (Thread.interrupted()) {
                    interrupted = true; // a lane may be writing into the caller's memory: wait anyway
                }
            }
            if (interrupted) {
                Thread.currentThread().interrupt();
            }
            return result;
        }
    }

    private final ReentrantLock lock = new ReentrantLock();
    private final Condition notEmpty = lock.newCondition();
    private final Object[] queue;
    private int head;
    private int count;
    private boolean closed;
    private boolean started;
    private final List<Thread> agents = new ArrayList<>();
    private volatile Runnable admissionHook;

    /**
     * @param threadNamePrefix agent threads are named {@code prefix + lane index}
     * @param capacity the most requests waiting for a lane; a submission beyond it is refused
     * @param lanes one agent thread each
     */
    LaneDispatcher(String threadNamePrefix, int capacity, List<? extends Lane<R>> lanes) {
        if (capacity < 1) {
            throw new IllegalArgumentException("capacity must be at least 1, got " + capacity);
        }
        if (lanes.isEmpty()) {
            throw new IllegalArgumentException("a dispatcher needs at least one lane");
        }
        queue = new Object[capacity];
        for (int i = 0; i < lanes.size(); i++) {
            Lane<R> lane = lanes.get(i);
            Thread agent = new Thread(() -> agentLoop(lane), threadNamePrefix + i);
            agent.setDaemon(true);
            agents.add(agent);
        }
    }

    /** Starts the agent threads; once only. */
    void start() {
        lock.lock();
        try {
            if (started) {
                throw new IllegalStateException("the dispatcher was already started");
            }
            started = true;
        } finally {
            lock.unlock();
        }
        agents.forEach(Thread::start);
    }

    /** The most requests that can wait for a lane. */
    int capacity() {
        return queue.length;
    }

    /** Requests waiting for a lane now. */
    int queuedCount() {
        lock.lock();
        try {
            return count;
        } finally {
            lock.unlock();
        }
    }

    /**
     * Queues {@code request} for the next free lane and parks until it has run (or returns at once when it is
     * refused). An interrupt does not end the wait early: the lane may still be working on the caller's behalf; the
     * interrupt status is kept.
     *
     * @return {@link Outcome#COMPLETED} or {@link Outcome#FAILED} when a lane ran it, {@link Outcome#QUEUE_FULL} or
     *     {@link Outcome#CLOSED} when it did not run
     */
    Outcome submitAndAwait(R request) {
        ((Ticket) request).prepare();
        lock.lock();
        try {
            if (closed) {
                return Outcome.CLOSED;
            }
            Runnable hook = admissionHook;
            if (hook != null) {
                hook.run();
            }
            if (count == queue.length) {
                return Outcome.QUEUE_FULL;
            }
            queue[(head + count) % queue.length] = request;
            count++;
            notEmpty.signal();
        } finally {
            lock.unlock();
        }
        return ((Ticket) request).await();
    }

    /**
     * Test seam: runs inside {@link #submitAndAwait} after the admission check and before the request is queued, with
     * the admission lock held. Lets a test put a {@link #close} exactly into the window that once stranded callers.
     */
    void admissionHookForTest(Runnable hook) {
        admissionHook = hook;
    }

    private void agentLoop(Lane<R> lane) {
        Throwable startFailure = null;
        try {
            lane.onAgentStart();
        } catch (Throwable t) {
            startFailure = t; // keep taking requests, failing each with the cause, so none waits for a dead agent
        }
        while (true) {
            R request;
            lock.lock();
            try {
                while (count == 0 && !closed) {
                    notEmpty.awaitUninterruptibly();
                }
                if (closed) {
                    return; // close() has failed whatever was still queued
                }
                request = take();
            } finally {
                lock.unlock();
            }
            if (startFailure != null) {
                ((Ticket) request).complete(Outcome.FAILED, startFailure);
                continue;
            }
            try {
                lane.run(request);
                ((Ticket) request).complete(Outcome.COMPLETED, null);
            } catch (Throwable t) {
                ((Ticket) request).complete(Outcome.FAILED, t);
            }
        }
    }

    @SuppressWarnings("unchecked")
    private R take() {
        R request = (R) queue[head];
        queue[head] = null;
        head = (head + 1) % queue.length;
        count--;
        return request;
    }

    /**
     * Refuses every later submission, fails every queued one with {@link Outcome#CLOSED}, lets the requests lanes are
     * running finish, and waits up to {@code timeoutMs} for the agents to stop. Calling it again only waits again.
     *
     * @return true when every agent has stopped (only then may the lanes' resources be freed)
     */
    boolean close(long timeoutMs) {
        lock.lock();
        try {
            if (!closed) {
                closed = true;
                while (count > 0) {
                    ((Ticket) take()).complete(Outcome.CLOSED, null);
                }
                notEmpty.signalAll();
            }
            if (!started) {
                return true;
            }
        } finally {
            lock.unlock();
        }
        long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(timeoutMs);
        boolean interrupted = false;
        for (Thread agent : agents) {
            long leftNs = deadline - System.nanoTime();
            while (agent.isAlive() && leftNs > 0) {
                try {
                    agent.join(Math.max(1, TimeUnit.NANOSECONDS.toMillis(leftNs)));
                } catch (InterruptedException e) {
                    interrupted = true;
                }
                leftNs = deadline - System.nanoTime();
            }
        }
        if (interrupted) {
            Thread.currentThread().interrupt();
        }
        return agents.stream().noneMatch(Thread::isAlive);
    }
}
