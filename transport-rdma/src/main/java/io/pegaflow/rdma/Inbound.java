package io.pegaflow.rdma;

import io.pegaflow.transport.TransportException;
import java.io.BufferedInputStream;
import java.io.BufferedOutputStream;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.EOFException;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.net.Socket;
import java.util.ArrayList;
import java.util.List;

/**
 * The passive side of one peer's connection to this node: answers its hello with responder queue pairs (the NIC
 * serves its READs and WRITEs; no thread of this node touches the bytes) and this node's regions, then announces
 * region changes until the socket closes. One thread per inbound connection ({@code pegaflow-rdma-serve-*}); a bad
 * hello is logged and the socket closed, nothing else changes.
 */
final class Inbound implements Runnable {
    private static final System.Logger LOG = System.getLogger(Inbound.class.getName());

    private final RdmaTransport transport;
    private final Socket socket;
    private final List<QueuePair> qps = new ArrayList<>();
    private DataOutputStream out;
    private volatile boolean announcing;
    private boolean closed;
    String peerId = "?";

    Inbound(RdmaTransport transport, Socket socket) {
        this.transport = transport;
        this.socket = socket;
    }

    @Override
    public void run() {
        try {
            socket.setTcpNoDelay(true);
            socket.setSoTimeout(
                    (int) Math.min(Integer.MAX_VALUE, transport.settings().connectTimeoutMs() * 2));
            DataInputStream in = new DataInputStream(new BufferedInputStream(socket.getInputStream()));
            out = new DataOutputStream(new BufferedOutputStream(socket.getOutputStream()));
            Handshake.Hello hello;
            try {
                hello = Handshake.readHello(in);
            } catch (EOFException e) {
                throw Handshake.truncated(e);
            }
            peerId = hello.nodeId();
            List<Nic> nics = transport.nics();
            if (hello.nics() != nics.size()) {
                Handshake.writeRefusal(
                        out,
                        "node " + transport.localNodeId() + " has " + nics.size() + " NICs, node " + hello.nodeId()
                                + " " + hello.nics() + ": the topology must give both the same");
                throw new Handshake.BadHandshake("NIC count mismatch with " + hello.nodeId());
            }
            List<Handshake.QpParams> mine = new ArrayList<>();
            for (int i = 0; i < hello.qps().size(); i++) {
                Nic nic = nics.get(hello.nicOf(i));
                // Create and connect under the lock close() takes: close() never destroys a queue pair this thread
                // is still modifying (ibv_modify_qp on a freed QP reads freed memory and hands it to the kernel).
                synchronized (this) {
                    if (closed || transport.isClosing()) {
                        throw new IOException("transport closing");
                    }
                    QueuePair qp = QueuePair.create(nic, null, 1, 0);
                    qps.add(qp);
                    qp.connect(
                            hello.qps().get(i),
                            transport.rdma().ackTimeoutExponent(),
                            transport.rdma().retryCount());
                    mine.add(qp.params());
                }
            }
            synchronized (this) {
                Handshake.writeReply(
                        out, new Handshake.Reply(transport.localNodeId(), mine, transport.regionAdverts()));
                announcing = true;
            }
            socket.setSoTimeout(0);
            while (in.read() >= 0) {
                // the dialler sends nothing after its hello; EOF means it closed or died
            }
        } catch (Handshake.BadHandshake e) {
            LOG.log(
                    System.Logger.Level.WARNING,
                    "transport=rdma node={0} refused a connection from {1}: {2}",
                    transport.localNodeId(),
                    socket.getRemoteSocketAddress(),
                    e.getMessage());
        } catch (IOException | TransportException e) {
            LOG.log(
                    System.Logger.Level.DEBUG,
                    "transport=rdma node={0} inbound from {1} ended: {2}",
                    transport.localNodeId(),
                    peerId,
                    e.toString());
        } finally {
            close();
            transport.inboundEnded(this);
        }
    }

    /** Tells the peer about a region registered after it connected. Control path. */
    void announceAdded(Handshake.RegionAdvert region) {
        synchronized (this) {
            if (announcing) {
                try {
                    Handshake.writeRegionAdded(out, region);
                } catch (IOException e) {
                    close();
                }
            }
        }
    }

    void announceRemoved(int regionId, long key) {
        synchronized (this) {
            if (announcing) {
                try {
                    Handshake.writeRegionRemoved(out, regionId, key);
                } catch (IOException e) {
                    close();
                }
            }
        }
    }

    /** Closes the socket and frees the responder queue pairs (they post nothing: no drain needed). */
    synchronized void close() {
        closed = true;
        announcing = false;
        try {
            socket.close();
        } catch (IOException ignored) {
            // closing anyway
        }
        if (!qps.isEmpty()) {
            try (Arena a = Arena.ofConfined()) {
                MemorySegment attr = a.allocate(io.pegaflow.rdma.verbs.VerbsLayout.SIZEOF_QP_ATTR, 8);
                for (QueuePair qp : qps) {
                    qp.moveToError(attr);
                    qp.destroy();
                }
            }
            qps.clear();
        }
    }
}
