package io.pegaflow.bench.transport;

import io.pegaflow.rdma.RdmaNic;
import io.pegaflow.rdma.RdmaSettings;
import io.pegaflow.rdma.RdmaTransports;
import io.pegaflow.transport.DescriptorList;
import io.pegaflow.transport.LocalRegion;
import io.pegaflow.transport.PeerAddress;
import io.pegaflow.transport.RemoteRegion;
import io.pegaflow.transport.TransferStatus;
import io.pegaflow.transport.Transport;
import io.pegaflow.transport.TransportSettings;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.PrintWriter;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;

/**
 * Throughput and latency of the RDMA transport over its SPI (what the node's transfers use): READs (or WRITEs) of
 * {@code --sizes} per transfer, {@code --in-flight} transfers outstanding, for each {@code --qps} (queue pairs per peer
 * per NIC) and over every NIC in {@code --nics} (a transfer is striped across them).
 *
 * <pre>
 * # one machine, two transports on the same NIC(s) (the Soft-RoCE VM; on hardware: the NIC's loopback)
 * java --enable-native-access=ALL-UNNAMED -cp "$(cat bench/target/classpath.txt):bench/target/classes" \
 *     io.pegaflow.bench.transport.RdmaTransportBench --nics mlx5_0:1:3 --sizes 64k,1m,4m --qps 1,2,4 --seconds 5
 * # two machines: the holder first, then the requester (both name the same --nics spelling for their own NICs)
 * ... RdmaTransportBench --role holder    --listen 10.0.0.1:7700 --peer 10.0.0.2:7700 --nics mlx5_0:1:3
 * ... RdmaTransportBench --role requester --listen 10.0.0.2:7700 --peer 10.0.0.1:7700 --nics mlx5_0:1:3 --qps 4
 * </pre>
 *
 * The holder registers {@code --region} bytes, sends its region's description (address, length, key) over a plain TCP
 * socket on its listen port + 1, and serves until killed. Reported per (op, size, QPs): GB/s (10^9 B/s) over the
 * measured window, transfers/s, and the per-transfer latency p50/p99/max from submission to completion.
 */
public final class RdmaTransportBench {
    private RdmaTransportBench() {}

    private record Options(
            String role,
            List<RdmaNic> nics,
            long[] sizes,
            int[] qps,
            List<String> ops,
            int inFlight,
            double seconds,
            long regionBytes,
            String listenHost,
            int listenPort,
            String peerHost,
            int peerPort) {}

    public static void main(String[] args) throws Exception {
        Options o = parse(args);
        System.out.printf(
                Locale.ROOT,
                "# RdmaTransportBench role=%s nics=%s region=%d MiB in-flight=%d window=%.1f s%n",
                o.role,
                o.nics,
                o.regionBytes >> 20,
                o.inFlight,
                o.seconds);
        switch (o.role) {
            case "loopback" -> loopback(o);
            case "holder" -> holder(o);
            case "requester" -> requester(o);
            default -> throw new IllegalArgumentException("--role is loopback, holder or requester, got " + o.role);
        }
    }

    private static void loopback(Options o) throws Exception {
        header();
        for (int qps : o.qps) {
            int[] ports = freePorts(2);
            RdmaSettings rdma = settings(o, qps);
            TransportSettings a = TransportSettings.of(
                            "a", "127.0.0.1", ports[0], List.of(new PeerAddress("b", "127.0.0.1", ports[1])))
                    .withMaxInFlightPerPeer(Math.max(64, o.inFlight));
            TransportSettings b = TransportSettings.of(
                            "b", "127.0.0.1", ports[1], List.of(new PeerAddress("a", "127.0.0.1", ports[0])))
                    .withMaxInFlightPerPeer(Math.max(64, o.inFlight));
            try (Arena arena = Arena.ofShared();
                    Transport requester = RdmaTransports.create(a, rdma);
                    Transport holder = RdmaTransports.create(b, rdma)) {
                MemorySegment local = arena.allocate(o.regionBytes, 4096);
                MemorySegment remote = arena.allocate(o.regionBytes, 4096);
                remote.fill((byte) 0x5a);
                LocalRegion mine = requester.registerRegion(local);
                RemoteRegion theirs = holder.registerRegion(remote).describe();
                holder.start();
                requester.start();
                if (!requester.awaitConnected("b", 60_000)) {
                    throw new IllegalStateException("requester never connected to the holder: " + requester.snapshot());
                }
                run(o, qps, requester, mine, theirs);
            }
        }
    }

