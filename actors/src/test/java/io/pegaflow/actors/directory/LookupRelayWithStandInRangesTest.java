package io.pegaflow.actors.directory;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.concurrent.atomic.AtomicInteger;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.apache.pekko.actor.testkit.typed.javadsl.TestProbe;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.cluster.sharding.typed.javadsl.EntityRef;
import org.apache.pekko.cluster.sharding.typed.testkit.javadsl.TestEntityRef;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;

/**
 * The relay against stand-in ranges (actors behind {@code TestEntityRef}s, no cluster): the sharding region is the
 * boundary mocked here, because the case under test — a region dropping the messages it buffered for a range whose
 * hand-off starts — cannot be provoked at will on a real cluster.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class LookupRelayWithStandInRangesTest {
    private static final Duration ASK_AGAIN = Duration.ofMillis(50);

    private ActorTestKit kit;

    @BeforeAll
    void start() {
        kit = ActorTestKit.create("lookup-relay");
    }

    @AfterAll
    void stop() {
        kit.shutdownTestKit();
    }

    /** A range on node {@code host} that ignores its first {@code drops} lookups and answers each fingerprint + 1. */
    private static Behavior<BlockRange.Command> range(int range, int host, int drops, AtomicInteger asked) {
        return Behaviors.receive(BlockRange.Command.class)
                .onMessage(BlockRange.Command.Lookup.class, lookup -> {
                    if (asked.incrementAndGet() > drops) {
                        long[] masks = lookup.fingerprints().clone();
                        for (int i = 0; i < masks.length; i++) {
                            masks[i]++;
                        }
                        lookup.replyTo().tell(new BlockRange.LookupReply(range, lookup.requestId(), masks, true, host));
                    }
                    return Behaviors.same();
                })
                .build();
    }

    @SuppressWarnings("unchecked")
    private ActorRef<LookupRelay.Command> relay(int[] drops, AtomicInteger[] asked, DirectoryCounters counters) {
        EntityRef<BlockRange.Command>[] refs = new EntityRef[drops.length];
        for (int r = 0; r < drops.length; r++) {
            asked[r] = new AtomicInteger();
            ActorRef<BlockRange.Command> entity = kit.spawn(range(r, 1, drops[r], asked[r]));
            refs[r] = TestEntityRef.of(BlockRange.TYPE_KEY, Integer.toString(r), entity);
        }
        return kit.spawn(
                LookupRelay.create(new RangeRefs(refs), new LocalRanges(drops.length), 0, counters, ASK_AGAIN));
    }

    @Test
    void shouldAskAgainARangeWhoseLookupWasDroppedAndAnswerLongBeforeTheTimeout() {
        DirectoryCounters counters = new DirectoryCounters();
        AtomicInteger[] asked = new AtomicInteger[2];
        ActorRef<LookupRelay.Command> relay = relay(new int[] {1, 0}, asked, counters);
        TestProbe<LookupRelay.RelayReply> replies = kit.createTestProbe();
        long started = System.nanoTime();
        relay.tell(new LookupRelay.Command.RelayLookup(
                new int[] {0, 1}, new int[] {2, 1}, new long[] {10, 20, 30}, 10_000, 7, replies.ref()));
        LookupRelay.RelayReply reply = replies.expectMessageClass(LookupRelay.RelayReply.class, Duration.ofSeconds(5));
        long tookMs = (System.nanoTime() - started) / 1_000_000;
        assertEquals(7, reply.requestId());
        assertArrayEquals(new long[] {11, 21, 31}, reply.holderMasks());
        assertArrayEquals(new boolean[] {true, true}, reply.complete());
        assertArrayEquals(new int[] {1, 1}, reply.hostNodes());
        assertTrue(tookMs < 5_000, "answered after " + tookMs + " ms: waited for the 10 s timeout");
        assertTrue(asked[0].get() >= 2, "the dropped range asked again: " + asked[0].get());
        assertEquals(1, asked[1].get(), "the range that answered not asked again");
        assertTrue(counters.lookupsAskedAgain() >= 1);
        replies.expectNoMessage(Duration.ofMillis(200)); // the second answer changes nothing
    }

    @Test
    void shouldAskASilentRangeAgainWithBackoffUntilTheTimeoutAndThenAnswerItIncomplete() {
        DirectoryCounters counters = new DirectoryCounters();
        AtomicInteger[] asked = new AtomicInteger[2];
        ActorRef<LookupRelay.Command> relay = relay(new int[] {Integer.MAX_VALUE, 0}, asked, counters);
        TestProbe<LookupRelay.RelayReply> replies = kit.createTestProbe();
        relay.tell(new LookupRelay.Command.RelayLookup(
                new int[] {0, 1}, new int[] {1, 1}, new long[] {10, 20}, 600, 8, replies.ref()));
        LookupRelay.RelayReply reply = replies.expectMessageClass(LookupRelay.RelayReply.class, Duration.ofSeconds(5));
        assertArrayEquals(new long[] {0, 21}, reply.holderMasks());
        assertArrayEquals(new boolean[] {false, true}, reply.complete());
        assertArrayEquals(new int[] {-1, 1}, reply.hostNodes());
        int askedBySilent = asked[0].get();
        // asked at 0, then again at 50, 150, 350 ms (the wait doubling) before the 600 ms timeout
        assertTrue(askedBySilent >= 3 && askedBySilent <= 5, "a silent range asked with backoff: " + askedBySilent);
        replies.expectNoMessage(Duration.ofMillis(300));
        assertEquals(askedBySilent, asked[0].get(), "no more asks once the lookup has answered");
    }
}
