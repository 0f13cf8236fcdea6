package io.pegaflow.gpu;

import java.lang.foreign.MemorySegment;

/**
 * A worker's memory mapped into this process for copies: a shared-memory file ({@link SharedMemoryFile}) or a CUDA
 * IPC allocation opened by the CUDA copy engine. For a CUDA region {@link #memory()} spans device addresses: only a
 * copy engine may use it, the CPU must never dereference it.
 */
public interface MappedRegion extends AutoCloseable {
    /** The whole region; offsets in registrations are relative to its start. */
    MemorySegment memory();

    default long sizeBytes() {
        return memory().byteSize();
    }

    /** What this is, for logs and errors: a path, or "cuda-ipc 0x7f... (n bytes)". */
    String description();

    /**
     * Why the region can no longer be copied from or to (for a file: it shrank after it was mapped), or null when it
     * can. Called before every copy batch: cheap, and allocates nothing while the region is intact.
     */
    default String damage() {
        return null;
    }

    /** Unmaps (or drops this holder's reference); call only after every copy that uses it has finished. */
    @Override
    void close();
}
