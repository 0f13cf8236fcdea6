package io.pegaflow.fabric.node;

import io.pegaflow.config.ByteSize;
import io.pegaflow.config.NodeSpec;
import io.pegaflow.config.Topology;
import io.pegaflow.config.TopologyException;
import io.pegaflow.config.TopologyLoader;
import io.pegaflow.fabric.cli.HostPort;
import io.pegaflow.fabric.cli.IntInRange;
import io.pegaflow.fabric.cli.LogLevel;
import io.pegaflow.fabric.cli.PoolSize;
import java.nio.file.Path;
import java.util.List;
import java.util.Optional;
import picocli.CommandLine;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.ParameterException;
import picocli.CommandLine.Spec;

/**
 * {@code ./pegaflow node} flags (a picocli mixin: the help is generated from the {@link Option}s below), resolved
 * against the topology into a {@link NodeLaunch}. Picocli checks each value as it parses; {@link #resolve()} checks
 * how the flags combine, throwing {@link ParameterException} (a usage error, exit code 2) or {@link
 * NodeStartException} (the topology does not allow this node).
 */
public final class NodeOptions {
    public static final int DEFAULT_GRPC_PORT = 50055;
    public static final String DEFAULT_HOST = "127.0.0.1";
    public static final long DEFAULT_POOL_BYTES = ByteSize.parse("1gb");

    @Spec
    private CommandSpec spec;

    @Option(
            names = "--topology",
            paramLabel = "FILE",
            description = "Cluster topology (YAML); needs --node. Without it: a single-node cluster on 127.0.0.1"
                    + " (gRPC 50055, cluster 25520, metrics 9091).")
    private Path topology;

    @Option(names = "--node", paramLabel = "ID", description = "This node's id in the topology.")
    private String nodeId;

    @Option(
            names = "--addr",
            paramLabel = "HOST:PORT",
            converter = HostPort.Converter.class,
            description = "gRPC listen address (default: the topology's host:grpcPort, or 127.0.0.1:50055). With a"
                    + " topology the port must match and HOST may only widen it (0.0.0.0).")
    private HostPort addr;

    @Option(
            names = "--pool-size",
            paramLabel = "SIZE",
            converter = PoolSize.class,
            description = "Block pool size: bytes or 10gb, 500mb, 1.5tb (default: the topology's, or 1gb).")
    private Long poolSizeBytes;

    @Option(
            names = "--device",
            paramLabel = "N",
            converter = IntInRange.DeviceIndex.class,
            description = "Serve only GPU N, 0..1023 (the same as --devices N).")
    private Integer device;

    @Option(
            names = "--devices",
            paramLabel = "LIST",
            converter = DevicesConverter.class,
            description = "GPUs to serve: indices like 0,1,2, all, or none (the host copy path). One pool pinned for"
                    + " all of them and a CUDA copy engine per GPU (default: the topology's gpus, else every GPU the"
                    + " driver shows; none on a machine without CUDA). Settings: -Dpegaflow.cuda.* and"
                    + " -Dpegaflow.pool.* in PEGAFLOW_JVM_OPTS.")
    private DeviceSelection devices;

    /** Parses {@code --devices} text, as picocli needs it. */
    public static final class DevicesConverter implements CommandLine.ITypeConverter<DeviceSelection> {
        @Override
        public DeviceSelection convert(String value) {
            try {
                return DeviceSelection.parse(value);
            } catch (IllegalArgumentException e) {
                throw new CommandLine.TypeConversionException(e.getMessage());
            }
        }
    }

    @Option(
            names = "--cluster-port",
            paramLabel = "N",
            converter = IntInRange.Port.class,
            description = "Artery port, only without --topology (default 25520).")
    private Integer clusterPort;

    @Option(
            names = "--metrics-port",
            paramLabel = "N",
            converter = IntInRange.Port.class,
            description = "Prometheus port, only without --topology (default 9091).")
    private Integer metricsPort;

