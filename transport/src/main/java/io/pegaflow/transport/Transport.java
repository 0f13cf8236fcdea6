package io.pegaflow.transport;

import java.lang.foreign.MemorySegment;
import java.util.List;

/**
 * The non-actor data path between nodes: one-sided READ and WRITE of descriptor lists between memory regions that
 * were registered once. Implemented by the TCP transport ({@code io.pegaflow.transport.tcp}) and the RDMA verbs
 * transport ({@code transport-rdma}); both pass {@code TransportContractTest}.
 *
 * <h2>Life cycle</h2>
 * Construct with {@link TransportSettings}, {@link #registerRegion register} the local pool, {@link #start()}: the
 * transport binds its listener and connects to every peer of the static list in the background (and reconnects in the
 * background after a loss; {@link #peerState} tells). {@link #close()} ends everything. Regions may be registered
 * before or after start.
 *
 * <h2>Transfers</h2>
 * {@link #read} and {@link #write} submit one transfer of N descriptors to the one peer that all the descriptors'
 * remote regions belong to. They never block and never do I/O on the caller's thread: they check the descriptors,
 * take one of the peer's in-flight slots, copy the list and return {@link TransferStatus#OK} (accepted) or a refusal
 * ({@link TransferStatus#BACK_PRESSURED}, {@link TransferStatus#NOT_CONNECTED}, {@link TransferStatus#CLOSED},
 * {@link TransferStatus#BAD_DESCRIPTOR}) with nothing moved and no completion to follow. An accepted transfer gets
 * exactly one completion, per transfer (not per block), on a transport thread ({@link CompletionHandler}).
 *
 * <h2>The memory guarantee</h2>
 * Once a transfer's completion is delivered — whatever its status, including {@link TransferStatus#TIMED_OUT},
 * {@link TransferStatus#CANCELLED} and {@link TransferStatus#CLOSED} — the transport never again writes into (READ)
 * or reads from (WRITE) that transfer's local ranges. A caller may release the reservation behind them at once; late
 * data for it is dropped ({@link TransportSnapshot#lateBytesDiscarded()}). After {@link #close()} returns, no transport
 * thread touches any registered region.
 *
 * <h2>Threads</h2>
 * All methods are thread-safe. {@code read}, {@code write}, {@code cancel}, {@code peerState} and {@code snapshot} are
 * non-blocking and may be called from an actor. {@code start}, {@code registerRegion}, {@code deregisterRegion} and
 * {@code close} are control-path calls that may block (bind, memory registration, joining threads): call them from a
 * dedicated thread or dispatcher, never from an actor's message handler.
 */
public interface Transport extends AutoCloseable {

    /** The transport's label in logs and metrics: {@code "tcp"} or {@code "rdma"}. */
    String name();

    /** This node's id. */
    String localNodeId();

    /**
     * Binds the listener and starts connecting to the peers (connections come up in the background).
     *
     * @throws TransportException if the listener cannot bind or the threads cannot start
     * @throws IllegalStateException if already started or closed
     */
    void start();

    /** Where this transport listens (the bound port, also when the settings asked for port 0); after start. */
    PeerAddress localAddress();

    /**
     * Registers local memory once, for transfers to move bytes into or out of; control path.
     *
     * @param segment native memory from a shared or global arena, at most {@link #maxRegionBytes()} long; it must stay
     *     alive until {@link #deregisterRegion} (or {@link #close()}) returns
     * @return the region handle; {@link LocalRegion#describe()} gives what peers need to reach it
     * @throws IllegalArgumentException if the segment is on the heap, confined to one thread, empty or too long
     * @throws TransportException if the memory cannot be registered (RDMA: {@code ibv_reg_mr} failed) or too many
     *     regions are registered
     */
    LocalRegion registerRegion(MemorySegment segment);

    /**
     * Ends a registration; transfers naming the region are then refused here ({@link TransferStatus#BAD_DESCRIPTOR})
     * and by this node's passive side ({@link TransferStatus#REMOTE_ERROR} at the peer). Control path.
     *
     * @throws IllegalStateException if a transfer using the region as its local side is still in flight (wait for its
     *     completion, or cancel it and wait)
     * @throws IllegalArgumentException if the region is not registered with this transport
     */
    void deregisterRegion(LocalRegion region);

    /** The longest region {@link #registerRegion} accepts. */
    long maxRegionBytes();

    /** The ids of the static peer list, in the settings' order. */
    List<String> peers();

    /** Where this transport stands with {@code nodeId} now ({@link PeerState#UNKNOWN} if not a peer). */
    PeerState peerState(String nodeId);

    /**
     * Submits a one-sided READ: each descriptor's remote range is copied into its local range, all as one transfer.
     *
     * @param descriptors 1 to {@link #maxDescriptorsPerTransfer()} descriptors, whose remote regions all belong to the
     *     same peer; copied before this returns
     * @param timeoutMs the transfer's time limit from now (&gt; 0); past it the transfer completes as
     *     {@link TransferStatus#TIMED_OUT}
     * @param correlationId the caller's id for this transfer, handed back in the completion and used by
     *     {@link #cancel}
     * @param handler receives the completion, on a transport thread (must not block)
     * @return {@link TransferStatus#OK} if accepted (one completion follows), else the refusal (nothing moved, no
     *     completion): {@code BACK_PRESSURED}, {@code NOT_CONNECTED}, {@code CLOSED}, {@code BAD_DESCRIPTOR}
     */
    TransferStatus read(DescriptorList descriptors, long timeoutMs, long correlationId, CompletionHandler handler);

    /**
     * Submits a one-sided WRITE: each descriptor's local range is copied into its remote range, all as one transfer.
     * Parameters and result as for {@link #read}.
     */
    TransferStatus write(DescriptorList descriptors, long timeoutMs, long correlationId, CompletionHandler handler);

    /**
     * Asks to end the in-flight transfers submitted with {@code correlationId} (correlation ids should be unique
     * among a caller's in-flight transfers; all matches are cancelled). Non-blocking: the transfer's completion,
     * {@link TransferStatus#CANCELLED} or the status it reached first, follows on the transport thread and marks the
     * moment its memory is free.
     *
     * @return whether a matching in-flight transfer was found
     */
    boolean cancel(long correlationId);

    /** Transfers in flight per peer before {@link TransferStatus#BACK_PRESSURED}. */
    int maxInFlightPerPeer();

    /** Most descriptors one transfer may carry. */
    int maxDescriptorsPerTransfer();

    /** A copy of the counters; cheap, any thread (the node samples it into metrics on a timer). */
    TransportSnapshot snapshot();

    /**
     * Blocks until {@code nodeId} is {@link PeerState#CONNECTED} or the timeout passes; for start-up and tests, never
     * on an actor or a data-path thread.
     *
     * @return whether the peer is connected
     */
    default boolean awaitConnected(String nodeId, long timeoutMs) throws InterruptedException {
        long deadline = System.nanoTime() + timeoutMs * 1_000_000L;
        while (peerState(nodeId) != PeerState.CONNECTED) {
            if (System.nanoTime() - deadline >= 0) {
                return false;
            }
            Thread.sleep(1);
        }
        return true;
    }

    /**
     * Closes the transport: submissions are refused as {@link TransferStatus#CLOSED}, in-flight transfers complete as
     * {@code CLOSED}, connections and the listener close, and the transport's threads end before this returns.
     * Idempotent.
     */
    @Override
    void close();
}
