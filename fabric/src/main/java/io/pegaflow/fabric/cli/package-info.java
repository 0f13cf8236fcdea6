/**
 * Subcommands of {@code ./pegaflow} that run on the JVM ({@link io.pegaflow.fabric.cli.Main}): picocli parsing and
 * help, the status client, the demo and the node processes it starts. Run on the main thread; the converters are
 * stateless.
 */
package io.pegaflow.fabric.cli;
