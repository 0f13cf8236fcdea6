/** Benchmarks (JMH and harnesses). The first ones arrive with the local KV engine, issue [2 of 7]. */
package io.pegaflow.bench;
