package io.pegaflow.fabric.engine;

/** What the engine reports as it works (metrics); called on engine and handler threads, must not block. */
public interface EngineListener {
    void saved(long bytes, long durationNs, int blocksStored);

    void loaded(long bytes, long durationNs, int blocksLoaded, int blocksFailed);

    void contextsChanged(int registered);

    /** One phase of one Save or Load took {@code durationNs}; called once per phase per call, never per block. */
    default void phase(CallPhase phase, long durationNs) {}

    /**
     * Work an executor refused or put off.
     *
     * @param op register, save, load, unmap
     * @param reason {@code queue_full} (refused: RESOURCE_EXHAUSTED), {@code stopping} (refused: UNAVAILABLE) or
     *     {@code deferred} (an unmapping that waits on the sweeper's retry list)
     */
    void rejected(String op, String reason);

    EngineListener NONE = new EngineListener() {
        @Override
        public void saved(long bytes, long durationNs, int blocksStored) {}

        @Override
        public void loaded(long bytes, long durationNs, int blocksLoaded, int blocksFailed) {}

        @Override
        public void contextsChanged(int registered) {}

        @Override
        public void rejected(String op, String reason) {}
    };
}
