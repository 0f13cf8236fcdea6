package io.pegaflow.actors.directory;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.SplittableRandom;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

class RangeStateTest {
    private static final int RANGES = 4;
    private static final int RANGE = 1;
    private static final long TIMEOUT = 10_000_000_000L;
    private static final long RETRY = 2_000_000_000L;
    private static final long UID_A = 1001;
    private static final long UID_B = 2002;
    private static final int A = 0;
    private static final int B = 1;

    private final long[] fp = fingerprintsIn(RANGE, 8);
    private RangeState state;
    private long now;

    @BeforeEach
    void setUp() {
        state = new RangeState(RANGE, RANGES, 3, TIMEOUT, 1_000);
        state.membershipKnown();
        now = 1_000;
    }

    @Test
    void shouldApplyPublishesInSequenceAndIgnoreDuplicates() {
        live(A, UID_A, 0);
        state.onPublish(publish(A, UID_A, 1, add(fp[0], fp[1]), none()), now);
        state.onPublish(publish(A, UID_A, 2, none(), add(fp[0])), now);
        state.onPublish(publish(A, UID_A, 1, add(fp[0]), none()), now); // duplicate: must not re-add
        assertEquals(0, holders(fp[0]));
        assertEquals(bit(A), holders(fp[1]));
        assertEquals(RangeState.Phase.LIVE, state.phase(A));
        assertTrue(state.complete(now));
    }

    @Test
    void shouldIgnorePublishesFromAnIncarnationItDoesNotTrust() {
        live(A, UID_A, 0);
        state.onPublish(publish(A, 999, 1, add(fp[0]), none()), now);
        state.onPublish(publish(B, UID_B, 1, add(fp[1]), none()), now); // B is not a member here
        assertEquals(0, holders(fp[0]));
        assertEquals(0, holders(fp[1]));
        assertEquals(2, state.ignoredMessages());
    }

    @Test
    void shouldReplaceANodesHoldingsWithItsSnapshotAndReplayNewerPublishes() {
        state.memberPresent(A, UID_A, true, now);
        long request = request(A);
        // Publishes 1..3 arrive before the answer; they are visible at once.
        state.onPublish(publish(A, UID_A, 1, add(fp[0]), none()), now);
        state.onPublish(publish(A, UID_A, 2, add(fp[1]), none()), now);
        state.onPublish(publish(A, UID_A, 3, none(), add(fp[0])), now);
        assertEquals(bit(A), holders(fp[1]));
        assertFalse(state.complete(now));
        // The answer was read after publish 1 was sent: it holds fp0 (removed later, by 3) and fp2.
        state.onHoldings(holdings(A, UID_A, request, 1, 0, true, fp[0], fp[2]), now);
        assertEquals(0, holders(fp[0]), "removal 3 is newer than the snapshot");
        assertEquals(bit(A), holders(fp[1]), "publish 2 is newer than the snapshot");
        assertEquals(bit(A), holders(fp[2]));
        assertEquals(RangeState.Phase.LIVE, state.phase(A));
        assertTrue(state.complete(now));
        // A publish the snapshot already covers arrives late: ignored; the next one applies.
        state.onPublish(publish(A, UID_A, 2, none(), add(fp[1])), now);
        assertEquals(bit(A), holders(fp[1]));
        state.onPublish(publish(A, UID_A, 4, add(fp[3]), none()), now);
        assertEquals(bit(A), holders(fp[3]));
    }

    @Test
    void shouldNotLetPublishesCoveredBySnapshotUndoIt() {
        state.memberPresent(A, UID_A, true, now);
        long request = request(A);
        // The answer arrives first; labelled 2: publishes 1 and 2 (add fp0, remove fp0) are in it already.
        state.onHoldings(holdings(A, UID_A, request, 2, 0, true, fp[1]), now);
        state.onPublish(publish(A, UID_A, 1, add(fp[0]), none()), now);
        assertEquals(0, holders(fp[0]), "publish 1 is older than the snapshot");
        state.onPublish(publish(A, UID_A, 3, none(), add(fp[1])), now);
        assertEquals(0, holders(fp[1]));
    }

