package io.pegaflow.fabric.transfer;

/**
 * This machine cannot run the RDMA transport a node asks for: no libibverbs, no device, the topology's NIC or GID index
 * is not there or not usable. The message names the reason and its fix. A topology with {@code transportFallback: tcp}
 * turns it into a logged fallback; any other start failure (a port in use, a bad setting) is not one.
 */
public final class RdmaUnavailableException extends Exception {
    public RdmaUnavailableException(String message) {
        super(message);
    }

    public RdmaUnavailableException(String message, Throwable cause) {
        super(message, cause);
    }
}
