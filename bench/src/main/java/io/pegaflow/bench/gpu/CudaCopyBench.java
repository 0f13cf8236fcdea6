package io.pegaflow.bench.gpu;

import io.pegaflow.gpu.CopyBatch;
import io.pegaflow.gpu.cuda.CudaCopyEngine;
import io.pegaflow.gpu.cuda.CudaCopyMode;
import io.pegaflow.gpu.cuda.CudaCopySettings;
import io.pegaflow.gpu.cuda.CudaDevice;
import io.pegaflow.gpu.cuda.CudaProbe;
import io.pegaflow.gpu.cuda.DeviceBuffer;
import io.pegaflow.gpu.cuda.PinnedHostMemory;
import io.pegaflow.store.memory.HostMemory;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;

/**
 * The CUDA copy engine's modes on a Llama-3.1-8B-shaped paged KV cache, against one contiguous copy of the same
 * bytes measured in the same run, plus the start time of a large pinned pool.
 *
 * <pre>
 * java --enable-native-access=ALL-UNNAMED -cp pegaflow-gpu.jar:pegaflow-bench.jar io.pegaflow.bench.gpu.CudaCopyBench \
 *     [--layers 32] [--blocks 4096] [--slot-bytes 65536] [--save-blocks 625] [--reps 15] [--pool-gib 16] [--out FILE]
 * </pre>
 *
 * The KV cache is one device allocation, layer-major ({@code [layer][block][slot]}); a save gathers {@code
 * save-blocks} random blocks of every layer into the pinned pool, each block's layers contiguous (what the block store
 * does), a load scatters them into other random blocks. Times are wall-clock around {@link CudaCopyEngine#copy}
 * (which returns after a completion event), median of {@code reps} after two warm-ups.
 */
public final class CudaCopyBench {
    private final int layers;
    private final int blocks;
    private final long slot;
    private final int saveBlocks;
    private final int reps;
    private final List<String> lines = new ArrayList<>();

    private CudaCopyBench(int layers, int blocks, long slot, int saveBlocks, int reps) {
        this.layers = layers;
        this.blocks = blocks;
        this.slot = slot;
        this.saveBlocks = saveBlocks;
        this.reps = reps;
    }

    public static void main(String[] args) throws IOException {
        int layers = 32;
        int blocks = 4096;
        long slot = 65536;
        int saveBlocks = 625;
        int reps = 15;
        int poolGib = 16;
        Path out = null;
        for (int i = 0; i < args.length; i += 2) {
            String v = args[i + 1];
            switch (args[i]) {
                case "--layers" -> layers = Integer.parseInt(v);
                case "--blocks" -> blocks = Integer.parseInt(v);
                case "--slot-bytes" -> slot = Long.parseLong(v);
                case "--save-blocks" -> saveBlocks = Integer.parseInt(v);
                case "--reps" -> reps = Integer.parseInt(v);
                case "--pool-gib" -> poolGib = Integer.parseInt(v);
                case "--out" -> out = Path.of(v);
                default -> throw new IllegalArgumentException("unknown option " + args[i]);
            }
        }
        if (!CudaProbe.isAvailable()) {
            System.err.println(
                    "CUDA is not usable: " + CudaProbe.unavailabilityCause().orElseThrow());
            System.exit(2);
        }
        CudaCopyBench bench = new CudaCopyBench(layers, blocks, slot, saveBlocks, reps);
        try (CudaDevice device = CudaDevice.open("0")) {
            bench.say("GPU: "
                    + device.name()
                    + " ("
                    + device.uuid()
                    + ", "
                    + device.multiprocessorCount()
                    + " SMs), driver CUDA "
                    + CudaProbe.versionText(CudaProbe.driverVersion()));
            if (poolGib > 0) {
                bench.poolStart(device, (long) poolGib << 30);
            }
            bench.copies(device);
        }
        if (out != null) {
            Files.write(out, bench.lines);
        }
    }

    private void say(String line) {
        System.out.println(line);
        lines.add(line);
    }

