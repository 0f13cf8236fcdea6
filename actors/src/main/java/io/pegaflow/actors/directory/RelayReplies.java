package io.pegaflow.actors.directory;

import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.javadsl.Behaviors;

/**
 * Where a node's {@link DirectoryClient} waits for {@link LookupRelay.RelayReply relay replies}: one long-lived actor
 * (the {@code replyTo} of every relayed lookup of this node) and the futures by request id. Artery resolves a
 * long-lived recipient once and caches it; the temporary actor of an ask had a new path at every call, resolved on the
 * relay's node (its serializer) and registered and removed on this one.
 *
 * <p>Thread-safe: {@link #register} runs on any caller's thread, the actor completes futures on its own; the map is
 * concurrent, and each future completes once (a reply after its timeout finds nothing and is dropped).
 */
final class RelayReplies {
    private final ConcurrentHashMap<Long, CompletableFuture<LookupRelay.RelayReply>> waiting =
            new ConcurrentHashMap<>();
    private final AtomicLong nextId = new AtomicLong(1);

    /** A request id and the future its reply completes; completed with {@code null} after {@code timeout}. */
    Waiter register(Duration timeout) {
        long id = nextId.getAndIncrement();
        CompletableFuture<LookupRelay.RelayReply> reply = new CompletableFuture<>();
        waiting.put(id, reply);
        reply.completeOnTimeout(null, timeout.toNanos(), TimeUnit.NANOSECONDS)
                .whenComplete((r, e) -> waiting.remove(id, reply));
        return new Waiter(id, reply);
    }

    record Waiter(long requestId, CompletableFuture<LookupRelay.RelayReply> reply) {}

    /** Lookups waiting for their reply (for tests: none is left behind). */
    int waiting() {
        return waiting.size();
    }

    Behavior<LookupRelay.RelayReply> behavior() {
        return Behaviors.receiveMessage(reply -> {
            CompletableFuture<LookupRelay.RelayReply> waiter = waiting.remove(reply.requestId());
            if (waiter != null) {
                waiter.complete(reply);
            }
            return Behaviors.same();
        });
    }
}
