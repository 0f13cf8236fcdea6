package io.pegaflow.actors.directory;

import java.time.Duration;
import org.apache.pekko.actor.NoSerializationVerificationNeeded;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.javadsl.Behaviors;

/**
 * Drains the node's {@link DirectoryPublisher} every {@code flush-interval}, and sooner when the publisher signals
 * that enough changes wait, telling each batch to its range through sharding. The only caller of {@link
 * DirectoryPublisher#drain}, so per-range sequence numbers have one writer.
 */
public final class PublishFlusher {
    /** Timer ticks and early-flush signals; local only. */
    public enum Command implements NoSerializationVerificationNeeded {
        TICK,
        NOW
    }

    private PublishFlusher() {}

    static Behavior<Command> create(DirectoryPublisher publisher, RangeRefs ranges, Duration interval) {
        return Behaviors.setup(context -> {
            publisher.onFlushNeeded(() -> context.getSelf().tell(Command.NOW));
            return Behaviors.withTimers(timers -> {
                timers.startTimerWithFixedDelay(Command.TICK, interval);
                return Behaviors.receive(Command.class)
                        .onMessage(Command.class, c -> {
                            publisher.drain(
                                    (range, publish) -> ranges.get(range).tell(publish));
                            return Behaviors.same();
                        })
                        .build();
            });
        });
    }
}
