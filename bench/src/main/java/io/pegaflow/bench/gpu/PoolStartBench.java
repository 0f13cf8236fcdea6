package io.pegaflow.bench.gpu;

import io.pegaflow.fabric.node.PinnedPool;
import io.pegaflow.gpu.cuda.CudaDevice;
import io.pegaflow.gpu.cuda.CudaProbe;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * The node's pinned pool start (mmap, parallel populate, chunked {@code cuMemHostRegister} overlapping populate, as
 * {@code ./pegaflow node --devices ...} does it), timed step by step, in several configurations one after another.
 * The first configuration run in a fresh VM is the "first start" figure: the VM's memory is cold only once.
 *
 * <pre>
 * java --enable-native-access=ALL-UNNAMED -cp ... io.pegaflow.bench.gpu.PoolStartBench --gib 30 \
 *     --configs default,serial,register-threads=1,register-threads=4 [--devices 0] [--out FILE]
 * </pre>
 *
 * A configuration is {@code default} or comma-free {@code key=value} pairs joined by {@code +}, the keys being
 * {@link PinnedPool.Settings}'s properties without {@code pegaflow.pool.}: {@code populate-threads}, {@code
 * register-threads}, {@code register-chunk-bytes}, {@code overlap}, {@code huge-pages}; {@code serial} is {@code
 * overlap=false} (populate everything, then one registration: the start before [7 of 12]).
 */
public final class PoolStartBench {
    private PoolStartBench() {}

    public static void main(String[] args) throws IOException {
        long gib = 30;
        List<String> configs = List.of("default", "serial", "register-threads=1", "register-threads=4");
        List<Integer> ordinals = List.of(0);
        Path out = null;
        for (int i = 0; i < args.length; i += 2) {
            String v = args[i + 1];
            switch (args[i]) {
                case "--gib" -> gib = Long.parseLong(v);
                case "--configs" -> configs = List.of(v.split(","));
                case "--devices" ->
                    ordinals = java.util.Arrays.stream(v.split(","))
                            .map(Integer::parseInt)
                            .toList();
                case "--out" -> out = Path.of(v);
                default -> throw new IllegalArgumentException("unknown option " + args[i]);
            }
        }
        if (!CudaProbe.isAvailable()) {
            System.err.println(
                    "CUDA is not usable: " + CudaProbe.unavailabilityCause().orElseThrow());
            System.exit(2);
        }
        List<String> lines = new ArrayList<>();
        List<CudaDevice> devices = new ArrayList<>();
        try {
            for (int o : ordinals) {
                devices.add(CudaDevice.open(Integer.toString(o)));
            }
            say(
                    lines,
                    "GPUs " + devices + ", driver CUDA " + CudaProbe.versionText(CudaProbe.driverVersion())
                            + ", " + Runtime.getRuntime().availableProcessors() + " processors, free hugetlb "
                            + hugetlbFree());
            say(lines, "| run | config | total s | steps |");
            say(lines, "|---|---|---|---|");
            int run = 0;
            for (String config : configs) {
                PinnedPool.Settings settings = PinnedPool.Settings.from(properties(config));
                long start = System.nanoTime();
                try (PinnedPool pool = PinnedPool.start(devices, gib << 30, settings)) {
                    double s = (System.nanoTime() - start) / 1e9;
                    say(
                            lines,
                            String.format(
                                    "| %d%s | %s | %.2f | %s |",
                                    ++run, run == 1 ? " (first in this JVM)" : "", config, s, pool.report()));
                    long closeStart = System.nanoTime();
                    pool.close();
                    say(lines, String.format("| | close | %.2f | |", (System.nanoTime() - closeStart) / 1e9));
                }
            }
        } finally {
            for (CudaDevice d : devices.reversed()) {
                d.close();
            }
        }
        if (out != null) {
            Files.write(out, lines);
        }
    }

    private static Map<String, String> properties(String config) {
        Map<String, String> p = new HashMap<>();
        if (config.equals("default")) {
            return p;
        }
        for (String kv : config.split("\\+")) {
            if (kv.equals("serial")) {
                p.put("pegaflow.pool.overlap", "false");
                continue;
            }
            String[] f = kv.split("=", 2);
            if (f.length != 2) {
                throw new IllegalArgumentException("config part \"" + kv + "\" is not key=value");
            }
            p.put("pegaflow.pool." + f[0], f[1]);
        }
        return p;
    }

    private static String hugetlbFree() {
        try {
            for (String line : Files.readAllLines(Path.of("/proc/meminfo"))) {
                if (line.startsWith("HugePages_Free:")) {
                    return line.split("\\s+")[1] + " pages";
                }
            }
        } catch (IOException e) {
            return "unknown";
        }
        return "unknown";
    }

    private static void say(List<String> lines, String line) {
        System.out.println(line);
        lines.add(line);
    }
}
