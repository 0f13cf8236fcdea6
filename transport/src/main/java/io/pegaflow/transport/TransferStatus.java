package io.pegaflow.transport;

/**
 * The outcome of submitting a transfer, and of a transfer once it completes. Expected outcomes are values, never
 * exceptions: a caller switches on the status.
 *
 * <p>A submission ({@link Transport#read}, {@link Transport#write}) returns {@link #OK} when the transfer was
 * accepted (exactly one completion follows) or one of the refusals {@link #BACK_PRESSURED}, {@link #NOT_CONNECTED},
 * {@link #CLOSED}, {@link #BAD_DESCRIPTOR} (no completion follows, and nothing moved). A completion carries {@link #OK}
 * or one of the failures {@link #NOT_CONNECTED}, {@link #REMOTE_ERROR}, {@link #CHECKSUM_MISMATCH},
 * {@link #TIMED_OUT}, {@link #CANCELLED}, {@link #CLOSED}.
 *
 * <p>Whatever the status, once a completion is delivered the transport no longer touches the transfer's local memory:
 * the caller may release or reuse it at once. After a failed READ the local ranges hold undefined bytes (possibly a
 * part of the data); after a failed WRITE the remote ranges do.
 */
public enum TransferStatus {
    /** Accepted (as a submission result), or all bytes moved (as a completion). */
    OK,
    /** Refused: the peer already has its maximum of transfers in flight. Retry after a completion. */
    BACK_PRESSURED,
    /** Refused: the peer is unknown, or not connected now. As a completion: the connection dropped before sending. */
    NOT_CONNECTED,
    /** The transport is closed (refused), or was closed while the transfer was in flight (completion). */
    CLOSED,
    /** Refused: a descriptor names a range outside its region, a region not registered here, or another node. */
    BAD_DESCRIPTOR,
    /** The peer refused the request (unknown region, stale key, range) or the connection broke while in flight. */
    REMOTE_ERROR,
    /** A block's checksum did not match on arrival: the data was corrupted in flight. */
    CHECKSUM_MISMATCH,
    /** The transfer's timeout passed before it completed. */
    TIMED_OUT,
    /** {@link Transport#cancel} ended the transfer. */
    CANCELLED;

    private static final TransferStatus[] VALUES = values();

    /** The status with this {@link #ordinal()}; for counters indexed by status. */
    public static TransferStatus ofOrdinal(int ordinal) {
        return VALUES[ordinal];
    }

    /** How many statuses there are: the length of arrays indexed by status. */
    public static int count() {
        return VALUES.length;
    }
}