    private static void holder(Options o) throws Exception {
        TransportSettings s = TransportSettings.of(
                "holder", o.listenHost, o.listenPort, List.of(new PeerAddress("requester", o.peerHost, o.peerPort)));
        int qps = o.qps[o.qps.length - 1];
        try (Arena arena = Arena.ofShared();
                Transport t = RdmaTransports.create(s, settings(o, qps));
                ServerSocket control = new ServerSocket(o.listenPort + 1)) {
            MemorySegment region = arena.allocate(o.regionBytes, 4096);
            region.fill((byte) 0x5a);
            RemoteRegion d = t.registerRegion(region).describe();
            t.start();
            System.out.println("# holder ready; control port " + (o.listenPort + 1) + "; Ctrl-C to stop");
            while (true) {
                try (Socket c = control.accept();
                        PrintWriter w = new PrintWriter(c.getOutputStream(), true, StandardCharsets.UTF_8)) {
                    w.println(d.nodeId() + " " + d.regionId() + " " + d.baseAddress() + " " + d.lengthBytes() + " "
                            + d.remoteKey());
                }
            }
        }
    }

    private static void requester(Options o) throws Exception {
        RemoteRegion theirs;
        try (Socket c = new Socket(o.peerHost, o.peerPort + 1);
                BufferedReader r =
                        new BufferedReader(new InputStreamReader(c.getInputStream(), StandardCharsets.UTF_8))) {
            String[] f = r.readLine().split(" ");
            theirs = new RemoteRegion(
                    f[0], Integer.parseInt(f[1]), Long.parseLong(f[2]), Long.parseLong(f[3]), Long.parseLong(f[4]));
        }
        header();
        for (int qps : o.qps) {
            TransportSettings s = TransportSettings.of(
                            "requester",
                            o.listenHost,
                            o.listenPort,
                            List.of(new PeerAddress("holder", o.peerHost, o.peerPort)))
                    .withMaxInFlightPerPeer(Math.max(64, o.inFlight));
            try (Arena arena = Arena.ofShared();
                    Transport t = RdmaTransports.create(s, settings(o, qps))) {
                LocalRegion mine =
                        t.registerRegion(arena.allocate(Math.min(o.regionBytes, theirs.lengthBytes()), 4096));
                t.start();
                if (!t.awaitConnected("holder", 60_000)) {
                    throw new IllegalStateException(
                            "never connected to the holder at " + o.peerHost + ":" + o.peerPort);
                }
                run(o, qps, t, mine, theirs);
            }
        }
    }

    private static RdmaSettings settings(Options o, int qps) {
        return RdmaSettings.of("", 1, 0).withNics(o.nics).withQpsPerPeer(qps);
    }

