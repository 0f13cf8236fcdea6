package io.pegaflow.fabric.engine;

import static io.pegaflow.fabric.engine.EngineFixture.hashes;
import static io.pegaflow.fabric.engine.EngineFixture.ids;
import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** Each Save and Load reports its phases once per call, in order, and only the phases it ran (real engine and pool). */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class CallPhaseTest {
    @Test
    void shouldReportEverySavePhaseOnceAndOnlyTheCheckForASaveOfSealedBlocks() throws Exception {
        try (EngineFixture fx = new EngineFixture(64L << 20, EngineSettings.defaults(), RemoteBlockSource.NONE)) {
            ShmKvCache cache = fx.cache(2, 32);
            String ctx = fx.register(cache.registration("i1", "ns", 0, 1, 2, 0));
            fx.save(ctx, ids(0, 8), hashes("h", 8));
            assertEquals(
                    List.of(
                            CallPhase.SAVE_QUEUE,
                            CallPhase.SAVE_RESERVE,
                            CallPhase.SAVE_COPY,
                            CallPhase.SAVE_SEAL,
                            CallPhase.SAVE_REPLY),
                    fx.listener.phases);
            fx.listener.phases.clear();

            // All sealed: answered on the caller's thread after the store's check (timed as the reserve phase).
            int copyThreadsBefore = fx.copies.calls.get();
            assertEquals(new SaveResult(0, 8, 0), fx.save(ctx, ids(0, 8), hashes("h", 8)));
            assertEquals(List.of(CallPhase.SAVE_RESERVE), fx.listener.phases);
            assertEquals(copyThreadsBefore, fx.copies.calls.get());
            fx.listener.phases.clear();

            // One block new among sealed ones: the copy thread's path, copying only that block.
            assertEquals(new SaveResult(1, 8, 1), fx.save(ctx, ids(0, 9), hashes("h", 9)));
            assertEquals(5, fx.listener.phases.size(), fx.listener.phases.toString());
        }
    }

    @Test
    void shouldReportPinQueueCopyCommitForALoadWithAFlag() throws Exception {
        try (EngineFixture fx = new EngineFixture(64L << 20, EngineSettings.defaults(), RemoteBlockSource.NONE)) {
            ShmKvCache cache = fx.cache(2, 32);
            String ctx = fx.register(cache.registration("i1", "ns", 0, 1, 2, 0));
            fx.save(ctx, ids(0, 4), hashes("h", 4));
            fx.listener.phases.clear();

            KvEngineTest.await(fx.load(ctx, ids(10, 4), hashes("h", 4), 0));
            assertEquals(LoadFlagWriter.DONE, fx.awaitFlag(0)[0]);
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
            while (fx.listener.phases.size() < 4 && System.nanoTime() < deadline) {
                Thread.sleep(1);
            }
            assertEquals(
                    List.of(CallPhase.LOAD_PIN, CallPhase.LOAD_QUEUE, CallPhase.LOAD_COPY, CallPhase.LOAD_COMMIT),
                    fx.listener.phases);
        }
    }
}
