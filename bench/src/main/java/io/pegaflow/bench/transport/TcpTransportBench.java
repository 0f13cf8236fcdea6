package io.pegaflow.bench.transport;

import io.pegaflow.transport.CompletionHandler;
import io.pegaflow.transport.DescriptorList;
import io.pegaflow.transport.LatencyHistogram;
import io.pegaflow.transport.LocalRegion;
import io.pegaflow.transport.PeerAddress;
import io.pegaflow.transport.PeerSnapshot;
import io.pegaflow.transport.RemoteRegion;
import io.pegaflow.transport.TransferStatus;
import io.pegaflow.transport.TransportSettings;
import io.pegaflow.transport.tcp.TcpTransport;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.net.InetSocketAddress;
import java.net.StandardSocketOptions;
import java.nio.ByteBuffer;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.SplittableRandom;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * Cross-node fetch over the TCP transport on loopback, against a raw Java socket copy of the same bytes in the same
 * run. Two processes: this one (the fetching node) starts a holder process that registers its pool region with a
 * {@link TcpTransport} and also serves a plain socket.
 *
 * <pre>
 * java -cp transport/target/classes:bench/target/classes io.pegaflow.bench.transport.TcpTransportBench \
 *     [--bytes 1073741824] [--block 2097152] [--batch 16] [--in-flight 4] [--rounds 24] [--checksum-rounds 3]
 *     [--out FILE]
 * </pre>
 *
 * <ul>
 *   <li><b>raw</b>: the holder writes the whole range from its region's direct ByteBuffer into one plain
 *       SocketChannel; this process reads it into its own region's direct ByteBuffer. Timed from the 16-byte request
 *       to the last byte. Two ways, both measured: the whole range per read/write call, and one block per call; the
 *       faster one is the baseline.
 *   <li><b>transport</b>: this process READs the same bytes as {@code bytes / block} blocks in transfers of
 *       {@code batch} descriptors, {@code in-flight} transfers outstanding, the holder's blocks in a shuffled order
 *       (as a pool scatters them) into consecutive local blocks. Timed from the first submission to the last
 *       completion.
 * </ul>
 * Both move the same bytes between the same memory over one loopback TCP connection. A verified warm-up of each comes
 * first (every byte checked), then rounds of all three back to back, cycling through the six orders so that each
 * variant runs before and after each other equally often. Reported: GB/s (10^9 bytes per second) per round, the
 * median of each, and the figure to judge on a shared machine: the per-round ratio transport / raw (the three runs of
 * a round are close in time), as median, quartiles and extremes, against each raw variant and the faster of the two.
 */
public final class TcpTransportBench {

    private static final long CHUNK = 1L << 30;

    private TcpTransportBench() {}

    public static void main(String[] args) throws Exception {
        Options o = Options.parse(args);
        if (o.serve) {
            Holder.run(o);
        } else {
            new Fetcher(o).run();
        }
    }

    /** The pattern both sides know: the long at byte offset {@code 8 i} of the holder's region. */
    static long pattern(long i) {
        long x = (i + 1) * 0x9E37_79B9_7F4A_7C15L;
        return x ^ (x >>> 31);
    }

    // ------------------------------------------------------------------------------------------ holder process

    /** The holding node: a registered region full of the pattern, a TCP transport, and a raw socket server. */
    static final class Holder {
        static void run(Options o) throws Exception {
            Arena arena = Arena.ofShared();
            MemorySegment region = arena.allocate(o.bytes, 4096);
            long words = o.bytes / 8;
            for (long i = 0; i < words; i++) {
                region.setAtIndex(ValueLayout.JAVA_LONG, i, pattern(i));
            }
            TcpTransport transport = new TcpTransport(TransportSettings.of("holder", "127.0.0.1", 0, List.of()));
            LocalRegion registered = transport.registerRegion(region);
            transport.start();
            ServerSocketChannel raw = ServerSocketChannel.open().bind(new InetSocketAddress("127.0.0.1", 0));
            RemoteRegion d = registered.describe();
            System.out.println("READY " + transport.localAddress().port() + " "
                    + ((InetSocketAddress) raw.getLocalAddress()).getPort() + " " + d.regionId() + " "
                    + d.baseAddress() + " " + d.lengthBytes() + " " + d.remoteKey());
            System.out.flush();
            Thread.ofPlatform().daemon(true).start(() -> {
                try {
                    System.in.transferTo(java.io.OutputStream.nullOutputStream()); // until the fetcher goes away
                } catch (IOException ignored) {
                    // the fetcher is gone either way
                }
                transport.close();
                System.exit(0);
            });
            ByteBuffer[] views = views(region);
            try (SocketChannel channel = raw.accept()) {
                channel.setOption(StandardSocketOptions.TCP_NODELAY, true);
                ByteBuffer request = ByteBuffer.allocateDirect(16);
                while (true) {
                    request.clear();
                    while (request.hasRemaining()) {
                        if (channel.read(request) < 0) {
                            return;
                        }
                    }
                    long length = request.getLong(0);
                    long callBytes = request.getLong(8);
                    for (long done = 0; done < length; ) {
                        ByteBuffer view = views[(int) (done / CHUNK)];
                        int start = (int) (done % CHUNK);
                        int span = (int) Math.min(Math.min(view.capacity() - start, length - done), callBytes);
                        view.limit(start + span).position(start);
                        while (view.hasRemaining()) {
                            channel.write(view);
                        }
                        done += span;
                    }
                }
            }
        }
    }

