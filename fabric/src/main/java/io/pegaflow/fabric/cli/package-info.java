/** Subcommands of {@code ./pegaflow}: parsing, the status client and the demo. Run on the main thread. */
package io.pegaflow.fabric.cli;
