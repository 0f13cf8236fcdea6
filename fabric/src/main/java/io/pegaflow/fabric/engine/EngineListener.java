package io.pegaflow.fabric.engine;

/** What the engine reports as it works (metrics); called on copy threads, must not block. */
public interface EngineListener {
    void saved(long bytes, long durationNs, int blocksStored);

    void loaded(long bytes, long durationNs, int blocksLoaded, int blocksFailed);

    void contextsChanged(int registered);

    EngineListener NONE = new EngineListener() {
        @Override
        public void saved(long bytes, long durationNs, int blocksStored) {}

        @Override
        public void loaded(long bytes, long durationNs, int blocksLoaded, int blocksFailed) {}

        @Override
        public void contextsChanged(int registered) {}
    };
}
