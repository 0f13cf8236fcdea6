package io.pegaflow.transport;

/** Where a transport stands with one peer of its static peer list. */
public enum PeerState {
    /** Not a peer of this transport (not in its peer list). */
    UNKNOWN,
    /** Trying to connect (first attempt, or after a failed one; retried in the background with back-off). */
    CONNECTING,
    /** Connected: transfers to this peer are accepted. */
    CONNECTED,
    /** The connection was lost; a reconnect is scheduled in the background. */
    DISCONNECTED,
    /** The transport is closed. */
    CLOSED
}
