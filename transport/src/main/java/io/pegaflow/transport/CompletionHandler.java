package io.pegaflow.transport;

/**
 * Receives the completion of one accepted transfer: exactly once, with its status and the bytes that moved.
 *
 * <p>Runs on a transport thread (the one that owns the transfer's connection or queue pair), never on the caller's.
 * <b>It must not block and must not call synchronously into an actor</b>: hand the result on with a non-blocking
 * {@code tell} or an {@code offer} into a queue the coordinator drains, and return. A slow handler stalls every
 * transfer on that thread; an exception it throws is counted ({@link TransportSnapshot#handlerFailures()}) and
 * otherwise ignored.
 *
 * <p>When it runs, the transport is done with the transfer's local memory (see {@link TransferStatus}); the hand-off
 * to another thread must publish (any concurrent queue or actor mailbox does) for that thread to see the bytes.
 */
@FunctionalInterface
public interface CompletionHandler {

    /**
     * @param correlationId the caller's id given at submission
     * @param status {@link TransferStatus#OK} or the failure
     * @param bytesTransferred bytes that moved: the transfer's total for OK, what landed before the failure otherwise
     */
    void onComplete(long correlationId, TransferStatus status, long bytesTransferred);
}
