package io.pegaflow.fabric.engine;

import io.pegaflow.gpu.CopyEngine;

/**
 * Which CUDA IPC regions this node takes: only on a node whose copy engines serve the worker's GPU (one of them), with a
 * well-formed handle. Refusals are FAILED_PRECONDITION (wrong node or GPU), a malformed region INVALID_ARGUMENT.
 * Checks only; opening is {@link RegionMapper}'s, on a mapping thread. Stateless.
 */
final class CudaIpcPolicy {
    static final int HANDLE_BYTES = 64;

    private CudaIpcPolicy() {}

    /**
     * @param at the layer's field path, e.g. {@code layers[2]}
     * @param device the registration's device
     */
    static void check(String at, String device, RegionSpec.CudaIpc ipc, CopyEngine copyEngine) {
        if (copyEngine.deviceUuid().isEmpty()) {
            throw EngineException.precondition(
                    at + ".region: CUDA IPC regions need a node running the CUDA copy engine (--device); this node runs"
                            + " the " + copyEngine.name() + " copy engine and maps shared-memory files only");
        }
        java.util.List<String> served = copyEngine.deviceUuids();
        if (served.stream().noneMatch(u -> sameGpu(device, u))) {
            throw EngineException.precondition("device: " + Limits.echo(device) + " is not a GPU this node serves ("
                    + String.join(", ", served) + "); start the node with that GPU in --devices (or the topology's"
                    + " gpus)");
        }
        if (ipc.ipcHandle().length != HANDLE_BYTES) {
            throw EngineException.invalid(at + ".region.cuda_ipc.ipc_handle: " + ipc.ipcHandle().length
                    + " bytes; a cudaIpcMemHandle_t has " + HANDLE_BYTES);
        }
        if (ipc.allocationSizeBytes() < 1) {
            throw EngineException.invalid(at + ".region.cuda_ipc.allocation_size_bytes: must be positive");
        }
    }

    /** Whether two GPU UUIDs name the same GPU, ignoring case, dashes and a "GPU-" prefix. */
    static boolean sameGpu(String a, String b) {
        return canonicalGpu(a).equals(canonicalGpu(b));
    }

    private static String canonicalGpu(String uuid) {
        return DevicePools.canonicalGpu(uuid);
    }
}
