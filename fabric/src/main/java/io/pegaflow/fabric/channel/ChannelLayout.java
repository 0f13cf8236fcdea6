package io.pegaflow.fabric.channel;

import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;

/**
 * Version 1 of the command channel's shared-memory layout (docs/engine-api.md draws it; python/pegaflow/channel.py
 * mirrors it): a header of {@link #HEADER_BYTES}, then {@link #slotCount} slots of {@link #slotBytes}, all integers
 * little-endian. Offsets are constants; only the slot count and the block and layer capacities vary, and the header
 * says them. Immutable.
 */
final class ChannelLayout {
    static final int VERSION = 1;
    /** "PGFCHAN1" read as a little-endian long. */
    static final long MAGIC = 0x314E414843464750L;

    static final ValueLayout.OfInt U32 = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    static final ValueLayout.OfLong U64 = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    // ---- header ----
    static final long HEADER_BYTES = 4096;
    static final long H_MAGIC = 0;
    static final long H_VERSION = 8;
    static final long H_SLOT_COUNT = 12;
    static final long H_SLOT_BYTES = 16;
    static final long H_MAX_BLOCKS = 20;
    static final long H_MAX_HASH_BYTES = 24;
    static final long H_MAX_LAYERS = 28;
    static final long H_MAX_NAME_BYTES = 32;
    /** 1 while the node serves the channel, 2 once it stopped taking requests. */
    static final long H_NODE_STATE = 36;
    /** Bumped by the client after it posts a request, then futex-woken; the node's thread waits on it. */
    static final long H_DOORBELL = 40;
    /** Set to 1 by the client when it is done with the channel. */
    static final long H_CLIENT_STATE = 44;

    static final long H_NODE_PID = 48;
    /** Advanced by the node's thread at least every {@link CommandChannel#IDLE_WAIT_MS}: a stale one means no node. */
    static final long H_NODE_HEARTBEAT = 56;

    static final long H_HEADER_BYTES = 64;

    static final int NODE_OPEN = 1;
    static final int NODE_CLOSED = 2;

    // ---- slot ----
    /** The slot's state word (futex-woken by the node when it becomes DONE). */
    static final long S_STATE = 0;

    static final long S_OP = 4;
    static final long S_SEQ = 8;
    static final long S_BLOCK_COUNT = 16;
    static final long S_HASH_BYTES = 20;
    static final long S_LAYER_COUNT = 24;
    static final long S_FLAGS = 28;
    /** Load: the lease to consume; Query: the lease ttl in ms. */
    static final long S_LEASE = 32;

    static final long S_NAME_LEN = 40;
    static final long S_FLAG_PATH_LEN = 44;
    static final long S_FLAG_OFFSET = 48;
    // reply
    static final long S_STATUS = 56;
    static final long S_MESSAGE_LEN = 60;
    static final long S_R0 = 64;
    static final long S_R1 = 68;
    static final long S_R2 = 72;
    static final long S_R3 = 76;
    static final long S_R4 = 80;
    static final long S_R5 = 88;
    static final long S_FAILED_COUNT = 96;
    static final long S_REPLY_SEQ = 104;
    static final long S_NAME = 128;

    static final int FREE = 0;
    static final int REQUEST = 1;
    static final int TAKEN = 2;
    static final int DONE = 3;

    static final int OP_SAVE = 1;
    static final int OP_LOAD = 2;
    static final int OP_QUERY = 3;

    static final int FLAG_REPLY_WHEN_DONE = 1;

    static final int MAX_HASH_BYTES = 64;
    /** A context id (Save, Load) or a namespace (Query). */
    static final int MAX_NAME_BYTES = 512;

    static final int FLAG_PATH_BYTES = 4096;
    static final int MESSAGE_BYTES = 1024;

    final int slotCount;
    final int maxBlocks;
    final int maxLayers;
    final long flagPathAt = S_NAME + MAX_NAME_BYTES;
    final long messageAt = flagPathAt + FLAG_PATH_BYTES;
    final long idsAt = messageAt + MESSAGE_BYTES;
    final long layersAt;
    final long hashesAt;
    final long slotBytes;

    ChannelLayout(int slotCount, int maxBlocks, int maxLayers) {
        this.slotCount = slotCount;
        this.maxBlocks = maxBlocks;
        this.maxLayers = maxLayers;
        this.layersAt = idsAt + 4L * maxBlocks;
        this.hashesAt = layersAt + 4L * maxLayers;
        long end = hashesAt + (long) MAX_HASH_BYTES * maxBlocks;
        this.slotBytes = (end + 4095) & ~4095L;
    }

    long slotAt(int slot) {
        return HEADER_BYTES + slot * slotBytes;
    }

    long fileBytes() {
        return HEADER_BYTES + slotCount * slotBytes;
    }
}
