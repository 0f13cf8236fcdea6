package io.pegaflow.actors;

/**
 * Marker for every message that crosses nodes: bound to Pekko's {@code jackson-cbor} serializer in this module's
 * {@code reference.conf}.
 */
public interface CborSerializable {}
