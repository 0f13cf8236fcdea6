package io.pegaflow.fabric;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.ServerSocket;
import java.util.ArrayList;
import java.util.List;

/** Free loopback ports for tests, all held until every one is picked so none repeats. */
public final class TestPorts {
    private TestPorts() {}

    public static int[] free(int count) {
        List<ServerSocket> held = new ArrayList<>();
        try {
            int[] ports = new int[count];
            for (int i = 0; i < count; i++) {
                ServerSocket socket = new ServerSocket(0);
                held.add(socket);
                ports[i] = socket.getLocalPort();
            }
            return ports;
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        } finally {
            for (ServerSocket s : held) {
                try {
                    s.close();
                } catch (IOException ignored) {
                    // closing a probe socket
                }
            }
        }
    }

    /** A topology YAML with {@code nodes} nodes on 127.0.0.1 at free ports. */
    public static String topologyYaml(String cluster, int nodes) {
        int[] ports = free(nodes * 4);
        StringBuilder yaml = new StringBuilder("cluster: " + cluster + "\nnodes:\n");
        for (int i = 0; i < nodes; i++) {
            yaml.append("  - id: n")
                    .append(i + 1)
                    .append('\n')
                    .append("    host: 127.0.0.1\n")
                    .append("    clusterPort: ")
                    .append(ports[4 * i])
                    .append('\n')
                    .append("    grpcPort: ")
                    .append(ports[4 * i + 1])
                    .append('\n')
                    .append("    metricsPort: ")
                    .append(ports[4 * i + 2])
                    .append('\n')
                    .append("    transportPort: ")
                    .append(ports[4 * i + 3])
                    .append('\n')
                    .append("    poolSize: 64mb\n")
                    .append("    transport: tcp\n");
        }
        return yaml.toString();
    }
}
