package io.pegaflow.gpu;

import java.lang.foreign.MemorySegment;

/** The copy engine without a GPU: {@code memcpy} between mapped host memory segments. */
public final class HostCopyEngine implements CopyEngine {
    @Override
    public String name() {
        return "host";
    }

    @Override
    public void copy(MemorySegment[] srcs, MemorySegment[] dsts, CopyBatch batch) {
        // Check every run first so a bad batch copies nothing.
        CopyEngine.checkRuns(srcs, dsts, batch);
        for (int i = 0; i < batch.runCount(); i++) {
            MemorySegment.copy(
                    srcs[batch.srcPart(i)],
                    batch.srcOffset(i),
                    dsts[batch.dstPart(i)],
                    batch.dstOffset(i),
                    batch.length(i));
        }
    }
}
