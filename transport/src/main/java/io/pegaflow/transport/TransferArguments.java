package io.pegaflow.transport;

import java.util.Objects;

/**
 * The argument checks every {@link Transport}'s {@code read}/{@code write} starts with, in one place so that the
 * transports refuse the same requests the same way: programming errors throw, a descriptor outside its regions is a
 * {@link TransferStatus#BAD_DESCRIPTOR} the transport returns.
 */
public final class TransferArguments {
    private TransferArguments() {}

    /** Throws for a null list or handler, or a timeout that is not positive. */
    public static void require(DescriptorList descriptors, long timeoutMs, CompletionHandler handler) {
        Objects.requireNonNull(descriptors, "descriptors");
        Objects.requireNonNull(handler, "handler");
        if (timeoutMs <= 0) {
            throw new IllegalArgumentException("timeoutMs must be > 0, got " + timeoutMs);
        }
    }

    /** True when the list has 1..{@code maxDescriptors} entries. */
    public static boolean countWithin(DescriptorList descriptors, int maxDescriptors) {
        int count = descriptors.size();
        return count > 0 && count <= maxDescriptors;
    }

    /**
     * True when descriptor {@code i}'s remote side names {@code peerId} and its bytes (at least one) lie inside that
     * remote region; the local side is the transport's own to check (its region type).
     */
    public static boolean remoteSideValid(DescriptorList descriptors, int i, String peerId) {
        RemoteRegion remote = descriptors.remoteRegion(i);
        long length = descriptors.lengthBytes(i);
        return remote.nodeId().equals(peerId) && length > 0 && remote.contains(descriptors.remoteOffset(i), length);
    }
}
