package io.pegaflow.bench.gpu;

import com.google.protobuf.ByteString;
import io.pegaflow.fabric.engine.EngineListener;
import io.pegaflow.fabric.engine.EngineSettings;
import io.pegaflow.fabric.engine.KvEngine;
import io.pegaflow.fabric.engine.LoadBlocks;
import io.pegaflow.fabric.engine.PrefixQuery;
import io.pegaflow.fabric.engine.SaveBlocks;
import io.pegaflow.fabric.grpc.EngineProtoMapper;
import io.pegaflow.gpu.CopyBatch;
import io.pegaflow.gpu.CopyEngine;
import io.pegaflow.gpu.MappedRegion;
import io.pegaflow.gpu.cuda.CudaCopyEngine;
import io.pegaflow.gpu.cuda.CudaCopyMode;
import io.pegaflow.gpu.cuda.CudaCopySettings;
import io.pegaflow.gpu.cuda.CudaDevice;
import io.pegaflow.gpu.cuda.CudaProbe;
import io.pegaflow.gpu.cuda.DeviceBuffer;
import io.pegaflow.gpu.cuda.PinnedHostMemory;
import io.pegaflow.proto.engine.ByteSegment;
import io.pegaflow.proto.engine.CudaIpcRegion;
import io.pegaflow.proto.engine.LayerRegistration;
import io.pegaflow.proto.engine.MemoryRegion;
import io.pegaflow.proto.engine.RegisterContextRequest;
import io.pegaflow.store.BlockStore;
import io.pegaflow.store.memory.HostMemory;
import io.pegaflow.store.pool.BlockPool;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.security.MessageDigest;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.TimeUnit;

/**
 * The node's engine ({@link KvEngine}: block store, pinned pool, CUDA copy engine) on a GPU, in one process and
 * without gRPC: the time of {@code save} and {@code load} for 10K tokens of Llama-3.1-8B KV against the copy
 * engine's own time and one contiguous copy of the same bytes. Worker memory is 32 per-layer device allocations (as
 * vLLM allocates them), handed to the engine through a stand-in for CUDA IPC (a process cannot open its own IPC
 * handles; bench/gpu/kv_ipc_e2e.py does the real thing from another process).
 *
 * <pre>java --enable-native-access=ALL-UNNAMED -cp ... io.pegaflow.bench.gpu.KvEngineGpuBench [--reps 20]</pre>
 */
public final class KvEngineGpuBench {
    static final int LAYERS = 32;
    static final int BLOCKS = 4096;
    static final long SLOT = 65536;
    static final int SAVE = 625;

    /** The real CUDA engine, timing each copy; IPC handles name this process's own device buffers. */
    static final class TimedEngine implements CopyEngine {
        final CudaCopyEngine cuda;
        final Map<String, DeviceBuffer> buffers = new HashMap<>();
        volatile long lastCopyNs;
        volatile long lastGpuNs;
        volatile long lastRowDmas;

        TimedEngine(CudaCopyEngine cuda) {
            this.cuda = cuda;
        }

        @Override
        public String name() {
            return "cuda";
        }

        @Override
        public void copy(MemorySegment[] srcs, MemorySegment[] dsts, CopyBatch batch) {
            long start = System.nanoTime();
            long gpuBefore = cuda.gpuNanos();
            long rowsBefore = cuda.rowDmas();
            cuda.copy(srcs, dsts, batch);
            lastCopyNs = System.nanoTime() - start;
            lastGpuNs = cuda.gpuNanos() - gpuBefore;
            lastRowDmas = cuda.rowDmas() - rowsBefore;
        }

        @Override
        public Optional<String> deviceUuid() {
            return cuda.deviceUuid();
        }

        @Override
        public MappedRegion openCudaIpc(byte[] handle, long allocationSizeBytes) {
            DeviceBuffer buffer = buffers.get(HexFormat.of().formatHex(handle));
            return new MappedRegion() {
                @Override
                public MemorySegment memory() {
                    return buffer.memory();
                }

                @Override
                public String description() {
                    return "device buffer";
                }

                @Override
                public void close() {}
            };
        }
    }

