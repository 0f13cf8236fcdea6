/**
 * End-to-end harnesses against real node processes (main classes, not JMH): each starts its own loopback cluster and
 * measures from one client thread, waiting for each call before the next.
 */
package io.pegaflow.bench.fabric;
