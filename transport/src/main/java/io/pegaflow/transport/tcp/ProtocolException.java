package io.pegaflow.transport.tcp;

import java.io.IOException;

/** The peer broke the wire format ({@link TcpProtocol}); the connection is dropped. */
final class ProtocolException extends IOException {

    ProtocolException(String message) {
        super(message);
    }
}
