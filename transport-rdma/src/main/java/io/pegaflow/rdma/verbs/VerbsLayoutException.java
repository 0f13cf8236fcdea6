package io.pegaflow.rdma.verbs;

/** The verbs binding's struct layouts do not match the library or platform: the transport refuses to start. */
public final class VerbsLayoutException extends RuntimeException {
    public VerbsLayoutException(String message) {
        super(message);
    }
}