    /** Fills distinct save and load ids (disjoint sets) in the requested order. */
    static void blockIds(String order, int[] saveIds, int[] loadIds) {
        int n = saveIds.length;
        switch (order) {
            case "strided" -> {
                for (int i = 0; i < n; i++) {
                    saveIds[i] = (i * 7) % BLOCKS;
                    loadIds[i] = (i * 7 + 3) % BLOCKS;
                }
            }
            case "sorted" -> {
                for (int i = 0; i < n; i++) {
                    saveIds[i] = i;
                    loadIds[i] = n + i;
                }
            }
            case "random" -> {
                List<Integer> all = new ArrayList<>();
                for (int b = 0; b < BLOCKS; b++) {
                    all.add(b);
                }
                java.util.Collections.shuffle(all, new java.util.Random(42));
                for (int i = 0; i < n; i++) {
                    saveIds[i] = all.get(i);
                    loadIds[i] = all.get(n + i);
                }
            }
            default -> throw new IllegalArgumentException("--ids: " + order + " is not sorted, random or strided");
        }
    }

    public static void main(String[] args) throws Exception {
        int reps = 20;
        // How the worker's block ids are laid out: vLLM hands out free blocks in no particular order, and a patch of
        // the seed sorted them; "sorted" = ascending and adjacent, "random" = a random permutation, "strided" = i*7.
        String idOrder = "strided";
        for (int i = 0; i + 1 < args.length; i += 2) {
            switch (args[i]) {
                case "--reps" -> reps = Integer.parseInt(args[i + 1]);
                case "--ids" -> idOrder = args[i + 1];
                default ->
                    throw new IllegalArgumentException(
                            "unknown option " + args[i] + " (--reps N, --ids sorted|random|strided)");
            }
        }
        if (!CudaProbe.isAvailable()) {
            System.err.println(
                    "CUDA is not usable: " + CudaProbe.unavailabilityCause().orElseThrow());
            System.exit(2);
        }
        long bytes = SAVE * LAYERS * SLOT;
        try (CudaDevice device = CudaDevice.open("0");
                HostMemory poolHost = HostMemory.allocate(4L << 30);
                PinnedHostMemory pinned = device.registerHost(poolHost.memory());
                DeviceBuffer contiguous = device.allocate(bytes);
                HostMemory contiguousMemory = HostMemory.allocate(bytes);
                PinnedHostMemory contiguousHost = device.registerHost(contiguousMemory.memory());
                CudaCopyEngine cuda = CudaCopyEngine.create(device, CudaCopySettings.from(System.getProperties()))) {
            System.out.println("KvEngine on " + device + ": " + cuda.describe());
            TimedEngine engine = new TimedEngine(cuda);
            List<DeviceBuffer> layers = new ArrayList<>();
            RegisterContextRequest.Builder request = RegisterContextRequest.newBuilder()
                    .setInstanceId("bench")
                    .setNamespace("llama")
                    .setTpSize(1)
                    .setTotalLayers(LAYERS)
                    .setDevice(device.uuid());
            for (int l = 0; l < LAYERS; l++) {
                DeviceBuffer layer = device.allocate(BLOCKS * SLOT);
                layer.fill((byte) l);
                layers.add(layer);
                byte[] handle = new byte[64];
                handle[0] = (byte) l;
                engine.buffers.put(HexFormat.of().formatHex(handle), layer);
                request.addLayers(LayerRegistration.newBuilder()
                        .setName("model.layers." + l)
                        .setLayerIndex(l)
                        .setRegion(MemoryRegion.newBuilder()
                                .setCudaIpc(CudaIpcRegion.newBuilder()
                                        .setIpcHandle(ByteString.copyFrom(handle))
                                        .setAllocationSizeBytes(BLOCKS * SLOT)))
                        .setNumBlocks(BLOCKS)
                        .setBlockStrideBytes(SLOT)
                        .addSegments(ByteSegment.newBuilder().setLengthBytes(SLOT)));
            }
            long[] listenerNs = new long[2];
            EngineListener listener = new EngineListener() {
                @Override
                public void saved(long b, long durationNs, int blocksStored) {
                    listenerNs[0] = durationNs;
                }

                @Override
                public void loaded(long b, long durationNs, int blocksLoaded, int blocksFailed) {
                    listenerNs[1] = durationNs;
                }

                @Override
                public void contextsChanged(int registered) {}

                @Override
                public void rejected(String op, String reason) {}
            };
            BlockPool pool = BlockPool.wrap(pinned.memory(), BlockPool.defaultSlabBytes(pinned.sizeBytes()));
            BlockStore store = new BlockStore(pool, 30_000_000_000L, System::nanoTime);
            KvEngine kv = KvEngine.builder(store, engine)
                    .settings(EngineSettings.defaults().withCopy(4, 1024))
                    .listener(listener)
                    .build();
            String ctx = kv.register(EngineProtoMapper.registration(request.build()))
                    .toCompletableFuture()
                    .get(30, TimeUnit.SECONDS)
                    .contextId();
            int[] saveIds = new int[SAVE];
            int[] loadIds = new int[SAVE];
            blockIds(idOrder, saveIds, loadIds);
            System.out.println("block ids: " + idOrder);
            byte[][] hashes = hashes("fixed", SAVE);
            kv.save(new SaveBlocks(ctx, saveIds, hashes, new int[0]))
                    .toCompletableFuture()
                    .get(30, TimeUnit.SECONDS);
            kv.query(new PrefixQuery("llama", hashes, 600_000)); // leased: the saves below cannot evict them

            CopyBatch one = new CopyBatch(1);
            one.add(0, 0, bytes);
            MemorySegment poolSlice = contiguousHost.memory().asSlice(0, bytes);
            double contiguousSave =
                    median(reps, () -> cuda.copy(contiguous.memory(), poolSlice, one, CudaCopyMode.MEMCPY));
            double contiguousLoad =
                    median(reps, () -> cuda.copy(poolSlice, contiguous.memory(), one, CudaCopyMode.MEMCPY));
            double contiguousSaveGpu =
                    medianGpu(reps, cuda, () -> cuda.copy(contiguous.memory(), poolSlice, one, CudaCopyMode.MEMCPY));
            double contiguousLoadGpu =
                    medianGpu(reps, cuda, () -> cuda.copy(poolSlice, contiguous.memory(), one, CudaCopyMode.MEMCPY));

            Path flagPath = Files.createTempFile(Path.of("/dev/shm"), "pegaflow-bench-flag", "");
            Files.write(flagPath, new byte[64]);
            try (Arena arena = Arena.ofShared();
                    FileChannel ch = FileChannel.open(flagPath, StandardOpenOption.READ, StandardOpenOption.WRITE)) {
                MemorySegment flag = ch.map(FileChannel.MapMode.READ_WRITE, 0, 64, arena);
                double[][] save = new double[4][reps];
                double[][] load = new double[4][reps];
                for (int r = -5; r < reps; r++) {
                    byte[][] fresh = hashes("rep" + r, SAVE);
                    long start = System.nanoTime();
                    kv.save(new SaveBlocks(ctx, saveIds, fresh, new int[0]))
                            .toCompletableFuture()
                            .get(30, TimeUnit.SECONDS);
                    long total = System.nanoTime() - start;
                    if (r >= 0) {
                        save[0][r] = total / 1e9;
                        save[1][r] = listenerNs[0] / 1e9;
                        save[2][r] = engine.lastCopyNs / 1e9;
                        save[3][r] = engine.lastGpuNs / 1e9;
                    }
                }
                long[] saveRows = {engine.lastRowDmas};
                for (int r = -5; r < reps; r++) {
                    flag.fill((byte) 0);
                    long start = System.nanoTime();
                    kv.load(new LoadBlocks(ctx, loadIds, hashes, 0, flagPath.toString(), 0));
                    while (flag.get(ValueLayout.JAVA_LONG, 0) == 0) {
                        Thread.onSpinWait();
                    }
                    long total = System.nanoTime() - start;
                    if (r >= 0) {
                        load[0][r] = total / 1e9;
                        load[1][r] = flag.get(ValueLayout.JAVA_LONG, 24) / 1e9;
                        load[2][r] = engine.lastCopyNs / 1e9;
                        load[3][r] = engine.lastGpuNs / 1e9;
                    }
                }
                System.out.printf(
                        "| KvEngine, %d blocks x %d layers (%.3f GiB), 32 allocations, median of %d | save ms | save %% | load ms | load %% |%n",
                        SAVE, LAYERS, bytes / (double) (1L << 30), reps);
                System.out.println("|---|---|---|---|---|");
                row(
                        "contiguous (one cuMemcpyAsync, same bytes)",
                        contiguousSave,
                        contiguousSave,
                        contiguousLoad,
                        contiguousLoad);
                row(
                        "save()/load() call to bytes landed (flag for load)",
                        med(save[0]),
                        contiguousSave,
                        med(load[0]),
                        contiguousLoad);
                row(
                        "engine's own duration (metrics; load flag)",
                        med(save[1]),
                        contiguousSave,
                        med(load[1]),
                        contiguousLoad);
                row("copy engine call alone", med(save[2]), contiguousSave, med(load[2]), contiguousLoad);
                System.out.printf(
                        "2D DMAs per copy (last save / last load): %d / %d%n", saveRows[0], engine.lastRowDmas);
                if (med(save[3]) > 0) {
                    // the GPU's share of the call: the rest is hand-off, planning, submission and wake-up
                    row(
                            "contiguous, GPU time (CUDA events)",
                            contiguousSaveGpu,
                            contiguousSave,
                            contiguousLoadGpu,
                            contiguousLoad);
                    row(
                            "copy engine GPU time (CUDA events, first operation to last), against contiguous GPU time",
                            med(save[3]),
                            contiguousSaveGpu,
                            med(load[3]),
                            contiguousLoadGpu);
                }
            } finally {
                Files.deleteIfExists(flagPath);
            }
            kv.close();
            layers.forEach(DeviceBuffer::close);
        }
    }

