package io.pegaflow.fabric.cli;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import io.pegaflow.proto.fabric.LocateRequest;
import io.pegaflow.proto.fabric.LocateResponse;
import java.io.PrintStream;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.concurrent.TimeUnit;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/** {@code pegaflow locate --endpoint HOST:PORT --namespace NS HASH…}: which nodes hold each block. */
@Command(
        name = "locate",
        mixinStandardHelpOptions = true,
        versionProvider = PegaflowVersion.class,
        sortOptions = false,
        description = "Prints the nodes holding each block (hashes in hex) and the prefix available in the cluster.",
        exitCodeListHeading = "%nExit codes:%n",
        exitCodeList = {"0:the node answered", "1:no answer, or the node refused the request", "2:bad command line"})
final class LocateCommand implements Callable<Integer> {
    private static final ObjectMapper JSON = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);

    private final PrintStream out;
    private final PrintStream err;

    @Option(
            names = "--endpoint",
            paramLabel = "HOST:PORT",
            defaultValue = "127.0.0.1:50055",
            converter = HostPort.Converter.class,
            description = "A node's gRPC address (default ${DEFAULT-VALUE}); any node answers for the cluster.")
    private HostPort endpoint;

    @Option(names = "--namespace", paramLabel = "NS", required = true, description = "The blocks' namespace.")
    private String namespace;

    @Option(names = "--json", description = "Machine-readable output.")
    private boolean json;

    @Option(
            names = "--timeout-ms",
            paramLabel = "N",
            defaultValue = "5000",
            converter = IntInRange.CallTimeoutMs.class,
            description = "Give up after N ms, 1..3600000 (default ${DEFAULT-VALUE}).")
    private int timeoutMs;

    @Parameters(
            paramLabel = "HASH",
            arity = "1..*",
            converter = HexHash.class,
            description = "Block hashes in hex, in prefix order.")
    private List<byte[]> hashes;

    LocateCommand(PrintStream out, PrintStream err) {
        this.out = out;
        this.err = err;
    }

    @Override
    public Integer call() {
        Main.setRootLogLevel("warn");
        Duration timeout = Duration.ofMillis(timeoutMs);
        LocateRequest request = LocateWire.request(namespace, hashes);
        try (FabricClients clients = new FabricClients()) {
            var client = clients.fabric(endpoint, timeout);
            LocateResponse reply =
                    client.locate(request).toCompletableFuture().get(timeout.toMillis() + 1000, TimeUnit.MILLISECONDS);
            out.print(json ? json(reply) : table(reply));
            client.close();
            return 0;
        } catch (Exception e) {
            err.println("pegaflow locate: no answer from " + endpoint + ": " + Main.rootMessage(e));
            return 1;
        }
    }

    private String table(LocateResponse reply) {
        HexFormat hex = HexFormat.of();
        StringBuilder s = new StringBuilder();
        s.append("namespace ").append(namespace).append(", answered by node ").append(reply.getNodeId());
        s.append(": prefix ").append(reply.getPrefixLength()).append(" of ").append(hashes.size());
        s.append(reply.getComplete() ? " (complete)" : " (INCOMPLETE: a range is rebuilding or did not answer)");
        s.append('\n');
        for (int i = 0; i < LocateWire.size(reply); i++) {
            List<String> holders = LocateWire.holders(reply, i);
            s.append(hex.formatHex(hashes.get(i)))
                    .append("  ")
                    .append(holders.isEmpty() ? "-" : String.join(",", holders))
                    .append('\n');
        }
        return s.toString();
    }

    private String json(LocateResponse reply) throws JsonProcessingException {
        HexFormat hex = HexFormat.of();
        Map<String, Object> doc = new LinkedHashMap<>();
        doc.put("namespace", namespace);
        doc.put("nodeId", reply.getNodeId());
        doc.put("prefixLength", reply.getPrefixLength());
        doc.put("complete", reply.getComplete());
        List<Map<String, Object>> blocks = new ArrayList<>();
        for (int i = 0; i < LocateWire.size(reply); i++) {
            Map<String, Object> block = new LinkedHashMap<>();
            block.put("hash", hex.formatHex(hashes.get(i)));
            block.put("holders", LocateWire.holders(reply, i));
            blocks.add(block);
        }
        doc.put("blocks", blocks);
        return JSON.writeValueAsString(doc) + "\n";
    }

    /** Parses a hex block hash (1..64 bytes). */
    static final class HexHash implements picocli.CommandLine.ITypeConverter<byte[]> {
        @Override
        public byte[] convert(String value) {
            byte[] bytes;
            try {
                bytes = HexFormat.of().parseHex(value);
            } catch (IllegalArgumentException e) {
                throw new picocli.CommandLine.TypeConversionException("'" + value + "' is not hex: " + e.getMessage());
            }
            if (bytes.length == 0 || bytes.length > 64) {
                throw new picocli.CommandLine.TypeConversionException(
                        "'" + value + "': a hash has 1..64 bytes, this has " + bytes.length);
            }
            return bytes;
        }
    }
}