    // ------------------------------------------------------------------------------------------ fetching process

    static final class Fetcher {
        private final Options o;
        private final List<String> out = new ArrayList<>();

        Fetcher(Options o) {
            this.o = o;
        }

        void run() throws Exception {
            String java = ProcessHandle.current().info().command().orElse("java");
            List<String> command = new ArrayList<>(List.of(
                    java,
                    "-cp",
                    System.getProperty("java.class.path"),
                    TcpTransportBench.class.getName(),
                    "--serve",
                    "--bytes",
                    Long.toString(o.bytes)));
            Process holder = new ProcessBuilder(command)
                    .redirectError(ProcessBuilder.Redirect.INHERIT)
                    .start();
            try {
                BufferedReader lines =
                        new BufferedReader(new InputStreamReader(holder.getInputStream(), StandardCharsets.UTF_8));
                String ready = lines.readLine();
                if (ready == null || !ready.startsWith("READY ")) {
                    throw new IllegalStateException("holder did not start: " + ready);
                }
                String[] f = ready.split(" ");
                int transportPort = Integer.parseInt(f[1]);
                int rawPort = Integer.parseInt(f[2]);
                RemoteRegion remote = new RemoteRegion(
                        "holder",
                        Integer.parseInt(f[3]),
                        Long.parseLong(f[4]),
                        Long.parseLong(f[5]),
                        Long.parseLong(f[6]));
                measure(remote, transportPort, rawPort);
            } finally {
                holder.getOutputStream().close();
                if (!holder.waitFor(10, TimeUnit.SECONDS)) {
                    holder.destroyForcibly();
                }
            }
        }

