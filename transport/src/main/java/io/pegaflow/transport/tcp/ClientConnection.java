package io.pegaflow.transport.tcp;

import io.pegaflow.transport.TransferOp;
import io.pegaflow.transport.TransferStatus;
import java.io.EOFException;
import java.io.IOException;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.channels.SelectionKey;
import java.nio.channels.SocketChannel;

/**
 * The requesting side of one connection to one peer: sends requests (and WRITE payloads) and receives replies (and
 * READ payloads straight into local region memory), as two non-blocking state machines driven by the I/O thread's
 * selector.
 *
 * <p>The memory guarantee lives here: before every socket read into (or write from) a transfer's local memory the
 * connection checks that the transfer is still live — its slot still carries the request id being received and is
 * still awaiting. Timeouts, cancels and closes are decided on this same thread, between those reads, so once a
 * transfer is completed no further byte of its reply lands in its memory: the rest is read into scratch memory and
 * dropped ({@code lateBytesDiscarded}), and a WRITE's unsent rest is replaced by zeros to keep the stream framed.
 *
 * <p>Confined to the I/O thread. Nothing is allocated per request or per block: headers and descriptors are encoded
 * into one reusable direct buffer, payloads move through {@link RegionViews}.
 */
final class ClientConnection {

    private static final int TX_IDLE = 0;
    private static final int TX_HEADER = 1;
    private static final int TX_BLOCK = 2;
    private static final int TX_CRC = 3;
    private static final int TX_PAD = 4;

    private static final int RX_HEADER = 0;
    private static final int RX_PAYLOAD = 1;

    /** Bytes one readiness event may move before the I/O thread looks at deadlines and other connections again. */
    private static final long IO_BUDGET_BYTES = 16L << 20;

    final PeerLink link;
    private final SocketChannel channel;
    private final SelectionKey key;
    private final TcpClientAgent agent;
    private final RegionViews views;

    // Request ids waiting to be sent (a ring; entries of transfers completed meanwhile are skipped).
    private final long[] sendQueue;
    private int sendHead;
    private int sendCount;

    // Sending side.
    private final ByteBuffer txHeader;
    private final ByteBuffer txCrc = ByteBuffer.allocateDirect(TcpProtocol.CRC_BYTES);
    private final ByteBuffer txFlip = ByteBuffer.allocateDirect(1);
    private int txPhase = TX_IDLE;
    private TransferSlot txSlot;
    private long txRequestId;
    private TransferOp txOp;
    private int txBlock;
    private long txBlockDone;
    private boolean txCorrupt;
    private long txPayloadRemaining;
    private boolean writeInterest;

    // Receiving side.
    private final ByteBuffer rxHeader = ByteBuffer.allocateDirect(TcpProtocol.HEADER_BYTES);
    private final ByteBuffer rxCrc = ByteBuffer.allocateDirect(TcpProtocol.CRC_BYTES);
    private int rxPhase = RX_HEADER;
    private TransferSlot rxSlot;
    private long rxRequestId;
    private long rxRemaining;
    private int rxBlock;
    private long rxBlockDone;
    private boolean rxInCrc;
    /** The last read returned less than asked: the socket had no more for now. */
    private boolean drainedSocket;

    private boolean closed;

    ClientConnection(
            PeerLink link,
            SocketChannel channel,
            SelectionKey key,
            TcpClientAgent agent,
            int maxInFlight,
            int maxDesc) {
        this.link = link;
        this.channel = channel;
        this.key = key;
        this.agent = agent;
        this.views = agent.views;
        this.sendQueue = new long[Integer.highestOneBit(Math.max(2, maxInFlight) * 2 - 1) * 2];
        this.txHeader = ByteBuffer.allocateDirect(TcpProtocol.HEADER_BYTES + maxDesc * TcpProtocol.DESCRIPTOR_BYTES);
    }

    /** Queues an adopted transfer's request and starts sending if the socket is idle. */
    void enqueue(long requestId) throws IOException {
        if (sendCount == sendQueue.length) {
            compactSendQueue();
        }
        if (sendCount == sendQueue.length) {
            throw new IllegalStateException("send queue overflow: more live transfers than slots");
        }
        sendQueue[(sendHead + sendCount) & (sendQueue.length - 1)] = requestId;
        sendCount++;
        if (!writeInterest) {
            flush();
        }
    }

