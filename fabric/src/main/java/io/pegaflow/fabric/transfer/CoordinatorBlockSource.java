package io.pegaflow.fabric.transfer;

import io.pegaflow.actors.transfer.TransferCoordinator;
import io.pegaflow.fabric.engine.RemoteBlockSource;
import io.pegaflow.store.BlockEntry;
import io.pegaflow.store.BlockStore;
import io.pegaflow.store.NamespaceLayout;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Scheduler;
import org.apache.pekko.actor.typed.javadsl.AskPattern;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The load pipeline's remote stage through this node's {@link TransferCoordinator}: asks it to fetch the missing
 * blocks, then pins whatever of them is sealed here now. Any failure — no holder, lease refused or expired, transfer
 * error, the coordinator's answer not arriving within {@code timeout} — leaves those blocks null (the load reports
 * them failed and vLLM recomputes them); the stage itself never fails.
 */
public final class CoordinatorBlockSource implements RemoteBlockSource {
    private static final Logger log = LoggerFactory.getLogger(CoordinatorBlockSource.class);

    private final BlockStore store;
    private final CompletionStage<ActorRef<TransferCoordinator.Command>> coordinator;
    private final Scheduler scheduler;
    private final Duration timeout;

    public CoordinatorBlockSource(
            BlockStore store,
            CompletionStage<ActorRef<TransferCoordinator.Command>> coordinator,
            Scheduler scheduler,
            Duration timeout) {
        this.store = store;
        this.coordinator = coordinator;
        this.scheduler = scheduler;
        this.timeout = timeout;
    }

    @Override
    public CompletionStage<BlockEntry[]> fetchMissing(NamespaceLayout layout, byte[][] hashes) {
        CompletableFuture<TransferCoordinator.FetchResult> asked = coordinator
                .thenCompose(ref -> AskPattern.<TransferCoordinator.Command, TransferCoordinator.FetchResult>ask(
                        ref,
                        replyTo -> new TransferCoordinator.Command.Fetch(layout, hashes, replyTo),
                        timeout,
                        scheduler))
                .toCompletableFuture();
        return asked.handle((result, error) -> {
            if (error != null) {
                log.debug("remote fetch of {} blocks failed: {}", hashes.length, error.toString());
                return new BlockEntry[hashes.length];
            }
            if (result.failureReason() != null) {
                log.debug("remote fetch: {}", result.failureReason());
            }
            // Pin what is sealed here now, fetched by this load or by another one meanwhile.
            return store.pinForLoad(layout.namespace(), hashes, 0);
        });
    }
}
