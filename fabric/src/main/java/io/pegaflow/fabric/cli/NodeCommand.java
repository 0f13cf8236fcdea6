package io.pegaflow.fabric.cli;

import io.pegaflow.fabric.node.FabricNode;
import io.pegaflow.fabric.node.NodeLaunch;
import io.pegaflow.fabric.node.NodeOptions;
import java.util.concurrent.Callable;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;

/** {@code pegaflow node [options]}: starts one node and runs until it is shut down. */
@Command(
        name = "node",
        mixinStandardHelpOptions = true,
        versionProvider = PegaflowVersion.class,
        sortOptions = false,
        description = {
            "Starts one node: a Pekko cluster member, the gRPC services and a Prometheus endpoint.",
            "",
            "With no --topology it starts a single-node cluster on 127.0.0.1. A node refuses to start when its"
                    + " topology entry names a host that is not this machine, when --addr disagrees with the"
                    + " topology, or when one of its ports is taken. SIGTERM or the Shutdown RPC make it leave the"
                    + " cluster gracefully and exit 0."
        },
        exitCodeListHeading = "%nExit codes:%n",
        exitCodeList = {
            "0:the node was shut down",
            "1:the node could not start (topology, ports, host, GPU)",
            "2:bad command line"
        })
final class NodeCommand implements Callable<Integer> {
    @Mixin
    private NodeOptions options;

    @Override
    public Integer call() {
        NodeLaunch launch = options.resolve();
        Main.setRootLogLevel(launch.logLevel());
        Logger log = LoggerFactory.getLogger(NodeCommand.class);
        FabricNode node = FabricNode.start(launch);
        node.whenTerminated().toCompletableFuture().join();
        log.info("node {} stopped", launch.self().id());
        return 0;
    }
}
