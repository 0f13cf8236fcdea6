package io.pegaflow.fabric.grpc;

import io.grpc.Grpc;
import io.grpc.ServerCall;
import java.net.InetSocketAddress;
import java.net.SocketAddress;

/** Who sent a request, for the log: the peer's address as the transport saw it. Stateless. */
public final class GrpcCallers {
    private GrpcCallers() {}

    /** "host:port" of the connection the call came on, or "an unknown address" when the transport does not say. */
    public static String describe(ServerCall<?, ?> call) {
        SocketAddress a = call.getAttributes().get(Grpc.TRANSPORT_ATTR_REMOTE_ADDR);
        if (a instanceof InetSocketAddress inet && inet.getAddress() != null) {
            return inet.getAddress().getHostAddress() + ":" + inet.getPort();
        }
        return "an unknown address";
    }
}
