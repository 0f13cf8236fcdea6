package io.pegaflow.fabric.node;

import io.pegaflow.actors.directory.DirectoryNode;
import io.pegaflow.actors.node.NodeGuardian;
import java.time.Duration;
import java.util.concurrent.CompletionStage;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.javadsl.AskPattern;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Spawns the directory's per-node actors as children of the node guardian, so they stop with the node's other actors
 * before it leaves the cluster. Asynchronous: a refusal (guardian stopping, name taken) is logged, never thrown.
 */
final class GuardianSpawner implements DirectoryNode.Spawner {
    private static final Logger log = LoggerFactory.getLogger(GuardianSpawner.class);
    private static final Duration SPAWN_TIMEOUT = Duration.ofSeconds(10);

    private final ActorSystem<?> system;
    private final CompletionStage<ActorRef<NodeGuardian.Command>> guardian;

    GuardianSpawner(ActorSystem<?> system, CompletionStage<ActorRef<NodeGuardian.Command>> guardian) {
        this.system = system;
        this.guardian = guardian;
    }

    @Override
    public <T> void spawn(org.apache.pekko.actor.typed.Behavior<T> behavior, String name, Class<T> protocol) {
        NodeGuardian.ChildKey<T> key = new NodeGuardian.ChildKey<>(name, protocol);
        guardian.thenCompose(ref -> AskPattern.<NodeGuardian.Command, ActorRef<T>>askWithStatus(
                        ref,
                        replyTo -> new NodeGuardian.Command.SpawnChild<>(key, behavior, replyTo),
                        SPAWN_TIMEOUT,
                        system.scheduler()))
                .whenComplete((child, failure) -> {
                    if (failure != null) {
                        log.error("directory actor {} not started: {}", name, failure.getMessage());
                    }
                });
    }
}
