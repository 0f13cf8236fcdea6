package io.pegaflow.proxy;

import com.typesafe.config.Config;
import java.util.concurrent.atomic.AtomicBoolean;
import kamon.Kamon;
import kamon.metric.MeasurementUnit;
import kamon.metric.Metric;
import kamon.prometheus.PrometheusReporter;
import kamon.tag.TagSet;
import scala.Option;

/**
 * The proxy's metrics, served by the proxy itself on {@code GET /metrics} (Prometheus text):
 * {@code pegaflow_proxy_requests_total{endpoint,outcome}} and {@code
 * pegaflow_proxy_leg_duration_seconds{leg,outcome}} (prefill: request to its whole answer; decode: request to the
 * end of its streamed answer). Kamon is process-global: started once per JVM.
 */
public final class ProxyMetrics {
    private static final AtomicBoolean STARTED = new AtomicBoolean();
    private static final String REQUESTS = "pegaflow.proxy.requests";
    private static final String LEG = "pegaflow.proxy.leg.duration";

    private ProxyMetrics() {}

    /** Starts Kamon with {@code config} (its Prometheus reporter without its own server) unless already started. */
    static void start(Config config) {
        if (STARTED.compareAndSet(false, true)) {
            Kamon.init(config);
        }
    }

    static void request(String endpoint, String outcome) {
        requests()
                .withTags(TagSet.builder()
                        .add("endpoint", endpoint)
                        .add("outcome", outcome)
                        .build())
                .increment();
    }

    static void leg(String leg, String outcome, long durationNs) {
        legs().withTags(TagSet.builder().add("leg", leg).add("outcome", outcome).build())
                .record(durationNs);
    }

    /** The latest Prometheus scrape (refreshed every Kamon tick); empty before the first tick. */
    static String scrape() {
        Option<String> latest = PrometheusReporter.latestScrapeData();
        return latest.isDefined() ? latest.get() : "";
    }

    private static Metric.Counter requests() {
        return Kamon.counter(REQUESTS, "completions the proxy handled, by endpoint and outcome");
    }

    private static Metric.Histogram legs() {
        return Kamon.histogram(
                LEG,
                "latency of each leg (prefill, decode) by outcome",
                MeasurementUnit.time().nanoseconds());
    }
}
