package io.pegaflow.actors.directory;

/**
 * Marker for the directory's messages that cross nodes: bound to {@link DirectorySerializer} (compact binary, arrays
 * copied in bulk) in this module's {@code reference.conf}, instead of the Jackson CBOR used for other messages.
 */
interface DirectoryWire {}