        private void measure(RemoteRegion remote, int transportPort, int rawPort) throws Exception {
            Arena arena = Arena.ofShared();
            MemorySegment local = arena.allocate(o.bytes, 4096);
            PeerAddress holderAddress = new PeerAddress("holder", "127.0.0.1", transportPort);
            TcpTransport plain = fetcher("fetcher", holderAddress, false);
            TcpTransport crc = o.checksumRounds > 0 ? fetcher("fetcher-crc", holderAddress, true) : null;
            LocalRegion plainRegion = plain.registerRegion(local);
            LocalRegion crcRegion = crc == null ? null : crc.registerRegion(local);
            try (SocketChannel raw = SocketChannel.open(new InetSocketAddress("127.0.0.1", rawPort))) {
                raw.setOption(StandardSocketOptions.TCP_NODELAY, true);
                ByteBuffer[] views = views(local);
                int blocks = (int) (o.bytes / o.block);
                int[] remoteBlock = shuffled(blocks);

                header(blocks);
                local.fill((byte) 0);
                rawCopy(raw, views, o.bytes);
                verifyContiguous(local);
                local.fill((byte) 0);
                rawCopy(raw, views, o.block);
                verifyContiguous(local);
                local.fill((byte) 0);
                fetch(plain, plainRegion, remote, remoteBlock);
                verifyShuffled(local, remoteBlock);
                line("warm-up rounds verified byte-exact (raw, both ways: contiguous; transport: " + blocks
                        + " shuffled blocks)");

                double[] wholeGbps = new double[o.rounds];
                double[] blockGbps = new double[o.rounds];
                double[] transportGbps = new double[o.rounds];
                double[] vsWhole = new double[o.rounds];
                double[] vsBlock = new double[o.rounds];
                double[] vsFaster = new double[o.rounds];
                for (int r = 0; r < o.rounds; r++) {
                    // Each round runs the three variants back to back, in one of the six orders in turn, so every
                    // variant runs before and after every other equally often (a drift in machine load cancels).
                    for (int variant : ORDERS[r % ORDERS.length]) {
                        switch (variant) {
                            case 0 -> wholeGbps[r] = gbps(rawCopy(raw, views, o.bytes));
                            case 1 -> blockGbps[r] = gbps(rawCopy(raw, views, o.block));
                            default -> transportGbps[r] = gbps(fetch(plain, plainRegion, remote, remoteBlock));
                        }
                    }
                    vsWhole[r] = transportGbps[r] / wholeGbps[r];
                    vsBlock[r] = transportGbps[r] / blockGbps[r];
                    vsFaster[r] = transportGbps[r] / Math.max(wholeGbps[r], blockGbps[r]);
                    line(String.format(
                            Locale.ROOT,
                            "round %d (order %s): raw (whole range per call) %.2f GB/s, raw (one block per call) %.2f"
                                    + " GB/s, transport %.2f GB/s (%.1f%% of whole, %.1f%% of per-block)",
                            r + 1,
                            orderName(ORDERS[r % ORDERS.length]),
                            wholeGbps[r],
                            blockGbps[r],
                            transportGbps[r],
                            100 * vsWhole[r],
                            100 * vsBlock[r]));
                }
                double rawMedian = Math.max(median(wholeGbps), median(blockGbps));
                double transportMedian = median(transportGbps);
                line(String.format(
                        Locale.ROOT,
                        "median of %d rounds: raw (whole) %.2f GB/s, raw (block) %.2f GB/s, transport %.2f GB/s",
                        o.rounds,
                        median(wholeGbps),
                        median(blockGbps),
                        transportMedian));
                line("transport / raw, median of per-round ratios [quartiles] (min-max): vs whole "
                        + spread(vsWhole) + "; vs per-block " + spread(vsBlock) + "; vs the faster of the two "
                        + spread(vsFaster));
                line(String.format(
                        Locale.ROOT,
                        "transport / faster raw median: %.1f%%; rounds at >= 90%% of raw (whole): %d of %d",
                        100 * transportMedian / rawMedian,
                        Arrays.stream(vsWhole).filter(x -> x >= 0.9).count(),
                        o.rounds));

                if (crc != null) {
                    local.fill((byte) 0);
                    fetch(crc, crcRegion, remote, remoteBlock);
                    verifyShuffled(local, remoteBlock);
                    double[] crcGbps = new double[o.checksumRounds];
                    for (int r = 0; r < o.checksumRounds; r++) {
                        crcGbps[r] = gbps(fetch(crc, crcRegion, remote, remoteBlock));
                    }
                    line(String.format(
                            Locale.ROOT,
                            "with CRC32C per block (verifyChecksums=true): median %.2f GB/s over %d rounds, %.1f%%"
                                    + " of the faster raw median",
                            median(crcGbps),
                            o.checksumRounds,
                            100 * median(crcGbps) / rawMedian));
                }
                PeerSnapshot c = plain.snapshot().peer("holder");
                line(String.format(
                        Locale.ROOT,
                        "fetcher counters (transport=%s): %d transfers OK, %d failed, %d refused, %d bytes read;"
                                + " transfer latency p50 <= %.1f ms, p99 <= %.1f ms (power-of-two buckets)",
                        plain.name(),
                        c.completions(TransferStatus.OK),
                        c.transfers() - c.completions(TransferStatus.OK),
                        Arrays.stream(c.refusalsByStatus()).sum(),
                        c.bytesRead(),
                        LatencyHistogram.quantileUpperBoundNs(c.latencyBuckets(), 0.5) / 1e6,
                        LatencyHistogram.quantileUpperBoundNs(c.latencyBuckets(), 0.99) / 1e6));
                line("load average after: " + loadAverage());
            } finally {
                plain.close();
                if (crc != null) {
                    crc.close();
                }
            }
            if (o.outFile != null) {
                Files.write(o.outFile, out);
            }
        }

        private TcpTransport fetcher(String id, PeerAddress holder, boolean checksums) throws InterruptedException {
            TcpTransport t = new TcpTransport(TransportSettings.of(id, "127.0.0.1", 0, List.of(holder))
                    .withMaxDescriptorsPerTransfer(Math.max(o.batch, 1))
                    .withMaxInFlightPerPeer(Math.max(o.inFlight, 1))
                    .withVerifyChecksums(checksums));
            t.start();
            if (!t.awaitConnected("holder", 10_000)) {
                throw new IllegalStateException(id + " could not connect to the holder");
            }
            return t;
        }

