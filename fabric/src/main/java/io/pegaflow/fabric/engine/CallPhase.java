package io.pegaflow.fabric.engine;

/**
 * The parts of one Save or Load as the engine times them ({@link EngineListener#phase}), so that a client-visible
 * time can be split into the node's steps: what is left over is the client, the wire and the gRPC server.
 */
public enum CallPhase {
    /** Save: the handler's hand-off to a copy thread until that thread starts it. */
    SAVE_QUEUE("save", "queue"),
    /** Save: the store's reservation of pool space (sealed blocks skipped; may evict); a save of sealed blocks only: the store's check. */
    SAVE_RESERVE("save", "reserve"),
    /** Save: worker memory to pool (only when there is something to copy). */
    SAVE_COPY("save", "copy"),
    /** Save: sealing the copied blocks in the store (only when there was a copy). */
    SAVE_SEAL("save", "seal"),
    /** Save: the copy thread's end until the reply is handed to gRPC (waits for others' copies of the same slots). */
    SAVE_REPLY("save", "reply"),
    /** Load: the handler's start until the blocks are pinned (flag file, local pins, blocks fetched from peers). */
    LOAD_PIN("load", "pin"),
    /** Load: the hand-off to a copy thread until that thread starts it. */
    LOAD_QUEUE("load", "queue"),
    /** Load: pool to worker memory. */
    LOAD_COPY("load", "copy"),
    /** Load: unpinning and writing the flag's final state. */
    LOAD_COMMIT("load", "commit"),
    /** Load with reply_when_done: the commit's end until the reply is handed to gRPC. */
    LOAD_REPLY("load", "reply");

    private final String op;
    private final String phase;

    CallPhase(String op, String phase) {
        this.op = op;
        this.phase = phase;
    }

    /** {@code save} or {@code load}. */
    public String op() {
        return op;
    }

    /** The phase's tag value. */
    public String phase() {
        return phase;
    }
}
