package io.pegaflow.transport;

/** The direction of a one-sided transfer, seen from the node that submits it. */
public enum TransferOp {
    /** Remote ranges → local ranges. */
    READ,
    /** Local ranges → remote ranges. */
    WRITE
}
