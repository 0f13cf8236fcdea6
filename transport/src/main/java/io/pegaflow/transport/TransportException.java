package io.pegaflow.transport;

/**
 * A control-path failure of a transport: it could not bind its listener, register a region, or start its threads.
 * Data-path outcomes are never exceptions; they are {@link TransferStatus} values.
 */
public final class TransportException extends RuntimeException {

    public TransportException(String message, Throwable cause) {
        super(message, cause);
    }

    public TransportException(String message) {
        super(message);
    }
}
