package io.pegaflow.transport.tcp;

import io.pegaflow.transport.TransferStatus;

/**
 * The TCP transport's wire format: a hello each way, then framed requests (requester → holder) and replies (holder →
 * requester) on one long-lived connection per peer. All integers big-endian; every frame starts with a magic so a
 * desynchronised stream is caught at once (the connection is then dropped).
 *
 * <pre>
 * hello        magic "PFH1" (4) | version (4) | node id length (2) | node id (UTF-8, 1..255)
 * request      magic "PFRQ" (4) | op (1) | flags (1) | 0 (2) | request id (8) | count (4) | 0 (4) | payload bytes (8)
 *              then count descriptors, then the payload (WRITE only)
 * descriptor   region id (4) | length (4) | key (8) | offset in region (8)
 * reply        magic "PFRP" (4) | status (1) | flags (1) | 0 (2) | request id (8) | count (4) | failed index (4)
 *              | payload bytes (8), then the payload (READ with status OK only)
 * payload      for each descriptor in order: its bytes, then a CRC32C of them (4) if flags has CHECKSUMS
 * </pre>
 *
 * The request id names the requester's transfer slot and its generation; a reply whose id is no longer live (its
 * transfer timed out, was cancelled or failed) is read off the socket into scratch memory and dropped, which is why
 * every reply states its payload length.
 */
final class TcpProtocol {

    static final int HELLO_MAGIC = 0x5046_4831; // "PFH1"
    static final int VERSION = 1;
    static final int MAX_NODE_ID_BYTES = 255;

    static final int REQUEST_MAGIC = 0x5046_5251; // "PFRQ"
    static final int REPLY_MAGIC = 0x5046_5250; // "PFRP"

    static final int HEADER_BYTES = 32;
    static final int DESCRIPTOR_BYTES = 24;
    static final int CRC_BYTES = 4;

    static final byte OP_READ = 1;
    static final byte OP_WRITE = 2;
    static final byte FLAG_CHECKSUMS = 1;

    /** The longest single descriptor: lengths travel as an int, and views of a region are 1 GiB chunks. */
    static final long MAX_DESCRIPTOR_BYTES = 1L << 30;

    // Header field offsets (request and reply share the layout; bytes 4, 16, 20 and 24 differ in meaning).
    static final int AT_MAGIC = 0;
    static final int AT_OP_OR_STATUS = 4;
    static final int AT_FLAGS = 5;
    static final int AT_REQUEST_ID = 8;
    static final int AT_COUNT = 16;
    static final int AT_FAILED_INDEX = 20;
    static final int AT_PAYLOAD_BYTES = 24;

    // Descriptor field offsets.
    static final int AT_REGION_ID = 0;
    static final int AT_LENGTH = 4;
    static final int AT_KEY = 8;
    static final int AT_OFFSET = 16;

    // Reply statuses.
    static final byte REPLY_OK = 0;
    static final byte REPLY_UNKNOWN_REGION = 1;
    static final byte REPLY_STALE_KEY = 2;
    static final byte REPLY_OUT_OF_RANGE = 3;
    static final byte REPLY_CHECKSUM_MISMATCH = 4;
    static final byte REPLY_TOO_MANY_DESCRIPTORS = 5;

    private TcpProtocol() {}

    /** The status a requester reports for a reply status. */
    static TransferStatus statusOf(byte replyStatus) {
        return switch (replyStatus) {
            case REPLY_OK -> TransferStatus.OK;
            case REPLY_CHECKSUM_MISMATCH -> TransferStatus.CHECKSUM_MISMATCH;
            default -> TransferStatus.REMOTE_ERROR;
        };
    }

    /** Payload bytes of a transfer of {@code totalBytes} in {@code count} descriptors. */
    static long payloadBytes(long totalBytes, int count, boolean checksums) {
        return totalBytes + (checksums ? (long) count * CRC_BYTES : 0);
    }
}
