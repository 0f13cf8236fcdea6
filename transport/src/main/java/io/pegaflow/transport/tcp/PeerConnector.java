package io.pegaflow.transport.tcp;

import io.pegaflow.transport.PeerState;
import java.io.IOException;
import java.io.InputStream;
import java.lang.System.Logger.Level;
import java.net.InetSocketAddress;
import java.net.StandardSocketOptions;
import java.nio.ByteBuffer;
import java.nio.channels.SocketChannel;
import java.util.concurrent.TimeUnit;

/**
 * The connecting thread: dials every peer that needs a connection (at start, and after the I/O thread lost one),
 * performs the hello handshake with blocking I/O bounded by the connect timeout, and hands the channel to the I/O
 * thread in non-blocking mode. Failed attempts back off exponentially from 10 ms to the configured maximum.
 *
 * <p>Its own thread; it never touches transfers. Lifecycle events are logged here, off the data path.
 */
final class PeerConnector implements Runnable {

    private static final System.Logger LOG = System.getLogger(TcpTransport.class.getName());
    private static final long IDLE_WAIT_MS = 200;

    private final String localNodeId;
    private final PeerLink[] links;
    private final TcpClientAgent agent;
    private final long connectTimeoutMs;
    private final long backoffMaxMs;
    private final Thread thread;
    private final Object signal = new Object();
    private boolean signalled;
    private volatile boolean closing;

    PeerConnector(
            String localNodeId,
            PeerLink[] links,
            TcpClientAgent agent,
            long connectTimeoutMs,
            long backoffMaxMs,
            String threadName) {
        this.localNodeId = localNodeId;
        this.links = links;
        this.agent = agent;
        this.connectTimeoutMs = connectTimeoutMs;
        this.backoffMaxMs = backoffMaxMs;
        this.thread = Thread.ofPlatform().name(threadName).daemon(true).unstarted(this);
    }

    void start() {
        thread.start();
    }

    /** Some peer needs dialling now. */
    void wake() {
        synchronized (signal) {
            signalled = true;
            signal.notifyAll();
        }
    }

    void close() throws InterruptedException {
        closing = true;
        wake();
        if (thread.getState() != Thread.State.NEW) {
            thread.interrupt();
            thread.join(TimeUnit.SECONDS.toMillis(10));
        }
    }

