package io.pegaflow.fabric.cli;

import io.pegaflow.proto.fabric.ClusterStatusRequest;
import io.pegaflow.proto.fabric.ClusterStatusResponse;
import java.io.PrintStream;
import java.time.Duration;
import java.util.Set;
import java.util.concurrent.TimeUnit;

/** {@code pegaflow status --endpoint HOST:PORT [--json]}: prints the cluster as one node sees it. */
public final class StatusCommand {
    public static final String HELP = """
      Usage: pegaflow status [--endpoint HOST:PORT] [--json] [--timeout-ms N]

      Prints the cluster members (address, node id, status, roles) as the node at HOST:PORT sees them.
        --endpoint HOST:PORT  a node's gRPC address (default 127.0.0.1:50055)
        --json                machine-readable output
        --timeout-ms N        give up after N ms (default 5000)
      Exit code 0 on an answer, 1 when the node cannot be reached.
      """;

    private StatusCommand() {}

    public static int run(String[] argv, PrintStream out, PrintStream err) {
        Args args = Args.parse(argv, Set.of("endpoint", "timeout-ms"), Set.of("json", "help"));
        if (args.flag("help")) {
            out.print(HELP);
            return 0;
        }
        HostPort endpoint = HostPort.parse("endpoint", args.value("endpoint").orElse("127.0.0.1:50055"));
        Duration timeout =
                Duration.ofMillis(args.intValue("timeout-ms", 1, 3_600_000).orElse(5000));
        try (FabricClients clients = new FabricClients()) {
            var client = clients.fabric(endpoint, timeout);
            ClusterStatusResponse status = client.clusterStatus(ClusterStatusRequest.getDefaultInstance())
                    .toCompletableFuture()
                    .get(timeout.toMillis() + 1000, TimeUnit.MILLISECONDS);
            out.print(args.flag("json") ? StatusFormat.json(status) : StatusFormat.table(status));
            client.close();
            return 0;
        } catch (Exception e) {
            err.println("pegaflow status: no answer from " + endpoint + ": " + Main.rootMessage(e));
            return 1;
        }
    }
}
