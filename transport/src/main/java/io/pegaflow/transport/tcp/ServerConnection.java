package io.pegaflow.transport.tcp;

import java.io.EOFException;
import java.io.IOException;
import java.lang.System.Logger.Level;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.channels.ClosedChannelException;
import java.nio.channels.SocketChannel;
import java.util.zip.CRC32C;

/**
 * Serves one inbound connection on its own thread with blocking I/O: a READ request is answered straight from the
 * registered region (the socket write reads region memory through a {@link RegionViews} view: no intermediate copy),
 * a WRITE request's payload is read straight into the region. Every request's descriptors are checked against the
 * region table (id, key, range) before a byte moves; a refused request gets an error reply (a WRITE's payload is read
 * off and dropped), so the connection stays usable.
 *
 * <p>Confined to its thread; buffers are allocated once per connection (the descriptor buffer grows to the largest
 * request seen).
 */
final class ServerConnection implements Runnable {

    private static final System.Logger LOG = System.getLogger(TcpTransport.class.getName());
    private static final int SCRATCH_BYTES = 256 * 1024;

    private final TcpTransport transport;
    private final SocketChannel channel;
    private final String localNodeId;
    private final RegionViews views = new RegionViews();
    private final ByteBuffer header = ByteBuffer.allocateDirect(TcpProtocol.HEADER_BYTES);
    private final ByteBuffer reply = ByteBuffer.allocateDirect(TcpProtocol.HEADER_BYTES);
    private final ByteBuffer crcBytes = ByteBuffer.allocateDirect(TcpProtocol.CRC_BYTES);
    private final ByteBuffer flip = ByteBuffer.allocateDirect(1);
    private final ByteBuffer scratch = ByteBuffer.allocateDirect(SCRATCH_BYTES);
    private final CRC32C crc = new CRC32C();
    private ByteBuffer descriptors = ByteBuffer.allocateDirect(64 * TcpProtocol.DESCRIPTOR_BYTES);
    private TcpRegion[] regions = new TcpRegion[64];
    private long[] offsets = new long[64];
    private int[] lengths = new int[64];
    private Thread thread;
    private String peerId = "?";
    private volatile boolean closing;

    ServerConnection(TcpTransport transport, SocketChannel channel, String localNodeId) {
        this.transport = transport;
        this.channel = channel;
        this.localNodeId = localNodeId;
    }

    void start(String threadName, Runnable onExit) {
        thread = Thread.ofPlatform().name(threadName).daemon(true).unstarted(() -> {
            try {
                run();
            } finally {
                onExit.run();
            }
        });
        thread.start();
    }

    void close() {
        closing = true;
        try {
            channel.close();
        } catch (IOException ignored) {
            // closing
        }
        if (thread != null) {
            thread.interrupt(); // ends a test hook's sleep
        }
    }

    void join(long millis) throws InterruptedException {
        if (thread != null) {
            thread.join(millis);
        }
    }

    @Override
    public void run() {
        try {
            handshake();
            while (!closing) {
                serveOne();
            }
        } catch (EOFException | ClosedChannelException | InterruptedException e) {
            // the peer left, or this transport is closing
        } catch (IOException | RuntimeException e) {
            if (!closing) {
                LOG.log(
                        Level.INFO,
                        "transport=tcp node={0} dropped the connection from peer {1}: {2}",
                        localNodeId,
                        peerId,
                        e.toString());
            }
        } finally {
            close();
        }
    }

    private void handshake() throws IOException {
        int timeout = (int) Math.min(Integer.MAX_VALUE, transport.settings().connectTimeoutMs());
        channel.setOption(java.net.StandardSocketOptions.TCP_NODELAY, true);
        channel.socket().setSoTimeout(timeout);
        peerId = PeerConnector.readHello(channel.socket().getInputStream());
        PeerConnector.writeHello(channel, localNodeId);
        channel.socket().setSoTimeout(0);
    }