        /**
         * Nanoseconds to receive {@code bytes} over the raw socket into the local region, both sides moving at most
         * {@code callBytes} per read or write call.
         */
        private long rawCopy(SocketChannel raw, ByteBuffer[] views, long callBytes) throws IOException {
            ByteBuffer request =
                    ByteBuffer.allocateDirect(16).putLong(0, o.bytes).putLong(8, callBytes);
            long start = System.nanoTime();
            while (request.hasRemaining()) {
                raw.write(request);
            }
            for (long done = 0; done < o.bytes; ) {
                ByteBuffer view = views[(int) (done / CHUNK)];
                int at = (int) (done % CHUNK);
                int span = (int) Math.min(Math.min(view.capacity() - at, o.bytes - done), callBytes);
                view.limit(at + span).position(at);
                while (view.hasRemaining()) {
                    if (raw.read(view) < 0) {
                        throw new IOException("holder closed the raw socket");
                    }
                }
                done += span;
            }
            return System.nanoTime() - start;
        }

        /** Nanoseconds to READ every block through the transport, {@code inFlight} transfers outstanding. */
        private long fetch(TcpTransport transport, LocalRegion local, RemoteRegion remote, int[] remoteBlock)
                throws InterruptedException {
            int blocks = remoteBlock.length;
            Semaphore window = new Semaphore(o.inFlight);
            AtomicInteger failures = new AtomicInteger();
            CompletionHandler handler = (id, status, bytes) -> {
                if (status != TransferStatus.OK) {
                    failures.incrementAndGet();
                }
                window.release();
            };
            DescriptorList list = new DescriptorList(o.batch);
            long start = System.nanoTime();
            for (int first = 0, id = 0; first < blocks; first += o.batch, id++) {
                list.clear();
                for (int k = first; k < Math.min(blocks, first + o.batch); k++) {
                    list.add(remote, (long) remoteBlock[k] * o.block, local, (long) k * o.block, o.block);
                }
                window.acquire();
                TransferStatus status;
                while ((status = transport.read(list, 60_000, id, handler)) == TransferStatus.BACK_PRESSURED) {
                    Thread.onSpinWait();
                }
                if (status != TransferStatus.OK) {
                    throw new IllegalStateException("transfer refused: " + status);
                }
            }
            window.acquire(o.inFlight);
            long took = System.nanoTime() - start;
            window.release(o.inFlight);
            if (failures.get() > 0) {
                throw new IllegalStateException(failures.get() + " transfers failed");
            }
            return took;
        }

        private void verifyContiguous(MemorySegment local) {
            long words = o.bytes / 8;
            for (long i = 0; i < words; i++) {
                if (local.getAtIndex(ValueLayout.JAVA_LONG, i) != pattern(i)) {
                    throw new IllegalStateException("raw copy differs at byte " + i * 8);
                }
            }
        }

        private void verifyShuffled(MemorySegment local, int[] remoteBlock) {
            long wordsPerBlock = o.block / 8;
            for (int k = 0; k < remoteBlock.length; k++) {
                long localWord = k * wordsPerBlock;
                long remoteWord = remoteBlock[k] * wordsPerBlock;
                for (long w = 0; w < wordsPerBlock; w++) {
                    if (local.getAtIndex(ValueLayout.JAVA_LONG, localWord + w) != pattern(remoteWord + w)) {
                        throw new IllegalStateException("transport fetch differs in block " + k + " at word " + w);
                    }
                }
            }
        }

        private double gbps(long nanos) {
            return o.bytes / (double) nanos;
        }

        private void header(int blocks) throws IOException {
            line("TcpTransportBench: " + o.bytes + " bytes = " + blocks + " blocks of " + o.block + " bytes, "
                    + o.batch + " blocks per transfer, " + o.inFlight + " transfers in flight, " + o.rounds
                    + " rounds; two processes on loopback");
            line("java " + System.getProperty("java.version") + ", "
                    + Runtime.getRuntime().availableProcessors() + " CPUs, load average before: " + loadAverage());
        }

        private void line(String s) {
            PrintStream stdout = System.out;
            stdout.println(s);
            out.add(s);
        }
    }

    // ------------------------------------------------------------------------------------------ helpers

