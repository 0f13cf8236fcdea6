/**
 * The same-host command channel: a worker's Save, Load and Query through request slots in a shared-memory file the
 * node creates per OpenCommandChannel (docs/engine-api.md, "Command channel"), instead of one RPC each. gRPC stays
 * the API; this is a faster path for callers on the node's host, and every refusal carries the code gRPC would give.
 *
 * <p>Jobs: {@link io.pegaflow.fabric.channel.CommandChannels} (the node's channels: open, limits, close at stop),
 * {@code CommandChannel} (one file and its serving thread), {@code ChannelLayout} (the version-1 layout), {@code
 * FutexWait} (the FFM futex wait), {@code SlotCodes} (statuses as gRPC code numbers).
 *
 * <p>Threading: each channel has one platform daemon thread, {@code pegaflow-channel-<file>}, that creates and maps
 * the file, then sleeps in {@code futex(FUTEX_WAIT)} on the header's doorbell (100 ms at most, to notice a stop, its
 * client's close or its context's end), takes the slots in state REQUEST and calls {@link
 * io.pegaflow.fabric.engine.KvEngine}, which returns at once. Replies are written by whichever engine thread completes
 * the call's stage (a copy thread, or the channel's own for what completes at once), then the slot's state word is
 * futex-woken. No gRPC handler or actor waits here: OpenCommandChannel returns a stage the channel's thread completes.
 */
package io.pegaflow.fabric.channel;