    // ---------------------------------------------------------------- sending

    /** Writes as much of the queued requests as the socket takes now; asks for OP_WRITE when it stalls. */
    void flush() throws IOException {
        long budget = IO_BUDGET_BYTES;
        while (budget > 0) {
            switch (txPhase) {
                case TX_IDLE -> {
                    if (!startNextRequest()) {
                        setWriteInterest(false);
                        return;
                    }
                }
                case TX_HEADER -> {
                    channel.write(txHeader);
                    if (txHeader.hasRemaining()) {
                        setWriteInterest(true);
                        return;
                    }
                    if (txOp == TransferOp.WRITE) {
                        startBlock(0);
                    } else {
                        if (txLive()) {
                            txSlot.ioState = TransferSlot.IO_AWAITING;
                        }
                        txPhase = TX_IDLE;
                        txSlot = null;
                    }
                }
                case TX_BLOCK -> {
                    if (!txLive()) {
                        txPhase = TX_PAD; // completed mid-send: never read its local memory again
                        continue;
                    }
                    int n = writeBlockBytes();
                    if (n == 0) {
                        setWriteInterest(true);
                        return;
                    }
                    budget -= n;
                }
                case TX_CRC -> {
                    int n = channel.write(txCrc);
                    txPayloadRemaining -= n;
                    if (txCrc.hasRemaining()) {
                        setWriteInterest(true);
                        return;
                    }
                    nextBlock();
                }
                case TX_PAD -> {
                    if (txPayloadRemaining == 0) {
                        txPhase = TX_IDLE;
                        txSlot = null;
                        continue;
                    }
                    int n = writePadding();
                    if (n == 0) {
                        setWriteInterest(true);
                        return;
                    }
                    budget -= n;
                }
                default -> throw new IllegalStateException("tx phase " + txPhase);
            }
        }
        setWriteInterest(true); // budget spent with more to send: the next select returns at once
    }

    private boolean startNextRequest() {
        while (sendCount > 0) {
            long id = sendQueue[sendHead];
            sendHead = (sendHead + 1) & (sendQueue.length - 1);
            sendCount--;
            TransferSlot slot = agent.liveSlot(id, TransferSlot.IO_QUEUED);
            if (slot == null) {
                continue; // completed (timed out, cancelled) while queued
            }
            encodeRequest(slot, id);
            slot.ioState = TransferSlot.IO_SENDING;
            txSlot = slot;
            txRequestId = id;
            txOp = slot.op; // kept here: once the slot is completed it may be reused while its request is still sent
            txPhase = TX_HEADER;
            txPayloadRemaining = slot.op == TransferOp.WRITE
                    ? TcpProtocol.payloadBytes(slot.totalBytes, slot.count, slot.checksums)
                    : 0;
            return true;
        }
        return false;
    }

    private void encodeRequest(TransferSlot slot, long id) {
        ByteBuffer h = txHeader.clear();
        h.putInt(TcpProtocol.REQUEST_MAGIC);
        h.put(slot.op == TransferOp.READ ? TcpProtocol.OP_READ : TcpProtocol.OP_WRITE);
        h.put(slot.checksums ? TcpProtocol.FLAG_CHECKSUMS : 0);
        h.putShort((short) 0);
        h.putLong(id);
        h.putInt(slot.count);
        h.putInt(0);
        h.putLong(
                slot.op == TransferOp.WRITE
                        ? TcpProtocol.payloadBytes(slot.totalBytes, slot.count, slot.checksums)
                        : 0);
        for (int i = 0; i < slot.count; i++) {
            h.putInt(slot.remoteRegionIds[i]);
            h.putInt(slot.lengths[i]);
            h.putLong(slot.remoteKeys[i]);
            h.putLong(slot.remoteOffsets[i]);
        }
        h.flip();
    }

    private boolean txLive() {
        return txSlot.requestId == txRequestId && txSlot.ioState == TransferSlot.IO_SENDING;
    }

    private void startBlock(int block) {
        txBlock = block;
        txBlockDone = 0;
        if (!txLive()) {
            txPhase = TX_PAD;
            return;
        }
        txPhase = TX_BLOCK;
        txCorrupt = agent.hook().corruptOutgoingBlock(block);
        if (txSlot.checksums) {
            int crc = agent.crcOf(txSlot.localRegions[block], txSlot.localOffsets[block], txSlot.lengths[block]);
            txCrc.clear().putInt(0, crc);
        }
    }

