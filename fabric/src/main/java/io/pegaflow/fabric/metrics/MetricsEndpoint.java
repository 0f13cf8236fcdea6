package io.pegaflow.fabric.metrics;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import com.typesafe.config.ConfigValueFactory;
import java.time.Duration;
import java.util.concurrent.TimeUnit;
import kamon.Kamon;

/**
 * Kamon with its Prometheus reporter serving {@code http://host:metricsPort/metrics}. Kamon is process-global: one
 * node per JVM.
 */
public final class MetricsEndpoint implements AutoCloseable {
    private MetricsEndpoint() {}

    /**
     * @param nodeId added to every metric as the {@code node} tag
     * @param bindHost where the endpoint listens
     */
    public static MetricsEndpoint start(Config base, String nodeId, String bindHost, int port) {
        Config kamon = ConfigFactory.empty()
                .withValue("kamon.prometheus.embedded-server.hostname", ConfigValueFactory.fromAnyRef(bindHost))
                .withValue("kamon.prometheus.embedded-server.port", ConfigValueFactory.fromAnyRef(port))
                .withValue("kamon.environment.tags.node", ConfigValueFactory.fromAnyRef(nodeId))
                .withFallback(base)
                .resolve();
        Kamon.init(kamon);
        return new MetricsEndpoint();
    }

    @Override
    public void close() {
        try {
            scala.concurrent.Await.result(
                    Kamon.stop(),
                    scala.concurrent.duration.Duration.create(
                            Duration.ofSeconds(5).toMillis(), TimeUnit.MILLISECONDS));
        } catch (Exception e) {
            // Stopping reporters is best effort at exit; nothing depends on it.
        }
    }
}
