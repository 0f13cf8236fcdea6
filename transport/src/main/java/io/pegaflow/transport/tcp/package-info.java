/**
 * The TCP transport: the {@link io.pegaflow.transport.Transport} contract over plain JDK sockets, for machines
 * without RDMA (CI, laptops, clouds without RoCE). One-sided semantics are emulated: the holder's serving thread
 * answers READ requests straight from its registered region and absorbs WRITE payloads straight into it; no actor
 * and no intermediate buffer touch the bytes (socket reads and writes go through {@code ByteBuffer} views of the
 * regions' {@code MemorySegment}s). The wire format is in {@code TcpProtocol}.
 *
 * <p>Threads of one transport, all its own (never the caller's):
 * <ul>
 *   <li><b>I/O thread</b> {@code pegaflow-tcp-io-<node>} ({@code TcpClientAgent}): one NIO selector over the
 *       outbound connection to every peer, non-blocking. It owns every in-flight transfer after submission: sends
 *       requests, reads replies into local memory, enforces timeouts and cancels, and runs every
 *       {@link io.pegaflow.transport.CompletionHandler}. Because it alone writes into transfer memory and alone
 *       decides when a transfer ends, checking the transfer's state before each socket read is enough to guarantee
 *       that nothing lands after the completion; late data goes to scratch memory.
 *   <li><b>Connector</b> {@code pegaflow-tcp-connect-<node>} ({@code PeerConnector}): dials peers at start and after
 *       a loss (blocking connect and handshake, bounded by the connect timeout, exponential back-off), then hands the
 *       channel to the I/O thread.
 *   <li><b>Acceptor</b> {@code pegaflow-tcp-accept-<node>} and one <b>serving thread</b> per inbound connection
 *       {@code pegaflow-tcp-serve-<node>-<n>} ({@code ServerConnection}): blocking I/O, one request at a time per
 *       connection.
 * </ul>
 * Submitting threads only check descriptors, claim a preallocated {@code TransferSlot} (a CAS), copy the descriptors
 * into it and offer it to a bounded queue sized to the slot count (so the offer never fails); they never block and
 * never do I/O. One connection per peer and direction (several per peer are not implemented): the benchmark's
 * baseline is one raw socket too, and the transport stays close to it (bench/results/tcp-transport.md); striping a
 * peer over several connections and I/O threads is the next step if one I/O thread becomes the limit.
 *
 * <p>Nothing is allocated per block on the data path: slots, header buffers, region views, scratch memory and
 * counters are made once per transport, connection or registration.
 */
package io.pegaflow.transport.tcp;
