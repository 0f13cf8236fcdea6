package io.pegaflow.gpu.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import io.pegaflow.gpu.cuda.LaneDispatcher.Outcome;
import java.util.ArrayList;
import java.util.EnumSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The hand-off between copy callers and the CUDA engine's agent threads, on the CPU: lanes here run plain Java work,
 * so the queue, the refusals and the close race are tested where there is no GPU.
 */
class LaneDispatcherTest {
    private static final long WAIT_S = 10;

    /** A request: the work a lane runs for it. */
    static final class Job extends LaneDispatcher.Ticket {
        final Runnable work;
        volatile String ranOn;

        Job(Runnable work) {
            this.work = work;
        }
    }

    /** Runs each job's work on the agent thread. */
    static final class RunningLane implements LaneDispatcher.Lane<Job> {
        @Override
        public void run(Job job) {
            job.ranOn = Thread.currentThread().getName();
            job.work.run();
        }
    }

    private final List<LaneDispatcher<Job>> dispatchers = new ArrayList<>();

    private LaneDispatcher<Job> started(int capacity, int lanes) {
        List<RunningLane> laneList = new ArrayList<>();
        for (int i = 0; i < lanes; i++) {
            laneList.add(new RunningLane());
        }
        LaneDispatcher<Job> dispatcher = new LaneDispatcher<>("test-lane-", capacity, laneList);
        dispatcher.start();
        dispatchers.add(dispatcher);
        return dispatcher;
    }

    @AfterEach
    void closeAll() {
        dispatchers.forEach(d -> d.close(1_000));
    }

    /** Submits from a thread of its own (a daemon, so a stranded one cannot keep the JVM alive). */
    private static CompletableFuture<Outcome> submitAsync(LaneDispatcher<Job> dispatcher, Job job) {
        CompletableFuture<Outcome> result = new CompletableFuture<>();
        Thread caller = new Thread(() -> result.complete(dispatcher.submitAndAwait(job)), "test-caller");
        caller.setDaemon(true);
        caller.start();
        return result;
    }

    private static Outcome await(CompletableFuture<Outcome> outcome, String what) throws Exception {
        try {
            return outcome.get(WAIT_S, TimeUnit.SECONDS);
        } catch (TimeoutException e) {
            return fail(what + ": the caller was still parked after " + WAIT_S + " s");
        }
    }

