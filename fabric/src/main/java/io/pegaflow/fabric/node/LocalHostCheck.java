package io.pegaflow.fabric.node;

import io.pegaflow.config.NodeSpec;
import java.io.IOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.NetworkInterface;
import java.net.ServerSocket;
import java.net.SocketException;
import java.net.UnknownHostException;
import java.util.ArrayList;
import java.util.List;

/**
 * Refuses to start a node on a host that is not this machine, or whose ports are taken: the usual mistake is
 * starting {@code --node n2} on the machine meant for n1.
 */
final class LocalHostCheck {
    private LocalHostCheck() {}

    static void check(NodeSpec self, String grpcBindHost) {
        InetAddress address;
        try {
            address = InetAddress.getByName(self.host());
        } catch (UnknownHostException e) {
            throw new NodeStartException("node " + self.id() + ": host \"" + self.host() + "\" does not resolve");
        }
        if (!isLocal(address)) {
            throw new NodeStartException("node "
                    + self.id()
                    + ": host "
                    + self.host()
                    + " ("
                    + address.getHostAddress()
                    + ") is not an address of this machine; start the node whose topology entry names this machine,"
                    + " or fix its host in the topology");
        }
        List<String> busy = new ArrayList<>();
        probe(self.host(), self.clusterPort(), "clusterPort", busy);
        probe(grpcBindHost, self.grpcPort(), "grpcPort", busy);
        probe(grpcBindHost, self.metricsPort(), "metricsPort", busy);
        if (!busy.isEmpty()) {
            throw new NodeStartException(
                    "node " + self.id() + ": " + String.join("; ", busy) + " (another node or process is using it)");
        }
    }

    private static boolean isLocal(InetAddress address) {
        if (address.isLoopbackAddress() || address.isAnyLocalAddress()) {
            return true;
        }
        try {
            return NetworkInterface.getByInetAddress(address) != null;
        } catch (SocketException e) {
            return false;
        }
    }

    private static void probe(String host, int port, String what, List<String> busy) {
        try (ServerSocket socket = new ServerSocket()) {
            socket.setReuseAddress(true);
            socket.bind(new InetSocketAddress(host, port));
        } catch (IOException e) {
            busy.add(what + " " + port + " on " + host + " is already in use");
        }
    }
}
