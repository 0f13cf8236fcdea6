package io.pegaflow.transport.tcp;

import io.pegaflow.transport.PeerAddress;
import io.pegaflow.transport.TransportException;
import java.io.IOException;
import java.lang.System.Logger.Level;
import java.net.InetSocketAddress;
import java.net.StandardSocketOptions;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * The passive side: a listener whose accepting thread starts one serving thread per inbound connection
 * ({@link ServerConnection}). This is the peer-side half that emulates one-sided READ and WRITE over TCP.
 */
final class TcpServer implements Runnable {

    private static final System.Logger LOG = System.getLogger(TcpTransport.class.getName());

    private final TcpTransport transport;
    private final String localNodeId;
    private final Set<ServerConnection> connections = ConcurrentHashMap.newKeySet();
    private final AtomicInteger connectionCount = new AtomicInteger();
    private ServerSocketChannel listener;
    private Thread acceptor;
    private PeerAddress boundAddress;
    private volatile boolean closing;

    TcpServer(TcpTransport transport, String localNodeId) {
        this.transport = transport;
        this.localNodeId = localNodeId;
    }

    /** Binds the listener; throws if the address is taken or invalid. */
    PeerAddress bind(String host, int port) {
        try {
            listener = ServerSocketChannel.open();
            listener.setOption(StandardSocketOptions.SO_REUSEADDR, true);
            listener.bind(new InetSocketAddress(host, port), 128);
            int bound = ((InetSocketAddress) listener.getLocalAddress()).getPort();
            boundAddress = new PeerAddress(localNodeId, host, bound);
            LOG.log(Level.INFO, "transport=tcp node={0} listening on {1}:{2,number,#}", localNodeId, host, bound);
            return boundAddress;
        } catch (IOException e) {
            closeListener();
            throw new TransportException(
                    "transport=tcp node " + localNodeId + " cannot listen on " + host + ":" + port + ": "
                            + e.getMessage(),
                    e);
        }
    }

    void start(String threadName) {
        acceptor = Thread.ofPlatform().name(threadName).daemon(true).start(this);
    }

    PeerAddress boundAddress() {
        return boundAddress;
    }

    @Override
    public void run() {
        while (!closing) {
            SocketChannel channel;
            try {
                channel = listener.accept();
            } catch (IOException e) {
                if (!closing) {
                    LOG.log(Level.ERROR, "transport=tcp node=" + localNodeId + " stopped accepting", e);
                }
                return;
            }
            ServerConnection conn = new ServerConnection(transport, channel, localNodeId);
            connections.add(conn);
            if (closing) {
                conn.close();
                connections.remove(conn);
                return;
            }
            String name = "pegaflow-tcp-serve-" + localNodeId + "-" + connectionCount.incrementAndGet();
            conn.start(name, () -> connections.remove(conn));
        }
    }

    /** Closes the listener and every inbound connection, and waits for their threads. */
    void close() throws InterruptedException {
        closing = true;
        closeListener();
        if (acceptor != null) {
            acceptor.join(TimeUnit.SECONDS.toMillis(10));
        }
        for (ServerConnection conn : connections) {
            conn.close();
        }
        for (ServerConnection conn : connections) {
            conn.join(TimeUnit.SECONDS.toMillis(10));
        }
        connections.clear();
    }

    private void closeListener() {
        if (listener != null) {
            try {
                listener.close();
            } catch (IOException ignored) {
                // closing
            }
        }
    }
}
