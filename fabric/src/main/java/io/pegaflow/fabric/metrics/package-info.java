/**
 * Kamon instruments and the Prometheus endpoint. Instruments are thread-safe; samplers run on one daemon thread.
 */
package io.pegaflow.fabric.metrics;
