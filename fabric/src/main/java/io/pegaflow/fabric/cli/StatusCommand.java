package io.pegaflow.fabric.cli;

import io.pegaflow.proto.fabric.ClusterStatusRequest;
import io.pegaflow.proto.fabric.ClusterStatusResponse;
import java.io.PrintStream;
import java.time.Duration;
import java.util.concurrent.Callable;
import java.util.concurrent.TimeUnit;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/** {@code pegaflow status [--endpoint HOST:PORT] [--json]}: prints the cluster as one node sees it. */
@Command(
        name = "status",
        mixinStandardHelpOptions = true,
        versionProvider = PegaflowVersion.class,
        sortOptions = false,
        description = "Prints the cluster members (address, node id, status, roles) as one node sees them.",
        exitCodeListHeading = "%nExit codes:%n",
        exitCodeList = {"0:the node answered", "1:no answer from the node", "2:bad command line"})
final class StatusCommand implements Callable<Integer> {
    private final PrintStream out;
    private final PrintStream err;

    @Option(
            names = "--endpoint",
            paramLabel = "HOST:PORT",
            defaultValue = "127.0.0.1:50055",
            converter = HostPort.Converter.class,
            description = "A node's gRPC address (default ${DEFAULT-VALUE}).")
    private HostPort endpoint;

    @Option(names = "--json", description = "Machine-readable output.")
    private boolean json;

    @Option(
            names = "--timeout-ms",
            paramLabel = "N",
            defaultValue = "5000",
            converter = IntInRange.CallTimeoutMs.class,
            description = "Give up after N ms, 1..3600000 (default ${DEFAULT-VALUE}).")
    private int timeoutMs;

    StatusCommand(PrintStream out, PrintStream err) {
        this.out = out;
        this.err = err;
    }

    @Override
    public Integer call() {
        Main.setRootLogLevel("warn");
        Duration timeout = Duration.ofMillis(timeoutMs);
        try (FabricClients clients = new FabricClients()) {
            var client = clients.fabric(endpoint, timeout);
            ClusterStatusResponse status = client.clusterStatus(ClusterStatusRequest.getDefaultInstance())
                    .toCompletableFuture()
                    .get(timeout.toMillis() + 1000, TimeUnit.MILLISECONDS);
            out.print(json ? StatusFormat.json(status) : StatusFormat.table(status));
            client.close();
            return 0;
        } catch (Exception e) {
            err.println("pegaflow status: no answer from " + endpoint + ": " + Main.rootMessage(e));
            return 1;
        }
    }
}