    private static void header() {
        System.out.println(
                "| op | size | QPs/peer/NIC | in flight | GB/s | transfers/s | p50 µs | p99 µs | max µs | failed |");
        System.out.println("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    }

    /** For each op and size: a short warm-up, then transfers back to back for the window, keeping in-flight busy. */
    private static void run(Options o, int qps, Transport t, LocalRegion mine, RemoteRegion theirs) throws Exception {
        long span = Math.min(mine.segment().byteSize(), theirs.lengthBytes());
        for (String op : o.ops) {
            for (long size : o.sizes) {
                if (size > span) {
                    continue;
                }
                long slots = span / size;
                measure(o, t, mine, theirs, op, size, slots, 0.3); // warm-up, not reported
                Result r = measure(o, t, mine, theirs, op, size, slots, o.seconds);
                System.out.printf(
                        Locale.ROOT,
                        "| %s | %s | %d | %d | %.2f | %.0f | %.1f | %.1f | %.1f | %d |%n",
                        op,
                        human(size),
                        qps,
                        o.inFlight,
                        r.bytes / r.seconds / 1e9,
                        r.transfers / r.seconds,
                        r.latencyUs(0.50),
                        r.latencyUs(0.99),
                        r.latencyUs(1.0),
                        r.failed);
            }
        }
    }

    private record Result(long bytes, long transfers, double seconds, long failed, long[] latencyNs, int count) {
        double latencyUs(double q) {
            if (count == 0) {
                return Double.NaN;
            }
            long[] sorted = Arrays.copyOf(latencyNs, count);
            Arrays.sort(sorted);
            return sorted[Math.min(count - 1, (int) Math.floor(q * (count - 1)))] / 1e3;
        }
    }

    private static Result measure(
            Options o,
            Transport t,
            LocalRegion mine,
            RemoteRegion theirs,
            String op,
            long size,
            long slots,
            double seconds)
            throws InterruptedException {
        Semaphore window = new Semaphore(o.inFlight);
        int cap = 1 << 20;
        long[] started = new long[o.inFlight * 4 + 64];
        long[] latency = new long[cap];
        AtomicInteger recorded = new AtomicInteger();
        AtomicLong okBytes = new AtomicLong();
        AtomicLong done = new AtomicLong();
        AtomicLong failed = new AtomicLong();
        DescriptorList list = new DescriptorList(1);
        io.pegaflow.transport.CompletionHandler handler = (cid, status, bytes) ->
                complete(cid, status, bytes, started, latency, recorded, okBytes, done, failed, window);
        long end = System.nanoTime() + (long) (seconds * 1e9);
        long begin = System.nanoTime();
        long id = 0;
        while (System.nanoTime() < end) {
            if (!window.tryAcquire(100, TimeUnit.MILLISECONDS)) {
                continue;
            }
            long slot = id % slots;
            list.clear().add(theirs, slot * size, mine, slot * size, size);
            int ring = (int) (id % started.length);
            started[ring] = System.nanoTime();
            TransferStatus s =
                    op.equals("write") ? t.write(list, 10_000, id, handler) : t.read(list, 10_000, id, handler);
            if (s != TransferStatus.OK) {
                window.release();
                if (s != TransferStatus.BACK_PRESSURED) {
                    failed.incrementAndGet();
                }
                Thread.onSpinWait();
                continue;
            }
            id++;
        }
        window.acquire(o.inFlight); // drain
        double elapsed = (System.nanoTime() - begin) / 1e9;
        window.release(o.inFlight);
        return new Result(okBytes.get(), done.get(), elapsed, failed.get(), latency, Math.min(recorded.get(), cap));
    }

    private static void complete(
            long cid,
            TransferStatus status,
            long bytes,
            long[] started,
            long[] latency,
            AtomicInteger recorded,
            AtomicLong okBytes,
            AtomicLong done,
            AtomicLong failed,
            Semaphore window) {
        long ns = System.nanoTime() - started[(int) (cid % started.length)];
        if (status == TransferStatus.OK) {
            okBytes.addAndGet(bytes);
            done.incrementAndGet();
            int i = recorded.getAndIncrement();
            if (i < latency.length) {
                latency[i] = ns;
            }
        } else {
            failed.incrementAndGet();
        }
        window.release();
    }

    private static Options parse(String[] args) {
        String role = "loopback";
        List<RdmaNic> nics = List.of(new RdmaNic("", 1, 1));
        long[] sizes = {4096, 65536, 1 << 20, 4 << 20};
        int[] qps = {1, 2, 4};
        List<String> ops = List.of("read");
        int inFlight = 16;
        double seconds = 3;
        long region = 256L << 20;
        String listen = "0.0.0.0:7700";
        String peer = "127.0.0.1:7700";
        for (int i = 0; i < args.length; i++) {
            String v = i + 1 < args.length ? args[i + 1] : "";
            switch (args[i]) {
                case "--role" -> role = v;
                case "--nics" -> {
                    List<RdmaNic> list = new ArrayList<>();
                    for (String n : v.split(",")) {
                        String[] p = n.split(":");
                        list.add(new RdmaNic(p[0], Integer.parseInt(p[1]), Integer.parseInt(p[2])));
                    }
                    nics = list;
                }
                case "--sizes" ->
                    sizes = Arrays.stream(v.split(","))
                            .mapToLong(RdmaTransportBench::bytes)
                            .toArray();
                case "--qps" ->
                    qps = Arrays.stream(v.split(","))
                            .mapToInt(Integer::parseInt)
                            .toArray();
                case "--ops" -> ops = List.of(v.split(","));
                case "--in-flight" -> inFlight = Integer.parseInt(v);
                case "--seconds" -> seconds = Double.parseDouble(v);
                case "--region" -> region = bytes(v);
                case "--listen" -> listen = v;
                case "--peer" -> peer = v;
                default -> throw new IllegalArgumentException("unknown option " + args[i] + " (see the class comment)");
            }
            i++;
        }
        String[] l = listen.split(":");
        String[] p = peer.split(":");
        return new Options(
                role,
                nics,
                sizes,
                qps,
                ops,
                inFlight,
                seconds,
                region,
                l[0],
                Integer.parseInt(l[1]),
                p[0],
                Integer.parseInt(p[1]));
    }

    private static long bytes(String s) {
        String t = s.toLowerCase(Locale.ROOT);
        long unit = t.endsWith("k") ? 1 << 10 : t.endsWith("m") ? 1 << 20 : t.endsWith("g") ? 1L << 30 : 1;
        return Long.parseLong(unit == 1 ? t : t.substring(0, t.length() - 1)) * unit;
    }

    private static String human(long b) {
        return b >= 1 << 20 ? (b >> 20) + " MiB" : b >= 1 << 10 ? (b >> 10) + " KiB" : b + " B";
    }

    private static int[] freePorts(int n) throws IOException {
        int[] ports = new int[n];
        List<ServerSocket> held = new ArrayList<>();
        try {
            for (int i = 0; i < n; i++) {
                ServerSocket s = new ServerSocket(0);
                held.add(s);
                ports[i] = s.getLocalPort();
            }
        } finally {
            for (ServerSocket s : held) {
                s.close();
            }
        }
        return ports;
    }
}
