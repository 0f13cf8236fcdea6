package io.pegaflow.fabric.node;

/** The node cannot start as configured; the message says why and what to change. Exit code 1. */
public final class NodeStartException extends RuntimeException {
    public NodeStartException(String message) {
        super(message);
    }

    public NodeStartException(String message, Throwable cause) {
        super(message, cause);
    }
}