    @Option(
            names = "--log-level",
            paramLabel = "LEVEL",
            defaultValue = "info",
            converter = LogLevel.class,
            completionCandidates = LogLevel.Names.class,
            description = "${COMPLETION-CANDIDATES} (default ${DEFAULT-VALUE}).")
    private String logLevel;

    @Option(
            names = "--partial-timeout-ms",
            paramLabel = "N",
            defaultValue = "30000",
            converter = IntInRange.PartialTimeoutMs.class,
            description = "Drop a block still missing slots (e.g. a TP rank) after N ms, 100..3600000"
                    + " (default ${DEFAULT-VALUE}).")
    private int partialTimeoutMs;

    /** Parses {@code argv} (the arguments after {@code node}) and resolves them; for tests and tools. */
    public static NodeLaunch resolve(String[] argv) {
        NodeOptions options = new NodeOptions();
        new CommandLine(options).parseArgs(argv);
        return options.resolve();
    }

    /** The launch these flags describe; call after picocli has parsed them. */
    public NodeLaunch resolve() {
        Optional<HostPort> addr = Optional.ofNullable(this.addr);
        Optional<Long> poolSize = Optional.ofNullable(poolSizeBytes);
        if (this.device != null && this.devices != null) {
            throw usage("--device and --devices both name GPUs; give one of them");
        }
        Optional<DeviceSelection> flagged = this.device != null
                ? Optional.of(DeviceSelection.of(List.of(this.device)))
                : Optional.ofNullable(this.devices);

        Topology topology;
        NodeSpec self;
        if (this.topology != null) {
            if (nodeId == null) {
                throw usage("--topology needs --node ID (which entry of the file is this node)");
            }
            if (clusterPort != null || metricsPort != null) {
                throw usage((clusterPort != null ? "--cluster-port" : "--metrics-port")
                        + " is only for a node without --topology; edit the topology");
            }
            Topology loaded = load(this.topology);
            topology = loaded;
            self = loaded.node(nodeId)
                    .orElseThrow(() -> new NodeStartException("node \""
                            + nodeId
                            + "\" is not in the topology (ids: "
                            + loaded.nodes().stream().map(NodeSpec::id).toList()
                            + ")"));
            if (addr.isPresent()) {
                checkAddrMatches(self, addr.get());
            }
        } else {
            if (nodeId != null) {
                throw usage("--node needs --topology FILE");
            }
            HostPort grpc = addr.orElse(new HostPort(DEFAULT_HOST, DEFAULT_GRPC_PORT));
            // Artery needs a concrete address; a wildcard gRPC bind still joins the cluster on loopback.
            String clusterHost = isWildcard(grpc.host()) ? DEFAULT_HOST : grpc.host();
            Topology local = Topology.localDefault(clusterHost, grpc.port(), poolSize.orElse(DEFAULT_POOL_BYTES));
            NodeSpec n = local.nodes().getFirst();
            self = new NodeSpec(
                    n.id(),
                    n.host(),
                    clusterPort != null ? clusterPort : n.clusterPort(),
                    n.grpcPort(),
                    metricsPort != null ? metricsPort : n.metricsPort(),
                    flagged.map(DeviceSelection::listed).orElse(n.gpus()),
                    n.rdmaNics(),
                    n.poolSizeBytes(),
                    n.transport());
            topology = new Topology(local.clusterName(), local.directoryRanges(), List.of(self));
        }
        String bindHost = addr.map(HostPort::host).orElse(self.host());
        return new NodeLaunch(
                topology,
                self,
                bindHost,
                poolSize.orElse(self.poolSizeBytes()),
                flagged.orElse(self.gpus().isEmpty() ? DeviceSelection.auto() : DeviceSelection.of(self.gpus())),
                logLevel,
                partialTimeoutMs);
    }

    /** A usage error reported like picocli's own: one line, the usage hint, exit code 2. */
    private ParameterException usage(String message) {
        return new ParameterException(spec.commandLine(), message);
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
