package io.pegaflow.rdma;

import io.pegaflow.rdma.verbs.Verbs;
import io.pegaflow.transport.TransferStatus;

/** Maps a work completion's {@code enum ibv_wc_status} to the transfer status it reports. Stateless. */
final class WcStatus {
    private WcStatus() {}

    /**
     * The status a failed work request gives its transfer: the peer refused the access (bad rkey or range), went away
     * (retries exhausted) or the queue pair was flushed because the connection broke; all of these say the bytes did
     * not (all) move, none is a local programming error the caller could fix. {@code closing} turns flushes into
     * {@link TransferStatus#CLOSED}.
     */
    static TransferStatus toTransferStatus(int wcStatus, boolean closing) {
        if (wcStatus == Verbs.WC_SUCCESS) {
            return TransferStatus.OK;
        }
        if (wcStatus == Verbs.WC_WR_FLUSH_ERR && closing) {
            return TransferStatus.CLOSED;
        }
        return TransferStatus.REMOTE_ERROR;
    }

    /** A short name for logs ({@code ibv_wc_status_str} without needing the library). */
    static String name(int wcStatus) {
        return switch (wcStatus) {
            case 0 -> "success";
            case 1 -> "local length error";
            case 2 -> "local QP operation error";
            case 4 -> "local protection error";
            case 5 -> "work request flushed";
            case 8 -> "local access error";
            case 9 -> "remote invalid request";
            case 10 -> "remote access error";
            case 11 -> "remote operation error";
            case 12 -> "transport retry counter exceeded";
            case 13 -> "RNR retry counter exceeded";
            case 20 -> "response timeout";
            default -> "wc status " + wcStatus;
        };
    }
}