    /** Writes the live WRITE block's bytes from local memory (zero copy); 0 when the socket is full. */
    private int writeBlockBytes() throws IOException {
        TransferSlot slot = txSlot;
        int length = slot.lengths[txBlock];
        long remaining = length - txBlockDone;
        ByteBuffer source;
        if (txCorrupt && remaining == 1) {
            long last = slot.localOffsets[txBlock] + length - 1;
            byte b = slot.localRegions[txBlock].segment().get(ValueLayout.JAVA_BYTE, last);
            source = txFlip.clear().put(0, (byte) (b ^ 0xFF));
        } else {
            long upTo = txCorrupt ? remaining - 1 : remaining;
            source = views.view(slot.localRegions[txBlock], slot.localOffsets[txBlock] + txBlockDone, upTo);
        }
        int n = channel.write(source);
        txBlockDone += n;
        txPayloadRemaining -= n;
        slot.ioBytesDone += n;
        if (txBlockDone == length) {
            if (slot.checksums) {
                txPhase = TX_CRC;
            } else {
                nextBlock();
            }
        }
        return n;
    }

    private void nextBlock() {
        if (txLive() && txBlock + 1 < txSlot.count) {
            startBlock(txBlock + 1);
            return;
        }
        if (txPayloadRemaining > 0) {
            txPhase = TX_PAD;
            return;
        }
        if (txLive()) {
            txSlot.ioState = TransferSlot.IO_AWAITING;
        }
        txPhase = TX_IDLE;
        txSlot = null;
    }

    /** Zeros in place of the payload a completed transfer did not send, so the stream stays framed. */
    private int writePadding() throws IOException {
        ByteBuffer zeros = agent.zeros;
        zeros.clear().limit((int) Math.min(zeros.capacity(), txPayloadRemaining));
        int n = channel.write(zeros);
        txPayloadRemaining -= n;
        if (txPayloadRemaining == 0) {
            txPhase = TX_IDLE;
            txSlot = null;
        }
        return n;
    }

    private void setWriteInterest(boolean on) {
        if (on != writeInterest) {
            writeInterest = on;
            key.interestOps(on ? SelectionKey.OP_READ | SelectionKey.OP_WRITE : SelectionKey.OP_READ);
        }
    }

    private void compactSendQueue() {
        int kept = 0;
        int mask = sendQueue.length - 1;
        for (int i = 0; i < sendCount; i++) {
            long id = sendQueue[(sendHead + i) & mask];
            if (agent.liveSlot(id, TransferSlot.IO_QUEUED) != null) {
                sendQueue[(sendHead + kept) & mask] = id;
                kept++;
            }
        }
        sendCount = kept;
    }

    // ---------------------------------------------------------------- receiving

    /** Reads replies and READ payloads as far as the socket has them (bounded per call). */
    void onReadable() throws IOException {
        long budget = IO_BUDGET_BYTES;
        while (budget > 0) {
            if (rxPhase == RX_HEADER) {
                if (read(rxHeader) == 0 || rxHeader.hasRemaining()) {
                    return;
                }
                startReply();
                continue;
            }
            if (rxRemaining == 0) {
                rxPhase = RX_HEADER;
                continue;
            }
            int n;
            if (!rxLive()) {
                n = drain();
            } else if (!rxInCrc) {
                n = readBlockBytes();
            } else {
                n = readCrc();
            }
            if (n == 0 || drainedSocket) {
                return; // a short read: the socket is empty for now, the selector says when there is more
            }
            budget -= n;
        }
    }

