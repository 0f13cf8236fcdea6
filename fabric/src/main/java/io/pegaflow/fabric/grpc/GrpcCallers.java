package io.pegaflow.fabric.grpc;

import org.apache.pekko.http.javadsl.model.AttributeKeys;
import org.apache.pekko.http.javadsl.model.HttpRequest;

/** Who sent a request, for the log: the peer's address as Pekko HTTP saw it. Stateless. */
public final class GrpcCallers {
    private GrpcCallers() {}

    /**
     * "host:port" of the connection the request came on, or "an unknown address" when the server does not record it
     * ({@code pekko.http.server.remote-address-attribute = on} makes it).
     */
    public static String describe(HttpRequest request) {
        return request.getAttribute(AttributeKeys.remoteAddress)
                .map(a -> a.getAddress()
                        .map(ip -> ip.getHostAddress() + ":" + a.getPort())
                        .orElse("an unknown address"))
                .orElse("an unknown address");
    }
}