    private void poolStart(CudaDevice device, long bytes) {
        for (int attempt = 0; attempt < 2; attempt++) {
            long start = System.nanoTime();
            try (HostMemory host = HostMemory.allocate(bytes);
                    PinnedHostMemory pool = device.registerHost(host.memory())) {
                double s = (System.nanoTime() - start) / 1e9;
                say(String.format(
                        "pool start: %d GiB pinned (mmap + parallel populate + cuMemHostRegister) in %.2f s: %s, %s",
                        bytes >> 30, s, host.report(), pool.report()));
                long closeStart = System.nanoTime();
                pool.close();
                host.close();
                say(String.format("pool close: %.2f s", (System.nanoTime() - closeStart) / 1e9));
            }
        }
    }

    private void copies(CudaDevice device) {
        long bytes = (long) saveBlocks * layers * slot;
        long kvBytes = (long) layers * blocks * slot;
        say(String.format(
                "KV: %d layers x %d blocks x %d KiB = %.2f GiB on the GPU; moved per copy: %d blocks = %d runs of %d KiB = %.3f GiB",
                layers,
                blocks,
                slot >> 10,
                kvBytes / (double) (1L << 30),
                saveBlocks,
                saveBlocks * layers,
                slot >> 10,
                bytes / (double) (1L << 30)));
        Random random = new Random(7);
        int[] perm = new int[blocks];
        for (int i = 0; i < blocks; i++) {
            perm[i] = i;
        }
        for (int i = blocks - 1; i > 0; i--) {
            int j = random.nextInt(i + 1);
            int t = perm[i];
            perm[i] = perm[j];
            perm[j] = t;
        }
        int[] saveIds = Arrays.copyOfRange(perm, 0, saveBlocks);
        int[] loadIds = Arrays.copyOfRange(perm, saveBlocks, 2 * saveBlocks);
        CopyBatch save = new CopyBatch(saveBlocks * layers);
        CopyBatch load = new CopyBatch(saveBlocks * layers);
        for (int b = 0; b < saveBlocks; b++) {
            for (int l = 0; l < layers; l++) {
                long pool = ((long) b * layers + l) * slot;
                save.add(((long) l * blocks + saveIds[b]) * slot, pool, slot);
                load.add(pool, ((long) l * blocks + loadIds[b]) * slot, slot);
            }
        }
        try (DeviceBuffer kv = device.allocate(kvBytes);
                DeviceBuffer contiguous = device.allocate(bytes);
                HostMemory host = HostMemory.allocate(bytes);
                PinnedHostMemory pinned = device.registerHost(host.memory())) {
            fillRandom(device, kv);
            MemorySegment pool = pinned.memory().asSlice(0, bytes);
            CopyBatch one = new CopyBatch(1);
            one.add(0, 0, bytes);

            CudaCopySettings base = CudaCopySettings.defaults();
            say("defaults: gather " + base.gatherMode().label() + ", scatter "
                    + base.scatterMode().label());
            say("| variant | save GB/s | save % | load GB/s | load % | save ms | load ms |");
            say("|---|---|---|---|---|---|---|");
            double[] contiguousRef;
            try (CudaCopyEngine engine =
                    CudaCopyEngine.create(device, base.withModes(CudaCopyMode.MEMCPY, CudaCopyMode.MEMCPY))) {
                contiguousRef = new double[] {
                    time(() -> engine.copy(contiguous.memory(), pool, one, CudaCopyMode.MEMCPY)),
                    time(() -> engine.copy(pool, contiguous.memory(), one, CudaCopyMode.MEMCPY))
                };
                row("contiguous (one cuMemcpyAsync)", bytes, contiguousRef, contiguousRef);
            }
            List<Object[]> variants = new ArrayList<>();
            variants.add(new Object[] {"kernel 32x256", base.withGrid(32, 256), CudaCopyMode.KERNEL});
            variants.add(new Object[] {"kernel 132x512", base.withGrid(132, 512), CudaCopyMode.KERNEL});
            variants.add(new Object[] {
                "staged 4x8MiB 64x512", base.withStaging(8L << 20, 4).withGrid(64, 512), CudaCopyMode.STAGED
            });
            variants.add(new Object[] {
                "staged 4x8MiB 32x256", base.withStaging(8L << 20, 4).withGrid(32, 256), CudaCopyMode.STAGED
            });
            variants.add(new Object[] {
                "staged 4x16MiB 64x512", base.withStaging(16L << 20, 4).withGrid(64, 512), CudaCopyMode.STAGED
            });
            variants.add(new Object[] {
                "staged 4x16MiB 32x256", base.withStaging(16L << 20, 4).withGrid(32, 256), CudaCopyMode.STAGED
            });
            variants.add(new Object[] {
                "staged 3x32MiB 32x256", base.withStaging(32L << 20, 3).withGrid(32, 256), CudaCopyMode.STAGED
            });
            variants.add(new Object[] {
                "staged 2x32MiB 32x256", base.withStaging(32L << 20, 2).withGrid(32, 256), CudaCopyMode.STAGED
            });
            variants.add(new Object[] {
                "staged 4x16MiB 16x256", base.withStaging(16L << 20, 4).withGrid(16, 256), CudaCopyMode.STAGED
            });
            variants.add(new Object[] {"memcpy per run", base, CudaCopyMode.MEMCPY});
            variants.add(new Object[] {"cuMemcpyBatchAsync", base, CudaCopyMode.BATCH});
            for (Object[] v : variants) {
                CudaCopyMode mode = (CudaCopyMode) v[2];
                CudaCopySettings settings = ((CudaCopySettings) v[1]).withModes(mode, mode);
                try (CudaCopyEngine engine = CudaCopyEngine.create(device, settings)) {
                    String check = verify(device, engine, kv, pool, save, load, saveIds, loadIds, mode);
                    double[] t = {
                        time(() -> engine.copy(kv.memory(), pool, save, mode)),
                        time(() -> engine.copy(pool, kv.memory(), load, mode))
                    };
                    row(v[0] + check, bytes, t, contiguousRef);
                }
            }
            try (CudaCopyEngine engine = CudaCopyEngine.create(device, base)) {
                double[] again = {
                    time(() -> engine.copy(contiguous.memory(), pool, one, CudaCopyMode.MEMCPY)),
                    time(() -> engine.copy(pool, contiguous.memory(), one, CudaCopyMode.MEMCPY))
                };
                row("contiguous again (drift check)", bytes, again, contiguousRef);
                double[] t = {
                    time(() -> engine.copy(kv.memory(), pool, save)), time(() -> engine.copy(pool, kv.memory(), load))
                };
                row("defaults, one KV allocation", bytes, t, again);
                // vLLM allocates each layer separately: the same copy as one batch over 32 segments (parts).
                MemorySegment[] layerSegments = new MemorySegment[layers];
                for (int l = 0; l < layers; l++) {
                    layerSegments[l] = kv.memory().asSlice((long) l * blocks * slot, (long) blocks * slot);
                }
                CopyBatch saveParts = new CopyBatch(saveBlocks * layers);
                CopyBatch loadParts = new CopyBatch(saveBlocks * layers);
                for (int b = 0; b < saveBlocks; b++) {
                    for (int l = 0; l < layers; l++) {
                        long poolOffset = ((long) b * layers + l) * slot;
                        saveParts.add(l, 0, (long) saveIds[b] * slot, poolOffset, slot);
                        loadParts.add(0, l, poolOffset, (long) loadIds[b] * slot, slot);
                    }
                }
                MemorySegment[] poolParts = {pool};
                double[] parts = {
                    time(() -> engine.copy(layerSegments, poolParts, saveParts)),
                    time(() -> engine.copy(poolParts, layerSegments, loadParts))
                };
                row("defaults, " + layers + " layer segments in one batch", bytes, parts, again);
                say("defaults: " + engine.describe());
                // A/B: contiguous and paged alternately, so drift and interference hit both alike; median of the
                // ratios.
                double[][] ratio = new double[2][reps * 2 + 1];
                for (int i = 0; i < ratio[0].length; i++) {
                    double cs = once(() -> engine.copy(contiguous.memory(), pool, one, CudaCopyMode.MEMCPY));
                    double ps = once(() -> engine.copy(layerSegments, poolParts, saveParts));
                    double cl = once(() -> engine.copy(pool, contiguous.memory(), one, CudaCopyMode.MEMCPY));
                    double pl = once(() -> engine.copy(poolParts, layerSegments, loadParts));
                    ratio[0][i] = cs / ps;
                    ratio[1][i] = cl / pl;
                }
                Arrays.sort(ratio[0]);
                Arrays.sort(ratio[1]);
                int n = ratio[0].length;
                say(String.format(
                        "A/B, %d alternating pairs, defaults over %d layer segments vs contiguous: save %.1f%% (p25 %.1f%%, p75 %.1f%%),"
                                + " load %.1f%% (p25 %.1f%%, p75 %.1f%%)",
                        n,
                        layers,
                        100 * ratio[0][n / 2],
                        100 * ratio[0][n / 4],
                        100 * ratio[0][3 * n / 4],
                        100 * ratio[1][n / 2],
                        100 * ratio[1][n / 4],
                        100 * ratio[1][3 * n / 4]));
            }
        }
    }