    private static void awaitQueued(LaneDispatcher<Job> dispatcher, int queued) throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(WAIT_S);
        while (dispatcher.queuedCount() != queued) {
            if (System.nanoTime() > deadline) {
                fail("expected " + queued + " queued requests, have " + dispatcher.queuedCount());
            }
            Thread.sleep(1);
        }
    }

    @Test
    @Timeout(30)
    void shouldRunASubmittedRequestOnAnAgentThreadAndReportCompleted() {
        LaneDispatcher<Job> dispatcher = started(4, 2);
        AtomicInteger runs = new AtomicInteger();
        Job job = new Job(runs::incrementAndGet);

        assertEquals(Outcome.COMPLETED, dispatcher.submitAndAwait(job));
        assertEquals(Outcome.COMPLETED, dispatcher.submitAndAwait(job)); // a caller reuses its ticket

        assertEquals(2, runs.get());
        assertTrue(job.ranOn.startsWith("test-lane-"), job.ranOn);
        assertNull(job.failure());
    }

    @Test
    @Timeout(30)
    void shouldReportWhatTheLaneThrewAsFailed() {
        LaneDispatcher<Job> dispatcher = started(4, 1);
        IllegalStateException boom = new IllegalStateException("boom");
        Job job = new Job(() -> {
            throw boom;
        });

        assertEquals(Outcome.FAILED, dispatcher.submitAndAwait(job));
        assertSame(boom, job.failure());

        Job next = new Job(() -> {});
        assertEquals(Outcome.COMPLETED, dispatcher.submitAndAwait(next)); // the lane survives a failed request
    }

    @Test
    @Timeout(30)
    void shouldRefuseASubmissionWhenTheQueueIsFullWithoutRunningIt() throws Exception {
        LaneDispatcher<Job> dispatcher = started(1, 1);
        CountDownLatch running = new CountDownLatch(1);
        CountDownLatch release = new CountDownLatch(1);
        CompletableFuture<Outcome> first = submitAsync(dispatcher, new Job(() -> {
            running.countDown();
            awaitUninterruptibly(release);
        }));
        assertTrue(running.await(WAIT_S, TimeUnit.SECONDS));
        CompletableFuture<Outcome> second = submitAsync(dispatcher, new Job(() -> {}));
        awaitQueued(dispatcher, 1);

        AtomicInteger refusedRuns = new AtomicInteger();
        assertEquals(Outcome.QUEUE_FULL, dispatcher.submitAndAwait(new Job(refusedRuns::incrementAndGet)));

        release.countDown();
        assertEquals(Outcome.COMPLETED, await(first, "the running request"));
        assertEquals(Outcome.COMPLETED, await(second, "the queued request"));
        assertEquals(0, refusedRuns.get());
    }

    @Test
    @Timeout(30)
    void shouldFailQueuedRequestsWithClosedAndLetTheRunningOneFinishOnClose() throws Exception {
        LaneDispatcher<Job> dispatcher = started(4, 1);
        CountDownLatch running = new CountDownLatch(1);
        CountDownLatch release = new CountDownLatch(1);
        CompletableFuture<Outcome> inFlight = submitAsync(dispatcher, new Job(() -> {
            running.countDown();
            awaitUninterruptibly(release);
        }));
        assertTrue(running.await(WAIT_S, TimeUnit.SECONDS));
        AtomicInteger queuedRuns = new AtomicInteger();
        CompletableFuture<Outcome> queued = submitAsync(dispatcher, new Job(queuedRuns::incrementAndGet));
        awaitQueued(dispatcher, 1);

        CompletableFuture<Boolean> closed = CompletableFuture.supplyAsync(() -> dispatcher.close(WAIT_S * 1_000));

        assertEquals(Outcome.CLOSED, await(queued, "the queued request")); // at once, not after the running one
        assertFalse(closed.isDone(), "close returned while a lane was still running a request");
        release.countDown();
        assertEquals(Outcome.COMPLETED, await(inFlight, "the running request"));
        assertTrue(closed.get(WAIT_S, TimeUnit.SECONDS), "every agent stops once its request is done");
        assertEquals(0, queuedRuns.get());
    }

    @Test
    @Timeout(30)
    void shouldRefuseEverySubmissionAfterCloseWithClosed() {
        LaneDispatcher<Job> dispatcher = started(4, 2);
        assertTrue(dispatcher.close(WAIT_S * 1_000));
        AtomicInteger runs = new AtomicInteger();

        assertEquals(Outcome.CLOSED, dispatcher.submitAndAwait(new Job(runs::incrementAndGet)));
        assertTrue(dispatcher.close(WAIT_S * 1_000), "a second close only waits again");
        assertEquals(0, runs.get());
    }

    @Test
    @Timeout(30)
    void shouldSayAgentsAreStillRunningWhenCloseTimesOut() throws Exception {
        LaneDispatcher<Job> dispatcher = started(4, 1);
        CountDownLatch running = new CountDownLatch(1);
        CountDownLatch release = new CountDownLatch(1);
        CompletableFuture<Outcome> inFlight = submitAsync(dispatcher, new Job(() -> {
            running.countDown();
            awaitUninterruptibly(release);
        }));
        assertTrue(running.await(WAIT_S, TimeUnit.SECONDS));

        assertFalse(dispatcher.close(50), "an agent is still inside a request: its lane must not be freed");
        release.countDown();
        assertEquals(Outcome.COMPLETED, await(inFlight, "the running request"));
        assertTrue(dispatcher.close(WAIT_S * 1_000));
    }

    @Test
    @Timeout(30)
    void shouldFailRequestsWithTheCauseWhenALaneCannotStart() {
        IllegalStateException cause = new IllegalStateException("no context");
        LaneDispatcher.Lane<Job> broken = new LaneDispatcher.Lane<>() {
            @Override
            public void onAgentStart() {
                throw cause;
            }

            @Override
            public void run(Job job) {
                job.work.run();
            }
        };
        LaneDispatcher<Job> dispatcher = new LaneDispatcher<>("test-lane-", 4, List.of(broken));
        dispatcher.start();
        dispatchers.add(dispatcher);
        AtomicInteger runs = new AtomicInteger();
        Job job = new Job(runs::incrementAndGet);

        assertEquals(Outcome.FAILED, dispatcher.submitAndAwait(job));
        assertSame(cause, job.failure());
        assertEquals(0, runs.get());
    }

    /**
     * The race of issue 8: a copy passed the closed check, then close ran to its end (agents stopped), then the copy
     * was queued behind nobody and its caller parked forever. The hook puts a whole close into that window; with
     * admission and close under one lock the close waits for the admission, then fails the queued request.
     */
    @Test
    @Timeout(60)
    void shouldNotStrandACallerWhenCloseRunsBetweenItsAdmissionCheckAndItsEnqueue() throws Exception {
        LaneDispatcher<Job> dispatcher = started(4, 2);
        CompletableFuture<Boolean> closed = new CompletableFuture<>();
        dispatcher.admissionHookForTest(() -> {
            Thread closer = new Thread(() -> closed.complete(dispatcher.close(WAIT_S * 1_000)), "test-closer");
            closer.setDaemon(true);
            closer.start();
            try {
                // Give the close every chance to finish inside the window (it cannot while admission holds the lock).
                closer.join(500);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        });
        AtomicInteger runs = new AtomicInteger();

        Outcome outcome = await(submitAsync(dispatcher, new Job(runs::incrementAndGet)), "a copy racing close");

        assertTrue(outcome == Outcome.CLOSED || outcome == Outcome.COMPLETED, "unexpected outcome " + outcome);
        assertTrue(closed.get(WAIT_S, TimeUnit.SECONDS), "the agents stopped");
        assertEquals(Outcome.CLOSED, dispatcher.submitAndAwait(new Job(runs::incrementAndGet)));
    }

    /** No hook: many rounds of submitters against a close at a random moment; every caller comes back. */
    @Test
    @Timeout(120)
    void shouldEndEverySubmissionWhenCloseRacesManyCallers() throws Exception {
        Set<Outcome> seen = ConcurrentHashMap.newKeySet();
        for (int round = 0; round < 200; round++) {
            LaneDispatcher<Job> dispatcher = started(2, 2);
            List<CompletableFuture<Outcome>> callers = new ArrayList<>();
            for (int c = 0; c < 4; c++) {
                CompletableFuture<Outcome> last = new CompletableFuture<>();
                Thread caller = new Thread(
                        () -> {
                            Job job = new Job(Thread::onSpinWait);
                            Outcome o;
                            do {
                                o = dispatcher.submitAndAwait(job);
                                seen.add(o);
                            } while (o != Outcome.CLOSED);
                            last.complete(o);
                        },
                        "test-caller-" + c);
                caller.setDaemon(true);
                caller.start();
                callers.add(last);
            }
            Thread.sleep(0, ThreadLocalRandom.current().nextInt(200_000));
            assertTrue(dispatcher.close(WAIT_S * 1_000), "round " + round + ": agents stopped");
            for (CompletableFuture<Outcome> caller : callers) {
                try {
                    caller.get(WAIT_S, TimeUnit.SECONDS);
                } catch (TimeoutException e) {
                    fail("round " + round + ": a caller was still parked " + WAIT_S + " s after close");
                } catch (ExecutionException e) {
                    throw new AssertionError(e.getCause());
                }
            }
        }
        assertTrue(
                EnumSet.of(Outcome.COMPLETED, Outcome.QUEUE_FULL, Outcome.CLOSED)
                        .containsAll(seen),
                "" + seen);
    }

    private static void awaitUninterruptibly(CountDownLatch latch) {
        try {
            if (!latch.await(WAIT_S * 3, TimeUnit.SECONDS)) {
                throw new IllegalStateException("the test never released the lane");
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