    static ByteBuffer[] views(MemorySegment segment) {
        int count = (int) ((segment.byteSize() + CHUNK - 1) / CHUNK);
        ByteBuffer[] views = new ByteBuffer[count];
        for (int c = 0; c < count; c++) {
            long at = c * CHUNK;
            views[c] = segment.asSlice(at, Math.min(CHUNK, segment.byteSize() - at))
                    .asByteBuffer();
        }
        return views;
    }

    private static int[] shuffled(int n) {
        int[] order = new int[n];
        for (int i = 0; i < n; i++) {
            order[i] = i;
        }
        SplittableRandom random = new SplittableRandom(42);
        for (int i = n - 1; i > 0; i--) {
            int j = random.nextInt(i + 1);
            int t = order[i];
            order[i] = order[j];
            order[j] = t;
        }
        return order;
    }

    /** All six orders of the variants 0 (raw whole), 1 (raw per block), 2 (transport). */
    private static final int[][] ORDERS = {{0, 1, 2}, {2, 1, 0}, {1, 2, 0}, {0, 2, 1}, {2, 0, 1}, {1, 0, 2}};

    private static String orderName(int[] order) {
        StringBuilder out = new StringBuilder();
        for (int v : order) {
            out.append(v == 0 ? 'W' : v == 1 ? 'B' : 'T');
        }
        return out.toString();
    }

    /** "92.3% [88.1-95.0%] (80.2-101.4%)": median, quartiles, extremes of ratios. */
    private static String spread(double[] ratios) {
        double[] sorted = ratios.clone();
        Arrays.sort(sorted);
        return String.format(
                Locale.ROOT,
                "%.1f%% [%.1f-%.1f%%] (%.1f-%.1f%%)",
                100 * median(sorted),
                100 * quantile(sorted, 0.25),
                100 * quantile(sorted, 0.75),
                100 * sorted[0],
                100 * sorted[sorted.length - 1]);
    }

    /** Linear interpolation between the closest ranks of an ascending array. */
    private static double quantile(double[] sorted, double q) {
        double at = q * (sorted.length - 1);
        int lo = (int) Math.floor(at);
        int hi = Math.min(sorted.length - 1, lo + 1);
        return sorted[lo] + (at - lo) * (sorted[hi] - sorted[lo]);
    }

    private static double median(double[] values) {
        double[] sorted = values.clone();
        Arrays.sort(sorted);
        int n = sorted.length;
        return n % 2 == 1 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
    }

    private static double max(double[] values) {
        return Arrays.stream(values).max().orElse(0);
    }

    private static String loadAverage() {
        try {
            return Files.readString(Path.of("/proc/loadavg")).trim();
        } catch (IOException e) {
            return "unknown";
        }
    }

    /** Command-line options; {@code --serve} (internal) makes this process the holder. */
    record Options(
            long bytes,
            long block,
            int batch,
            int inFlight,
            int rounds,
            int checksumRounds,
            Path outFile,
            boolean serve) {

        static Options parse(String[] args) {
            long bytes = 1L << 30;
            long block = 2L << 20;
            int batch = 16;
            int inFlight = 4;
            int rounds = 24;
            int checksumRounds = 3;
            Path out = null;
            boolean serve = false;
            for (int i = 0; i < args.length; i++) {
                switch (args[i]) {
                    case "--bytes" -> bytes = Long.parseLong(args[++i]);
                    case "--block" -> block = Long.parseLong(args[++i]);
                    case "--batch" -> batch = Integer.parseInt(args[++i]);
                    case "--in-flight" -> inFlight = Integer.parseInt(args[++i]);
                    case "--rounds" -> rounds = Integer.parseInt(args[++i]);
                    case "--checksum-rounds" -> checksumRounds = Integer.parseInt(args[++i]);
                    case "--out" -> out = Path.of(args[++i]);
                    case "--serve" -> serve = true;
                    default -> throw new IllegalArgumentException("unknown option " + args[i]);
                }
            }
            if (block <= 0 || block % 8 != 0 || bytes % block != 0) {
                throw new IllegalArgumentException(
                        "--block must be a positive multiple of 8 dividing --bytes, got " + block);
            }
            if (batch < 1 || inFlight < 1 || rounds < 1) {
                throw new IllegalArgumentException("--batch, --in-flight and --rounds must be >= 1");
            }
            return new Options(bytes, block, batch, inFlight, rounds, checksumRounds, out, serve);
        }
    }
}