    private void startReply() throws IOException {
        ByteBuffer h = rxHeader;
        if (h.getInt(TcpProtocol.AT_MAGIC) != TcpProtocol.REPLY_MAGIC) {
            throw new ProtocolException("bad reply magic 0x" + Integer.toHexString(h.getInt(TcpProtocol.AT_MAGIC)));
        }
        byte status = h.get(TcpProtocol.AT_OP_OR_STATUS);
        long id = h.getLong(TcpProtocol.AT_REQUEST_ID);
        int count = h.getInt(TcpProtocol.AT_COUNT);
        long payload = h.getLong(TcpProtocol.AT_PAYLOAD_BYTES);
        h.clear();
        if (payload < 0) {
            throw new ProtocolException("negative reply payload " + payload);
        }
        rxRemaining = payload;
        rxSlot = null;
        rxPhase = payload > 0 ? RX_PAYLOAD : RX_HEADER;
        TransferSlot slot = agent.liveSlot(id, TransferSlot.IO_AWAITING);
        if (slot == null) {
            return; // a late reply: its payload is drained and dropped
        }
        if (count != slot.count) {
            throw new ProtocolException("reply for " + slot.count + " descriptors says " + count);
        }
        TransferStatus outcome = TcpProtocol.statusOf(status);
        if (outcome != TransferStatus.OK || slot.op == TransferOp.WRITE) {
            if (payload != 0) {
                throw new ProtocolException("reply without data carries " + payload + " payload bytes");
            }
            if (outcome == TransferStatus.OK) {
                slot.ioBytesDone = slot.totalBytes;
            } else if (slot.op == TransferOp.WRITE) {
                slot.ioBytesDone = 0; // the peer refused or could not verify it: nothing counts as moved
            }
            agent.complete(slot, outcome);
            return;
        }
        long expected = TcpProtocol.payloadBytes(slot.totalBytes, slot.count, slot.checksums);
        if (payload != expected) {
            throw new ProtocolException("READ reply carries " + payload + " payload bytes, expected " + expected);
        }
        rxSlot = slot;
        rxRequestId = id;
        rxBlock = 0;
        rxBlockDone = 0;
        rxInCrc = false;
    }

    private boolean rxLive() {
        return rxSlot != null && rxSlot.requestId == rxRequestId && rxSlot.ioState == TransferSlot.IO_AWAITING;
    }

    /** Reads the current block's bytes straight into the transfer's local memory. */
    private int readBlockBytes() throws IOException {
        TransferSlot slot = rxSlot;
        int length = slot.lengths[rxBlock];
        ByteBuffer target =
                views.view(slot.localRegions[rxBlock], slot.localOffsets[rxBlock] + rxBlockDone, length - rxBlockDone);
        int n = read(target);
        rxBlockDone += n;
        rxRemaining -= n;
        slot.ioBytesDone += n;
        if (rxBlockDone == length) {
            if (slot.checksums) {
                rxInCrc = true;
                rxCrc.clear();
            } else {
                finishBlock();
            }
        }
        return n;
    }

    private int readCrc() throws IOException {
        int n = read(rxCrc);
        rxRemaining -= n;
        if (!rxCrc.hasRemaining()) {
            rxInCrc = false;
            TransferSlot slot = rxSlot;
            int actual = agent.crcOf(slot.localRegions[rxBlock], slot.localOffsets[rxBlock], slot.lengths[rxBlock]);
            if (actual != rxCrc.getInt(0)) {
                agent.complete(slot, TransferStatus.CHECKSUM_MISMATCH); // the rest of the payload is drained
                return n;
            }
            finishBlock();
        }
        return n;
    }

    private void finishBlock() throws ProtocolException {
        rxBlock++;
        rxBlockDone = 0;
        if (rxBlock == rxSlot.count) {
            if (rxRemaining != 0) {
                throw new ProtocolException(rxRemaining + " payload bytes left after the last block");
            }
            agent.complete(rxSlot, TransferStatus.OK);
            rxSlot = null;
            rxPhase = RX_HEADER;
        }
    }

    /** Reads payload of a transfer that is no longer live into scratch memory and drops it. */
    private int drain() throws IOException {
        ByteBuffer scratch = agent.scratch;
        scratch.clear().limit((int) Math.min(scratch.capacity(), rxRemaining));
        int n = read(scratch);
        rxRemaining -= n;
        agent.addLateBytes(n);
        return n;
    }

    private int read(ByteBuffer target) throws IOException {
        int n = channel.read(target);
        if (n < 0) {
            throw new EOFException("peer closed the connection");
        }
        drainedSocket = target.hasRemaining();
        return n;
    }

    // ---------------------------------------------------------------- life cycle

    boolean isClosed() {
        return closed;
    }

    void close() {
        if (closed) {
            return;
        }
        closed = true;
        key.cancel();
        try {
            channel.close();
        } catch (IOException ignored) {
            // closing: nothing left to do with it
        }
    }
}
