package io.pegaflow.fabric.cli;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import io.pegaflow.config.NodeSpec;
import io.pegaflow.config.Topology;
import io.pegaflow.config.TopologyException;
import io.pegaflow.config.TopologyLoader;
import io.pegaflow.config.Transport;
import io.pegaflow.fabric.transfer.TopologyRdma;
import io.pegaflow.rdma.RdmaNic;
import io.pegaflow.rdma.RdmaProbe;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.ITypeConverter;
import picocli.CommandLine.Option;
import picocli.CommandLine.TypeConversionException;

/**
 * {@code pegaflow rdma-check [--topology FILE --node ID | --nic DEV:PORT:GID ...] [--json]}: what an operator runs
 * first on an RDMA machine.
 */
@Command(
        name = "rdma-check",
        mixinStandardHelpOptions = true,
        versionProvider = PegaflowVersion.class,
        sortOptions = false,
        description = {
            "Checks this machine's RDMA (libibverbs): devices, port states, MTU, GID tables with their types, the"
                    + " memlock limit; with --topology and --node (or --nic) also whether those NICs, ports and GID"
                    + " indexes exist and are usable. Every problem is named with its fix.",
            "Reads nothing from a running node; opens each device briefly."
        },
        exitCodeListHeading = "%nExit codes:%n",
        exitCodeList = {
            "0:no problems",
            "1:problems found (listed with their fixes), or no RDMA device",
            "2:bad command line or topology"
        })
final class RdmaCheckCommand implements Callable<Integer> {
    private static final ObjectMapper JSON = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);

    private final PrintStream out;
    private final PrintStream err;

    @Option(names = "--topology", paramLabel = "FILE", description = "A topology file; checks --node's rdma NICs.")
    private Path topology;

    @Option(names = "--node", paramLabel = "ID", description = "The node of --topology to check.")
    private String nodeId;

    @Option(
            names = "--nic",
            paramLabel = "DEV:PORT:GID",
            converter = NicConverter.class,
            description = "A NIC to check, e.g. mlx5_0:1:3 or rxe0:1:1 (repeatable); instead of --topology.")
    private List<RdmaNic> nicOptions = new ArrayList<>();

    @Option(
            names = "--pool-size",
            paramLabel = "SIZE",
            converter = PoolSize.class,
            description = "Memory the node registers, checked against the memlock limit (default: the node's"
                    + " poolSize with --topology).")
    private Long poolSize;

    @Option(names = "--json", description = "Machine-readable output.")
    private boolean json;

    RdmaCheckCommand(PrintStream out, PrintStream err) {
        this.out = out;
        this.err = err;
    }

    @Override
    public Integer call() {
        Main.setRootLogLevel("warn");
        List<RdmaNic> nics = new ArrayList<>(nicOptions);
        String context = nics.isEmpty() ? "" : "--nic";
        String note = "";
        long pool = poolSize == null ? 0 : poolSize;
        if (topology != null || nodeId != null) {
            if (topology == null || nodeId == null || !nics.isEmpty()) {
                err.println("pegaflow rdma-check: --topology and --node go together, and not with --nic");
                return 2;
            }
            NodeSpec node;
            try {
                Topology t = TopologyLoader.load(topology);
                node = t.requireNode(nodeId);
            } catch (TopologyException | IllegalArgumentException e) {
                err.println("pegaflow rdma-check: " + e.getMessage());
                return 2;
            }
            nics.addAll(TopologyRdma.nics(node));
            context = "topology " + topology + " node " + node.id();
            note = node.transport() == Transport.RDMA
                    ? "transport rdma, transportFallback "
                            + node.transportFallback().yamlName()
                    : "transport tcp: this node does not use RDMA (set transport: rdma to use these NICs)";
            if (nics.isEmpty()) {
                note += "; it lists no rdma NICs";
            }
            if (poolSize == null) {
                pool = node.poolSizeBytes();
            }
        }
        RdmaCheck check = new RdmaCheck(RdmaProbe.probe(), nics, context, note, pool, hasCapIpcLock());
        if (json) {
            try {
                out.println(JSON.writeValueAsString(check.json()));
            } catch (JsonProcessingException e) {
                err.println("pegaflow rdma-check: " + e.getMessage());
                return 1;
            }
        } else {
            out.print(check.text());
        }
        return check.problems().isEmpty() ? 0 : 1;
    }

    /** {@code CAP_IPC_LOCK} (bit 14) in this process's effective capabilities: pinning ignores the memlock limit. */
    static boolean hasCapIpcLock() {
        try {
            for (String line : Files.readAllLines(Path.of("/proc/self/status"))) {
                if (line.startsWith("CapEff:")) {
                    long caps = Long.parseUnsignedLong(
                            line.substring("CapEff:".length()).strip(), 16);
                    return (caps & (1L << 14)) != 0;
                }
            }
        } catch (IOException | NumberFormatException e) {
            // not Linux, or an odd status file: assume the limit applies
        }
        return false;
    }

    /** {@code DEV:PORT:GID}: a device name, a port (1..255) and a GID index. */
    static final class NicConverter implements ITypeConverter<RdmaNic> {
        @Override
        public RdmaNic convert(String text) {
            String[] parts = text.split(":");
            if (parts.length != 3 || parts[0].isBlank()) {
                throw new TypeConversionException("'" + text + "' is not DEV:PORT:GID (e.g. mlx5_0:1:3)");
            }
            try {
                return new RdmaNic(parts[0], Integer.parseInt(parts[1]), Integer.parseInt(parts[2]));
            } catch (IllegalArgumentException e) {
                throw new TypeConversionException("'" + text + "': " + e.getMessage());
            }
        }
    }
}