    private void row(String name, long bytes, double[] s, double[] ref) {
        say(String.format(
                "| %s | %.1f | %.1f%% | %.1f | %.1f%% | %.2f | %.2f |",
                name,
                bytes / s[0] / 1e9,
                100 * ref[0] / s[0],
                bytes / s[1] / 1e9,
                100 * ref[1] / s[1],
                s[0] * 1e3,
                s[1] * 1e3));
    }

    private static double once(Runnable copy) {
        long start = System.nanoTime();
        copy.run();
        return (System.nanoTime() - start) / 1e9;
    }

    /** Median seconds of {@code reps} runs after two warm-ups. */
    private double time(Runnable copy) {
        copy.run();
        copy.run();
        double[] t = new double[reps];
        for (int i = 0; i < reps; i++) {
            long start = System.nanoTime();
            copy.run();
            t[i] = (System.nanoTime() - start) / 1e9;
        }
        Arrays.sort(t);
        return t[reps / 2];
    }

    /** Saves, clears the target blocks, loads, and compares 64 sampled (block, layer) slots byte for byte. */
    private String verify(
            CudaDevice device,
            CudaCopyEngine engine,
            DeviceBuffer kv,
            MemorySegment pool,
            CopyBatch save,
            CopyBatch load,
            int[] saveIds,
            int[] loadIds,
            CudaCopyMode mode) {
        pool.fill((byte) 0x5A);
        engine.copy(kv.memory(), pool, save, mode);
        engine.copy(pool, kv.memory(), load, mode);
        Random random = new Random(mode.ordinal());
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment a = arena.allocate(slot);
            MemorySegment b = arena.allocate(slot);
            for (int i = 0; i < 64; i++) {
                int blk = random.nextInt(saveIds.length);
                int l = random.nextInt(layers);
                device.copySync(a.address(), kv.address() + ((long) l * blocks + saveIds[blk]) * slot, slot);
                device.copySync(b.address(), kv.address() + ((long) l * blocks + loadIds[blk]) * slot, slot);
                MemorySegment p = pool.asSlice(((long) blk * layers + l) * slot, slot);
                if (a.mismatch(b) != -1 || a.mismatch(p) != -1) {
                    return " (VERIFY FAILED at block " + blk + " layer " + l + ")";
                }
            }
        }
        return "";
    }

    /**
     * Random bytes over the whole buffer: 64 MiB - 48 bytes of random host data copied end to end; the odd period
     * gives every 64 KiB slot different contents, so a copy from a wrong offset cannot match.
     */
    private static void fillRandom(CudaDevice device, DeviceBuffer buffer) {
        try (Arena arena = Arena.ofConfined()) {
            long chunk = Math.min((64L << 20) - 48, buffer.sizeBytes());
            MemorySegment host = arena.allocate(chunk);
            Random random = new Random(1);
            byte[] tmp = new byte[1 << 20];
            for (long off = 0; off < chunk; off += tmp.length) {
                random.nextBytes(tmp);
                MemorySegment.copy(tmp, 0, host, ValueLayout.JAVA_BYTE, off, (int) Math.min(tmp.length, chunk - off));
            }
            for (long off = 0; off < buffer.sizeBytes(); off += chunk) {
                device.copySync(buffer.address() + off, host.address(), Math.min(chunk, buffer.sizeBytes() - off));
            }
        }
    }
}
