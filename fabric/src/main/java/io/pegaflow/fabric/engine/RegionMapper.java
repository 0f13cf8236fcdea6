package io.pegaflow.fabric.engine;

import io.pegaflow.gpu.CopyEngine;
import io.pegaflow.gpu.MappedRegion;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Maps the memory of a checked registration: each shared-memory file or CUDA allocation once, however many layers it
 * holds (layers sharing one share one mapping, so their copies go into one batch), then checks that every layer's
 * blocks lie inside it. Blocking (realpath, open, mmap, cuIpcOpenMemHandle): runs on a mapping thread only.
 * Stateless apart from its collaborators.
 */
final class RegionMapper {
    private final Path sharedMemoryDir;
    private final SharedMemoryMapper files;
    private final CopyEngine copyEngine;

    RegionMapper(Path sharedMemoryDir, SharedMemoryMapper files, CopyEngine copyEngine) {
        this.sharedMemoryDir = sharedMemoryDir;
        this.files = files;
        this.copyEngine = copyEngine;
    }

    /** The layers of a registration and the regions they live in, owned by the caller from here on. */
    record Mapped(LayerMapping[] layers, List<MappedRegion> regions) {
        void close() {
            regions.forEach(MappedRegion::close);
        }
    }

    /**
     * @param r a registration that passed {@link RegistrationChecks}
     * @return the layers sorted by global index; on a refusal nothing stays mapped
     */
    Mapped map(ContextRegistration r) {
        List<MappedRegion> mapped = new ArrayList<>();
        try {
            Map<String, Integer> regionByKey = new LinkedHashMap<>();
            int total = 0;
            for (LayerSpec layer : r.layers()) {
                total += layer.layers();
            }
            LayerMapping[] layers = new LayerMapping[total];
            for (int i = 0, next = 0; i < r.layers().size(); i++) {
                LayerSpec layer = r.layers().get(i);
                String atField = "layers[" + i + "]";
                String key = regionKey(layer.region());
                Integer regionIndex = regionByKey.get(key);
                if (regionIndex == null) {
                    mapped.add(open(atField, r.device(), layer.region()));
                    regionIndex = mapped.size() - 1;
                    regionByKey.put(key, regionIndex);
                }
                next = placeGroup(atField, layer, regionIndex, mapped.get(regionIndex), layers, next);
            }
            Arrays.sort(layers, Comparator.comparingInt(LayerMapping::layerIndex));
            return new Mapped(layers, mapped);
        } catch (RuntimeException e) {
            mapped.forEach(MappedRegion::close);
            throw e;
        }
    }

    private static String regionKey(RegionSpec region) {
        return switch (region) {
            case RegionSpec.CudaIpc ipc -> "cuda-ipc:" + HexFormat.of().formatHex(ipc.ipcHandle());
            case RegionSpec.SharedMemory shm -> shm.path();
        };
    }

    private MappedRegion open(String at, String device, RegionSpec region) {
        switch (region) {
            case RegionSpec.CudaIpc ipc -> {
                try {
                    // On the GPU the registration names (checked by CudaIpcPolicy): a node may serve several.
                    return copyEngine.openCudaIpc(device, ipc.ipcHandle(), ipc.allocationSizeBytes());
                } catch (IllegalArgumentException e) {
                    throw EngineException.invalid(at + ".region.cuda_ipc." + e.getMessage());
                } catch (RuntimeException e) {
                    throw EngineException.precondition(
                            at + ".region.cuda_ipc: cannot open the handle: " + e.getMessage());
                }
            }
            case RegionSpec.SharedMemory shm -> {
                try {
                    return files.map(sharedMemoryDir, Path.of(shm.path()));
                } catch (IOException | RuntimeException e) {
                    throw EngineException.invalid(
                            at + ".region.shm.path: cannot map " + Limits.echo(shm.path()) + ": " + e.getMessage());
                }
            }
        }
    }

    /**
     * Places each layer of {@code spec} (a group stands for {@code layerCount} layers, {@code layerStrideBytes} apart)
     * into {@code into} from {@code next} on.
     *
     * @return the next free index of {@code into}
     */
    private static int placeGroup(
            String at, LayerSpec spec, int regionIndex, MappedRegion file, LayerMapping[] into, int next) {
        long base = spec.region().offsetBytes();
        for (int k = 0; k < spec.layers(); k++) {
            long layerBase;
            try {
                layerBase = Math.addExact(base, Math.multiplyExact((long) k, spec.layerStrideBytes()));
            } catch (ArithmeticException e) {
                layerBase = Long.MAX_VALUE; // reported as past the end
            }
            String where = spec.layers() > 1 ? at + " (layer " + (spec.layerIndex() + k) + ")" : at;
            String name = spec.layers() > 1 ? spec.name() + "[" + k + "]" : spec.name();
            into[next++] =
                    place(where, spec, name, spec.layerIndex() + k, base < 0 ? base : layerBase, regionIndex, file);
        }
        return next;
    }

    /** Checks that every block of {@code layer} lies inside {@code file} and says where they are. */
    private static LayerMapping place(
            String at, LayerSpec layer, String name, int layerIndex, long base, int regionIndex, MappedRegion file) {
        if (base < 0) {
            throw EngineException.invalid(at
                    + (layer.region() instanceof RegionSpec.CudaIpc
                            ? ".region.cuda_ipc.offset_bytes: "
                            : ".region.shm.offset_bytes: ")
                    + Long.toUnsignedString(base)
                    + " is past the end of "
                    + file.description());
        }
        int segments = layer.segments().size();
        long[] offsets = new long[segments];
        long[] lengths = new long[segments];
        long slotBytes = 0;
        for (int s = 0; s < segments; s++) {
            offsets[s] = layer.segments().get(s).offsetBytes();
            lengths[s] = layer.segments().get(s).lengthBytes();
            slotBytes += lengths[s]; // RegistrationChecks proved the sum fits
            long end;
            try {
                long lastBlock = Math.multiplyExact((long) (layer.numBlocks() - 1), layer.blockStrideBytes());
                end = Math.addExact(Math.addExact(Math.addExact(base, lastBlock), offsets[s]), lengths[s]);
            } catch (ArithmeticException e) {
                end = Long.MAX_VALUE;
            }
            if (end > file.sizeBytes()) {
                throw EngineException.invalid(at
                        + ".segments["
                        + s
                        + "]: block "
                        + (layer.numBlocks() - 1)
                        + " ends at byte "
                        + end
                        + ", past the end of "
                        + file.description()
                        + " ("
                        + file.sizeBytes()
                        + " bytes)");
            }
        }
        return new LayerMapping(
                name,
                layerIndex,
                regionIndex,
                file.memory(),
                base,
                layer.numBlocks(),
                layer.blockStrideBytes(),
                offsets,
                lengths,
                slotBytes);
    }
}