    @Test
    void shouldKeepOtherNodesHoldingsWhenOneNodesSnapshotArrives() {
        live(A, UID_A, 0);
        state.onPublish(publish(A, UID_A, 1, add(fp[0]), none()), now);
        state.memberPresent(B, UID_B, true, now);
        state.onHoldings(holdings(B, UID_B, request(B), 0, 0, true, fp[0], fp[1]), now);
        assertEquals(bit(A) | bit(B), holders(fp[0]));
        assertEquals(bit(B), holders(fp[1]));
    }

    @Test
    void shouldAskAgainWhenAPublishIsMissing() {
        live(A, UID_A, 0);
        state.onPublish(publish(A, UID_A, 1, add(fp[0]), none()), now);
        state.onPublish(publish(A, UID_A, 3, add(fp[1]), none()), now); // 2 lost
        assertEquals(bit(A), holders(fp[1]), "applied anyway, for freshness");
        assertEquals(RangeState.Phase.AWAITING, state.phase(A));
        assertTrue(state.wantsHoldings(A, now, RETRY));
        assertFalse(state.complete(now));
        assertEquals(1, state.resyncs());
        long request = request(A);
        state.onHoldings(holdings(A, UID_A, request, 3, 0, true, fp[1], fp[2]), now);
        assertEquals(0, holders(fp[0]), "the snapshot says fp0 is gone (removal 2 was the lost one)");
        assertEquals(RangeState.Phase.LIVE, state.phase(A));
    }

    @Test
    void shouldAskAgainWhenTheReplayFindsAGap() {
        state.memberPresent(A, UID_A, true, now);
        long request = request(A);
        state.onPublish(publish(A, UID_A, 3, add(fp[0]), none()), now);
        state.onPublish(publish(A, UID_A, 5, add(fp[1]), none()), now); // 4 lost
        state.onHoldings(holdings(A, UID_A, request, 2, 0, true), now);
        assertEquals(RangeState.Phase.AWAITING, state.phase(A));
        assertTrue(state.wantsHoldings(A, now, RETRY));
        state.onHoldings(holdings(A, UID_A, request(A), 5, 0, true, fp[0]), now);
        assertEquals(RangeState.Phase.LIVE, state.phase(A));
        assertEquals(0, holders(fp[1]));
    }

    @Test
    void shouldAskAgainWhenTheLogOverflowed() {
        state = new RangeState(RANGE, RANGES, 3, TIMEOUT, 2);
        state.membershipKnown();
        state.memberPresent(A, UID_A, true, now);
        long request = request(A);
        state.onPublish(publish(A, UID_A, 1, add(fp[0], fp[1]), none()), now);
        state.onPublish(publish(A, UID_A, 2, add(fp[2]), none()), now); // over the log limit: not kept
        state.onHoldings(holdings(A, UID_A, request, 1, 0, true, fp[0], fp[1]), now);
        assertEquals(RangeState.Phase.AWAITING, state.phase(A));
        state.onHoldings(holdings(A, UID_A, request(A), 2, 0, true, fp[0], fp[1], fp[2]), now);
        assertEquals(RangeState.Phase.LIVE, state.phase(A));
        assertEquals(bit(A), holders(fp[2]));
    }

    @Test
    void shouldPurgeANodeThatLeftAndIgnoreItsLatePublishes() {
        live(A, UID_A, 0);
        live(B, UID_B, 0);
        state.onPublish(publish(A, UID_A, 1, add(fp[0], fp[1]), none()), now);
        state.onPublish(publish(B, UID_B, 1, add(fp[0]), none()), now);
        state.memberGone(A, UID_A);
        assertEquals(bit(B), holders(fp[0]));
        assertEquals(0, holders(fp[1]));
        state.onPublish(publish(A, UID_A, 2, add(fp[2]), none()), now);
        assertEquals(0, holders(fp[2]));
        assertTrue(state.complete(now));
    }

    @Test
    void shouldIgnoreAPurgeOfAnIncarnationItNoLongerTrusts() {
        live(A, UID_A, 0);
        state.onPublish(publish(A, UID_A, 1, add(fp[0]), none()), now);
        state.memberGone(A, 77);
        assertEquals(bit(A), holders(fp[0]));
    }