    private void serveOne() throws IOException, InterruptedException {
        readFully(header.clear());
        if (header.getInt(TcpProtocol.AT_MAGIC) != TcpProtocol.REQUEST_MAGIC) {
            throw new ProtocolException(
                    "bad request magic 0x" + Integer.toHexString(header.getInt(TcpProtocol.AT_MAGIC)));
        }
        byte op = header.get(TcpProtocol.AT_OP_OR_STATUS);
        byte flags = header.get(TcpProtocol.AT_FLAGS);
        long requestId = header.getLong(TcpProtocol.AT_REQUEST_ID);
        int count = header.getInt(TcpProtocol.AT_COUNT);
        long payload = header.getLong(TcpProtocol.AT_PAYLOAD_BYTES);
        if (op != TcpProtocol.OP_READ && op != TcpProtocol.OP_WRITE) {
            throw new ProtocolException("unknown op " + op);
        }
        if (count < 1 || count > io.pegaflow.transport.TransportSettings.MAX_DESCRIPTORS_PER_TRANSFER_LIMIT) {
            throw new ProtocolException("descriptor count " + count);
        }
        boolean checksums = (flags & TcpProtocol.FLAG_CHECKSUMS) != 0;
        ensureCapacity(count);
        readFully(descriptors.clear().limit(count * TcpProtocol.DESCRIPTOR_BYTES));

        byte status = TcpProtocol.REPLY_OK;
        int failedIndex = -1;
        long total = 0;
        RegionTable table = transport.regionTable();
        for (int i = 0; i < count; i++) {
            int at = i * TcpProtocol.DESCRIPTOR_BYTES;
            int regionId = descriptors.getInt(at + TcpProtocol.AT_REGION_ID);
            int length = descriptors.getInt(at + TcpProtocol.AT_LENGTH);
            long key = descriptors.getLong(at + TcpProtocol.AT_KEY);
            long offset = descriptors.getLong(at + TcpProtocol.AT_OFFSET);
            if (length < 1 || length > TcpProtocol.MAX_DESCRIPTOR_BYTES) {
                throw new ProtocolException("descriptor " + i + " has length " + length);
            }
            total += length;
            TcpRegion region = table.get(regionId);
            regions[i] = region;
            offsets[i] = offset;
            lengths[i] = length;
            if (status != TcpProtocol.REPLY_OK) {
                continue;
            }
            if (region == null) {
                status = TcpProtocol.REPLY_UNKNOWN_REGION;
            } else if (region.key() != key) {
                status = TcpProtocol.REPLY_STALE_KEY;
            } else if (!region.contains(offset, length)) {
                status = TcpProtocol.REPLY_OUT_OF_RANGE;
            }
            if (status != TcpProtocol.REPLY_OK) {
                failedIndex = i;
            }
        }
        long expectedPayload = op == TcpProtocol.OP_WRITE ? TcpProtocol.payloadBytes(total, count, checksums) : 0;
        if (payload != expectedPayload) {
            throw new ProtocolException("request carries " + payload + " payload bytes, expected " + expectedPayload);
        }
        boolean pinned = status == TcpProtocol.REPLY_OK && pinAll(count);
        if (status == TcpProtocol.REPLY_OK && !pinned) {
            status = TcpProtocol.REPLY_UNKNOWN_REGION; // deregistered between the lookup and the pin
        }
        try {
            if (status != TcpProtocol.REPLY_OK) {
                if (op == TcpProtocol.OP_WRITE) {
                    drain(payload);
                }
                writeReply(status, flags, requestId, count, failedIndex, 0);
                transport.recordServedRefusal();
            } else if (op == TcpProtocol.OP_READ) {
                serveRead(flags, requestId, count, checksums, total);
            } else {
                byte outcome = receiveWrite(count, checksums);
                writeReply(outcome, flags, requestId, count, -1, 0);
                transport.testHook().afterReceivingWrite();
                if (outcome == TcpProtocol.REPLY_OK) {
                    transport.recordServed(total);
                } else {
                    transport.recordServedRefusal();
                }
            }
        } finally {
            if (pinned) {
                unpinAll(count);
            }
        }
    }

