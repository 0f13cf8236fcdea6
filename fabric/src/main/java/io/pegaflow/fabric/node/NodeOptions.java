package io.pegaflow.fabric.node;

import io.pegaflow.config.ByteSize;
import io.pegaflow.config.NodeSpec;
import io.pegaflow.config.Topology;
import io.pegaflow.config.TopologyException;
import io.pegaflow.config.TopologyLoader;
import io.pegaflow.fabric.cli.Args;
import io.pegaflow.fabric.cli.HostPort;
import java.nio.file.Path;
import java.util.Locale;
import java.util.Optional;
import java.util.Set;

/** {@code ./pegaflow node} flags, resolved against the topology into a {@link NodeLaunch}. */
public final class NodeOptions {
    public static final int DEFAULT_GRPC_PORT = 50055;
    public static final String DEFAULT_HOST = "127.0.0.1";
    public static final long DEFAULT_POOL_BYTES = ByteSize.parse("1gb");

    static final Set<String> VALUED = Set.of(
            "topology",
            "node",
            "addr",
            "pool-size",
            "device",
            "log-level",
            "cluster-port",
            "metrics-port",
            "partial-timeout-ms");
    static final Set<String> BOOLEANS = Set.of("help");
    static final Set<String> LOG_LEVELS = Set.of("trace", "debug", "info", "warn", "error");

    public static final String HELP = """
      Usage: pegaflow node [options]

      Starts one PegaFlow node: a Pekko cluster member, the gRPC services and a Prometheus endpoint.
      With no --topology it starts a single-node cluster on 127.0.0.1 (gRPC 50055, cluster 25520, metrics 9091).

        --topology FILE     cluster topology (YAML); needs --node
        --node ID           this node's id in the topology
        --addr HOST:PORT    gRPC listen address (default: the topology's host:grpcPort, or 127.0.0.1:50055).
                            With a topology the port must match and HOST may only widen it (0.0.0.0)
        --pool-size SIZE    block pool size: bytes or 10gb, 500mb, 1.5tb (default: topology, or 1gb)
        --device N          GPU index to serve: pinned pool + CUDA copy engine (default: the topology's
                            first GPU; none = host path). Copy settings: -Dpegaflow.cuda.* in PEGAFLOW_JVM_OPTS
        --cluster-port N    Artery port without a topology (default 25520)
        --metrics-port N    Prometheus port without a topology (default 9091)
        --log-level LEVEL   trace, debug, info, warn, error (default info)
        --partial-timeout-ms N  drop a block still missing slots (e.g. a TP rank) after N ms (default 30000)
        --help              this text
      """;

    private NodeOptions() {}

    public static NodeLaunch resolve(String[] argv) {
        Args args = Args.parse(argv, VALUED, BOOLEANS);
        if (!args.positional().isEmpty()) {
            throw new Args.UsageException(
                    "unexpected argument " + args.positional().getFirst());
        }
        String logLevel = args.value("log-level").orElse("info").toLowerCase(Locale.ROOT);
        if (!LOG_LEVELS.contains(logLevel)) {
            throw new Args.UsageException("--log-level: \"" + logLevel + "\" is not one of " + LOG_LEVELS);
        }
        Optional<HostPort> addr = args.value("addr").map(a -> HostPort.parse("addr", a));
        Optional<Long> poolSize = args.value("pool-size").map(NodeOptions::parsePoolSize);
        Optional<Integer> device = args.intValue("device", 0, 1023);

        Topology topology;
        NodeSpec self;
        if (args.value("topology").isPresent()) {
            if (args.value("node").isEmpty()) {
                throw new Args.UsageException("--topology needs --node ID (which entry of the file is this node)");
            }
            for (String flag : new String[] {"cluster-port", "metrics-port"}) {
                if (args.value(flag).isPresent()) {
                    throw new Args.UsageException(
                            "--" + flag + " is only for a node without --topology; edit the topology");
                }
            }
            topology = load(Path.of(args.value("topology").get()));
            String nodeId = args.value("node").get();
            self = topology.node(nodeId)
                    .orElseThrow(() -> new NodeStartException("node \""
                            + nodeId
                            + "\" is not in the topology (ids: "
                            + topology.nodes().stream().map(NodeSpec::id).toList()
                            + ")"));
            if (addr.isPresent()) {
                checkAddrMatches(self, addr.get());
            }
        } else {
            if (args.value("node").isPresent()) {
                throw new Args.UsageException("--node needs --topology FILE");
            }
            HostPort grpc = addr.orElse(new HostPort(DEFAULT_HOST, DEFAULT_GRPC_PORT));
            // Artery needs a concrete address; a wildcard gRPC bind still joins the cluster on loopback.
            String clusterHost = isWildcard(grpc.host()) ? DEFAULT_HOST : grpc.host();
            Topology local = Topology.localDefault(clusterHost, grpc.port(), poolSize.orElse(DEFAULT_POOL_BYTES));
            NodeSpec n = local.nodes().getFirst();
            self = new NodeSpec(
                    n.id(),
                    n.host(),
                    args.intValue("cluster-port", 1, 65535).orElse(n.clusterPort()),
                    n.grpcPort(),
                    args.intValue("metrics-port", 1, 65535).orElse(n.metricsPort()),
                    device.map(java.util.List::of).orElse(n.gpus()),
                    n.rdmaNics(),
                    n.poolSizeBytes(),
                    n.transport());
            topology = new Topology(local.clusterName(), local.directoryRanges(), java.util.List.of(self));
        }
        String bindHost = addr.map(HostPort::host).orElse(self.host());
        return new NodeLaunch(
                topology,
                self,
                bindHost,
                poolSize.orElse(self.poolSizeBytes()),
                device.or(() -> self.gpus().stream().findFirst()),
                logLevel,
                args.intValue("partial-timeout-ms", 100, 3_600_000).orElse(30_000));
    }

    private static long parsePoolSize(String text) {
        try {
            return ByteSize.parse(text);
        } catch (IllegalArgumentException e) {
            throw new Args.UsageException("--pool-size: " + e.getMessage());
        }
    }

    private static Topology load(Path file) {
        try {
            return TopologyLoader.load(file);
        } catch (TopologyException e) {
            throw new NodeStartException(e.getMessage(), e);
        }
    }

    private static void checkAddrMatches(NodeSpec self, HostPort addr) {
        if (addr.port() != self.grpcPort()) {
            throw new NodeStartException("node "
                    + self.id()
                    + ": --addr port "
                    + addr.port()
                    + " does not match its topology grpcPort "
                    + self.grpcPort()
                    + "; other nodes and clients use the topology's port");
        }
        if (!isWildcard(addr.host()) && !addr.host().equals(self.host())) {
            throw new NodeStartException("node "
                    + self.id()
                    + ": --addr host "
                    + addr.host()
                    + " does not match its topology host "
                    + self.host()
                    + " (use the topology's host, or 0.0.0.0 to listen on every interface)");
        }
    }

    static boolean isWildcard(String host) {
        return host.equals("0.0.0.0") || host.equals("::") || host.equals("[::]");
    }
}
