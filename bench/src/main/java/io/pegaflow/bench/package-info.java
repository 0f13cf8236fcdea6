/**
 * JMH benchmarks, run from {@code target/benchmarks.jar} (see bench/README.md). Each benchmark's state is confined to
 * its JMH thread.
 */
package io.pegaflow.bench;
