package io.pegaflow.transport.tcp;

/**
 * Test hooks of the TCP transport, for the contract tests only: they make a peer slow or corrupt bytes on the wire
 * so that timeouts, late data and checksum checks can be tested with real sockets. A production transport never sets
 * one ({@link #NONE}); set with {@link TcpTransport#setTestHook}.
 *
 * <p>Called on the transport's own threads: the serving thread for READ replies, the I/O thread for WRITE payloads.
 */
public interface TcpTestHook {

    /** No hooks: the data path runs unchanged. */
    TcpTestHook NONE = new TcpTestHook() {};

    /**
     * Serving thread, before it sends half {@code part} (0: the first half, 1: the second) of block
     * {@code blockIndex} of a READ reply; sleeping here makes this node a slow peer (an interrupt ends the sleep when
     * the transport closes).
     */
    default void beforeServingBlockPart(int blockIndex, int part) throws InterruptedException {}

    /** Whether to flip the last byte of outgoing block {@code blockIndex} on the wire; the region is not changed. */
    default boolean corruptOutgoingBlock(int blockIndex) {
        return false;
    }

    /** Serving thread, after it has sent a READ reply in full (late data included). */
    default void afterServingRead() {}

    /**
     * Serving thread, before it reads block {@code blockIndex} of a WRITE payload off the socket; sleeping here makes
     * this node a slow receiver, so the writer's socket fills and its transfer stalls mid-send.
     */
    default void beforeReceivingBlock(int blockIndex) throws InterruptedException {}

    /** Serving thread, after it has read a WRITE payload in full and replied. */
    default void afterReceivingWrite() {}
}