    @Test
    void shouldDropTheOldIncarnationsHoldingsWhenANodeRestarts() {
        live(A, UID_A, 0);
        state.onPublish(publish(A, UID_A, 1, add(fp[0]), none()), now);
        state.memberPresent(A, 5005, true, now);
        assertEquals(0, holders(fp[0]));
        assertEquals(RangeState.Phase.AWAITING, state.phase(A));
        state.onHoldings(holdings(A, 5005, request(A), 0, 0, true, fp[1]), now);
        assertEquals(bit(A), holders(fp[1]));
    }

    @Test
    void shouldReportIncompleteUntilEveryUpNodeAnsweredOrTheTimeoutPassed() {
        state.memberPresent(A, UID_A, true, now);
        state.memberPresent(B, UID_B, false, now); // Joining: not awaited
        request(A);
        assertFalse(state.complete(now));
        assertFalse(state.complete(now + TIMEOUT - 1));
        assertTrue(state.complete(now + TIMEOUT), "a node silent for rebuild-timeout no longer blocks");
        assertTrue(state.wantsHoldings(A, now + RETRY, RETRY), "but it is asked again");
        RangeState fresh = new RangeState(RANGE, RANGES, 3, TIMEOUT, 1_000);
        assertFalse(fresh.complete(now), "incomplete until membership is known");
    }

    @Test
    void shouldDiscardAnAnswerWithAMissingChunkOrAStaleRequestId() {
        state.memberPresent(A, UID_A, true, now);
        long first = request(A);
        long second = request(A);
        state.onHoldings(holdings(A, UID_A, first, 0, 0, true, fp[0]), now);
        assertEquals(0, holders(fp[0]), "answer to a superseded request");
        state.onHoldings(holdings(A, UID_A, second, 0, 0, false, fp[0]), now);
        state.onHoldings(holdings(A, UID_A, second, 0, 2, true, fp[1]), now); // chunk 1 lost
        assertEquals(RangeState.Phase.AWAITING, state.phase(A));
        assertTrue(state.wantsHoldings(A, now, RETRY));
        long third = request(A);
        state.onHoldings(holdings(A, UID_A, third, 0, 0, false, fp[0]), now);
        state.onHoldings(holdings(A, UID_A, third, 0, 1, true, fp[1]), now);
        assertEquals(RangeState.Phase.LIVE, state.phase(A));
        assertEquals(bit(A), holders(fp[0]));
        assertEquals(bit(A), holders(fp[1]));
    }

    @Test
    void shouldIgnoreFingerprintsOutsideItsRange() {
        live(A, UID_A, 0);
        long stranger = fingerprintsIn(RANGE + 1, 1)[0];
        state.onPublish(publish(A, UID_A, 1, add(stranger), none()), now);
        assertEquals(0, state.entries());
    }

    // ---- helpers ----

    private void live(int node, long uid, long label) {
        state.memberPresent(node, uid, true, now);
        state.onHoldings(holdings(node, uid, request(node), label, 0, true), now);
        assertEquals(RangeState.Phase.LIVE, state.phase(node));
    }

    private long nextRequest = 100;

    private long request(int node) {
        long id = ++nextRequest;
        state.requested(node, id, now);
        return id;
    }

    private long holders(long fingerprint) {
        long[] masks = new long[1];
        state.lookup(new long[] {fingerprint}, masks);
        return masks[0];
    }

    private static long bit(int node) {
        return DirectoryNodes.bit(node);
    }

    private static long[] add(long... fps) {
        return fps;
    }

    private static long[] none() {
        return new long[0];
    }

    private static BlockRange.Command.Publish publish(int node, long uid, long seq, long[] added, long[] removed) {
        return new BlockRange.Command.Publish(node, uid, seq, added, removed);
    }

    private static BlockRange.Command.Holdings holdings(
            int node, long uid, long request, long label, int chunk, boolean last, long... fps) {
        return new BlockRange.Command.Holdings(node, uid, request, label, chunk, last, fps);
    }

    static long[] fingerprintsIn(int range, int n) {
        SplittableRandom random = new SplittableRandom(range * 31L + n);
        long[] out = new long[n];
        int k = 0;
        while (k < n) {
            long fp = random.nextLong();
            if (fp != 0 && Fingerprints.rangeOf(fp, RANGES) == range) {
                out[k++] = fp;
            }
        }
        return out;
    }
}
