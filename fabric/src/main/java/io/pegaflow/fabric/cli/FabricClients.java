package io.pegaflow.fabric.cli;

import com.typesafe.config.ConfigFactory;
import io.pegaflow.proto.fabric.FabricClient;
import java.time.Duration;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.grpc.GrpcClientSettings;

/** gRPC clients for command-line tools and tests: a small local (non-cluster) ActorSystem and plaintext channels. */
public final class FabricClients implements AutoCloseable {
    private final ActorSystem<Void> system;

    public FabricClients() {
        this.system = ActorSystem.create(
                Behaviors.empty(),
                "pegaflow-cli",
                ConfigFactory.parseString("""
                    pekko.actor.provider = local
                    pekko.loggers = ["org.apache.pekko.event.slf4j.Slf4jLogger"]
                    pekko.logging-filter = "org.apache.pekko.event.slf4j.Slf4jLoggingFilter"
                    pekko.loglevel = WARNING
                    pekko.stdout-loglevel = OFF
                    pekko.coordinated-shutdown.run-by-jvm-shutdown-hook = off
                    """).withFallback(ConfigFactory.load()));
    }

    /** A client for the Fabric service at {@code endpoint}; every call fails after {@code deadline}. */
    public FabricClient fabric(HostPort endpoint, Duration deadline) {
        GrpcClientSettings settings = GrpcClientSettings.connectToServiceAt(endpoint.host(), endpoint.port(), system)
                .withTls(false)
                .withDeadline(deadline);
        return FabricClient.create(settings, system);
    }

    /** A client for the Engine service at {@code endpoint} (tests and tools acting as a worker). */
    public io.pegaflow.proto.engine.EngineClient engine(HostPort endpoint, Duration deadline) {
        GrpcClientSettings settings = GrpcClientSettings.connectToServiceAt(endpoint.host(), endpoint.port(), system)
                .withTls(false)
                .withDeadline(deadline);
        return io.pegaflow.proto.engine.EngineClient.create(settings, system);
    }

    public ActorSystem<Void> system() {
        return system;
    }

    @Override
    public void close() {
        system.terminate();
        system.getWhenTerminated().toCompletableFuture().join();
    }
}