    @Override
    public void run() {
        try {
            while (!closing) {
                long waitMs = IDLE_WAIT_MS;
                for (PeerLink link : links) {
                    if (closing) {
                        return;
                    }
                    if (!link.needsConnect) {
                        continue;
                    }
                    long now = System.nanoTime();
                    if (now - link.nextAttemptNanos < 0) {
                        waitMs = Math.min(waitMs, TimeUnit.NANOSECONDS.toMillis(link.nextAttemptNanos - now) + 1);
                        continue;
                    }
                    String reason = link.lossReason;
                    if (reason != null) {
                        link.lossReason = null;
                        LOG.log(
                                Level.INFO,
                                "transport=tcp node={0} lost peer {1}: {2}; reconnecting",
                                localNodeId,
                                link.nodeId(),
                                reason);
                    }
                    attempt(link);
                    if (link.needsConnect) {
                        waitMs = Math.min(waitMs, link.backoffMs);
                    }
                }
                synchronized (signal) {
                    if (!signalled && !closing) {
                        signal.wait(Math.max(1, waitMs));
                    }
                    signalled = false;
                }
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt(); // closing
        }
    }

    private void attempt(PeerLink link) {
        SocketChannel channel = null;
        try {
            channel = dial(link);
            link.backoffMs = 10;
            link.needsConnect = false; // before the hand-off: a loss reported right after must not be overwritten
            LOG.log(
                    Level.INFO,
                    "transport=tcp node={0} connected to peer {1} at {2}:{3,number,#}",
                    localNodeId,
                    link.nodeId(),
                    link.address.host(),
                    link.address.port());
            agent.handOff(link.index, channel);
        } catch (IOException | RuntimeException e) {
            if (channel != null) {
                closeQuietly(channel);
            }
            if (link.state == PeerState.CONNECTED) {
                link.state = PeerState.DISCONNECTED;
            }
            LOG.log(
                    Level.DEBUG,
                    "transport=tcp node={0} cannot reach peer {1} yet: {2}",
                    localNodeId,
                    link.nodeId(),
                    e.toString());
            link.nextAttemptNanos = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(link.backoffMs);
            link.backoffMs = Math.min(backoffMaxMs, link.backoffMs * 2);
        }
    }

    /** Connects and shakes hands (blocking, bounded by the connect timeout); returns the channel non-blocking. */
    private SocketChannel dial(PeerLink link) throws IOException {
        SocketChannel channel = SocketChannel.open();
        try {
            channel.setOption(StandardSocketOptions.TCP_NODELAY, true);
            channel.setOption(StandardSocketOptions.SO_KEEPALIVE, true);
            int timeout = (int) Math.min(Integer.MAX_VALUE, connectTimeoutMs);
            channel.socket().connect(new InetSocketAddress(link.address.host(), link.address.port()), timeout);
            channel.socket().setSoTimeout(timeout);
            writeHello(channel, localNodeId);
            String peerId = readHello(channel.socket().getInputStream());
            if (!peerId.equals(link.nodeId())) {
                throw new IOException("the transport at " + link.address.host() + ":" + link.address.port()
                        + " is node " + peerId + ", expected " + link.nodeId());
            }
            channel.socket().setSoTimeout(0);
            channel.configureBlocking(false);
            return channel;
        } catch (IOException | RuntimeException e) {
            closeQuietly(channel);
            throw e;
        }
    }

    static void writeHello(SocketChannel channel, String nodeId) throws IOException {
        byte[] id = nodeId.getBytes(java.nio.charset.StandardCharsets.UTF_8);
        if (id.length == 0 || id.length > TcpProtocol.MAX_NODE_ID_BYTES) {
            throw new IOException("node id must be 1.." + TcpProtocol.MAX_NODE_ID_BYTES + " UTF-8 bytes: " + nodeId);
        }
        ByteBuffer hello = ByteBuffer.allocate(10 + id.length);
        hello.putInt(TcpProtocol.HELLO_MAGIC)
                .putInt(TcpProtocol.VERSION)
                .putShort((short) id.length)
                .put(id)
                .flip();
        while (hello.hasRemaining()) {
            channel.write(hello);
        }
    }

    /** Reads a peer's hello from a stream that honours the socket's read timeout. */
    static String readHello(InputStream in) throws IOException {
        ByteBuffer head = ByteBuffer.wrap(readExactly(in, 10));
        int magic = head.getInt();
        int version = head.getInt();
        int length = head.getShort() & 0xFFFF;
        if (magic != TcpProtocol.HELLO_MAGIC) {
            throw new ProtocolException(
                    "not a PegaFlow TCP transport (hello magic 0x" + Integer.toHexString(magic) + ")");
        }
        if (version != TcpProtocol.VERSION) {
            throw new ProtocolException(
                    "transport protocol version " + version + ", this node speaks " + TcpProtocol.VERSION);
        }
        if (length == 0 || length > TcpProtocol.MAX_NODE_ID_BYTES) {
            throw new ProtocolException("bad node id length " + length);
        }
        return new String(readExactly(in, length), java.nio.charset.StandardCharsets.UTF_8);
    }

    private static byte[] readExactly(InputStream in, int n) throws IOException {
        byte[] bytes = in.readNBytes(n);
        if (bytes.length != n) {
            throw new java.io.EOFException("connection closed during the handshake");
        }
        return bytes;
    }

    private static void closeQuietly(SocketChannel channel) {
        try {
            channel.close();
        } catch (IOException ignored) {
            // closing
        }
    }
}
