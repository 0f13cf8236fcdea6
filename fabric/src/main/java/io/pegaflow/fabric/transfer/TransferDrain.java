package io.pegaflow.fabric.transfer;

import io.pegaflow.actors.transfer.TransferCoordinator;
import java.time.Duration;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.TimeUnit;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Scheduler;
import org.apache.pekko.actor.typed.javadsl.AskPattern;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Node shutdown, before the pool is freed: the transfer coordinator cancels its transfers through the transport and
 * aborts their reservations once the transport's completions say nothing more lands in them ({@link
 * TransferCoordinator.Command.Drain}). If that does not finish in time, the transport is closed (after which no
 * transport thread touches the pool, and every transfer is completed) and the drain is asked again.
 */
public final class TransferDrain {
    private static final Logger log = LoggerFactory.getLogger(TransferDrain.class);

    private TransferDrain() {}

    /**
     * Blocks the calling shutdown thread for at most about twice {@code timeout}.
     *
     * @return how many fetches the drain ended; -1 when the coordinator never started or did not answer
     */
    public static int drain(
            CompletionStage<ActorRef<TransferCoordinator.Command>> coordinator,
            NodeTransport transport,
            Scheduler scheduler,
            Duration timeout) {
        ActorRef<TransferCoordinator.Command> ref;
        try {
            ref = coordinator.toCompletableFuture().getNow(null);
        } catch (RuntimeException e) {
            return -1; // never started: it reserved nothing
        }
        if (ref == null) {
            return -1;
        }
        try {
            return ask(ref, scheduler, timeout);
        } catch (Exception first) {
            log.warn("transfer drain did not finish within {} ms; closing the transport first", timeout.toMillis());
            transport.close();
            try {
                return ask(ref, scheduler, timeout);
            } catch (Exception second) {
                log.warn("transfer drain failed after the transport closed: {}", second.toString());
                return -1;
            }
        }
    }

    private static int ask(ActorRef<TransferCoordinator.Command> ref, Scheduler scheduler, Duration timeout)
            throws Exception {
        return AskPattern.<TransferCoordinator.Command, TransferCoordinator.Drained>ask(
                        ref, TransferCoordinator.Command.Drain::new, timeout, scheduler)
                .toCompletableFuture()
                .get(timeout.toMillis() + 500, TimeUnit.MILLISECONDS)
                .fetchesEnded();
    }
}
