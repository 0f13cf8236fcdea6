/** The node process: command line, wiring of cluster, gRPC services and metrics. */
package io.pegaflow.fabric;