    private void serveRead(byte flags, long requestId, int count, boolean checksums, long total)
            throws IOException, InterruptedException {
        writeReply(
                TcpProtocol.REPLY_OK, flags, requestId, count, -1, TcpProtocol.payloadBytes(total, count, checksums));
        TcpTestHook hook = transport.testHook();
        boolean hooked = hook != TcpTestHook.NONE;
        for (int i = 0; i < count; i++) {
            TcpRegion region = regions[i];
            long offset = offsets[i];
            int length = lengths[i];
            if (hooked) {
                hook.beforeServingBlockPart(i, 0);
            }
            if (checksums) {
                crcBytes.clear().putInt(0, crcOf(region, offset, length));
            }
            boolean corrupt = hooked && hook.corruptOutgoingBlock(i);
            long body = corrupt ? length - 1 : length;
            if (hooked) {
                long half = Math.min(body, length / 2);
                writeRange(region, offset, half);
                hook.beforeServingBlockPart(i, 1);
                writeRange(region, offset + half, body - half);
            } else {
                writeRange(region, offset, body);
            }
            if (corrupt) {
                byte last = region.segment().get(ValueLayout.JAVA_BYTE, offset + length - 1);
                writeFully(flip.clear().put(0, (byte) (last ^ 0xFF)));
            }
            if (checksums) {
                writeFully(crcBytes);
            }
        }
        transport.recordServed(total);
        if (hooked) {
            hook.afterServingRead();
        }
    }

    private byte receiveWrite(int count, boolean checksums) throws IOException, InterruptedException {
        TcpTestHook hook = transport.testHook();
        byte outcome = TcpProtocol.REPLY_OK;
        for (int i = 0; i < count; i++) {
            if (hook != TcpTestHook.NONE) {
                hook.beforeReceivingBlock(i);
            }
            readRange(regions[i], offsets[i], lengths[i]);
            if (checksums) {
                readFully(crcBytes.clear());
                if (crcOf(regions[i], offsets[i], lengths[i]) != crcBytes.getInt(0)) {
                    outcome = TcpProtocol.REPLY_CHECKSUM_MISMATCH;
                }
            }
        }
        return outcome;
    }

    private boolean pinAll(int count) {
        TcpRegion previous = null;
        for (int i = 0; i < count; i++) {
            if (regions[i] != previous) {
                if (!regions[i].pin()) {
                    unpinAll(i);
                    return false;
                }
                previous = regions[i];
            }
        }
        return true;
    }

    private void unpinAll(int upTo) {
        TcpRegion previous = null;
        for (int i = 0; i < upTo; i++) {
            if (regions[i] != previous) {
                regions[i].unpin();
                previous = regions[i];
            }
        }
    }

    private void writeReply(byte status, byte flags, long requestId, int count, int failedIndex, long payload)
            throws IOException {
        reply.clear()
                .putInt(TcpProtocol.REPLY_MAGIC)
                .put(status)
                .put(flags)
                .putShort((short) 0)
                .putLong(requestId)
                .putInt(count)
                .putInt(failedIndex)
                .putLong(payload)
                .flip();
        writeFully(reply);
    }

    private void writeRange(TcpRegion region, long offset, long length) throws IOException {
        long done = 0;
        while (done < length) {
            ByteBuffer view = views.view(region, offset + done, length - done);
            done += view.remaining();
            writeFully(view);
        }
    }

    private void readRange(TcpRegion region, long offset, long length) throws IOException {
        long done = 0;
        while (done < length) {
            ByteBuffer view = views.view(region, offset + done, length - done);
            done += view.remaining();
            readFully(view);
        }
    }

    private int crcOf(TcpRegion region, long offset, long length) {
        crc.reset();
        long done = 0;
        while (done < length) {
            ByteBuffer view = views.view(region, offset + done, length - done);
            done += view.remaining();
            crc.update(view);
        }
        return (int) crc.getValue();
    }

    private void drain(long bytes) throws IOException {
        long left = bytes;
        while (left > 0) {
            scratch.clear().limit((int) Math.min(scratch.capacity(), left));
            readFully(scratch);
            left -= scratch.limit();
        }
    }

    private void readFully(ByteBuffer target) throws IOException {
        while (target.hasRemaining()) {
            if (channel.read(target) < 0) {
                throw new EOFException("peer closed the connection");
            }
        }
    }

    private void writeFully(ByteBuffer source) throws IOException {
        while (source.hasRemaining()) {
            channel.write(source);
        }
    }

    private void ensureCapacity(int count) {
        if (count <= regions.length) {
            return;
        }
        int size = Math.max(count, regions.length * 2);
        descriptors = ByteBuffer.allocateDirect(size * TcpProtocol.DESCRIPTOR_BYTES);
        regions = new TcpRegion[size];
        offsets = new long[size];
        lengths = new int[size];
    }
}