    private static void row(String name, double save, double saveRef, double load, double loadRef) {
        System.out.printf(
                "| %s | %.2f | %.1f%% | %.2f | %.1f%% |%n",
                name, save * 1e3, 100 * saveRef / save, load * 1e3, 100 * loadRef / load);
    }

    private static double median(int reps, Runnable r) {
        r.run();
        r.run();
        double[] t = new double[reps];
        for (int i = 0; i < reps; i++) {
            long start = System.nanoTime();
            r.run();
            t[i] = (System.nanoTime() - start) / 1e9;
        }
        return med(t);
    }

    /** The median GPU time (the engine's CUDA-event total, before and after) of {@code reps} calls. */
    private static double medianGpu(int reps, CudaCopyEngine cuda, Runnable r) {
        double[] t = new double[reps];
        for (int i = 0; i < reps; i++) {
            long before = cuda.gpuNanos();
            r.run();
            t[i] = (cuda.gpuNanos() - before) / 1e9;
        }
        return med(t);
    }

    private static double med(double[] t) {
        double[] c = t.clone();
        Arrays.sort(c);
        return c[c.length / 2];
    }

    private static byte[][] hashes(String prefix, int n) throws Exception {
        MessageDigest sha = MessageDigest.getInstance("SHA-256");
        byte[][] h = new byte[n][];
        for (int i = 0; i < n; i++) {
            h[i] = sha.digest((prefix + "/" + i).getBytes());
        }
        return h;
    }
}
