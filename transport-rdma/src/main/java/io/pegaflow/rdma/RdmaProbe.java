package io.pegaflow.rdma;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;
import static java.lang.foreign.ValueLayout.JAVA_SHORT;

import io.pegaflow.rdma.verbs.Verbs;
import io.pegaflow.rdma.verbs.VerbsLayout;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.Optional;

/**
 * What RDMA this machine has: devices, ports (state, MTU, link layer, LID), GID tables with types,
 * {@code max_mr_size}, the memlock limit; or, when there is nothing, why ({@link RdmaProbeResult.NoDevice}). Then
 * {@link #problems} holds that against the NICs a configuration names and says what to fix. What
 * {@code ./pegaflow rdma-check} prints, and what the node asks before it picks {@code transport: rdma}.
 *
 * <p>Control path: opens and closes every device, allocates per call. Thread-safe. Never throws for a missing
 * library, missing kernel support or a device that cannot be opened: those are values.
 */
public final class RdmaProbe {
    private RdmaProbe() {}

    /** How many GID entries are read per port at most (RoCE tables list one per address of the netdev). */
    static final int MAX_GIDS = 256;

    /** Probes every device. */
    public static RdmaProbeResult probe() {
        long memlock = Verbs.memlockLimitBytes();
        Verbs.Loaded loaded = Verbs.load();
        if (loaded.verbs().isEmpty()) {
            return new RdmaProbeResult.NoDevice(
                    "no RDMA device: " + loaded.reason(),
                    "install libibverbs1 and ibverbs-providers (Debian/Ubuntu) or rdma-core (RHEL)",
                    0,
                    memlock);
        }
        Verbs verbs = loaded.verbs().get();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment num = arena.allocate(JAVA_INT);
            MemorySegment capture = Verbs.newErrnoCapture(arena);
            MemorySegment list = verbs.getDeviceList(num, capture);
            if (list.equals(MemorySegment.NULL)) {
                int errno = Verbs.errno(capture);
                if (errno == Verbs.ENOSYS) {
                    return new RdmaProbeResult.NoDevice(
                            "no RDMA device: the kernel has no RDMA support (ibv_get_device_list: ENOSYS)",
                            "load the NIC's RDMA driver (mlx5_ib, irdma, bnxt_re, ...) or, for Soft-RoCE, "
                                    + "modprobe rdma_rxe && rdma link add rxe0 type rxe netdev <eth>",
                            errno,
                            memlock);
                }
                return new RdmaProbeResult.NoDevice(
                        "no RDMA device: ibv_get_device_list failed: " + Verbs.strerror(errno) + " (errno " + errno
                                + ")",
                        "check /dev/infiniband (permissions, container device mounts) and the kernel log",
                        errno,
                        memlock);
            }
            try {
                int count = num.get(JAVA_INT, 0);
                if (count == 0) {
                    return new RdmaProbeResult.NoDevice(
                            "no RDMA device: ibv_get_device_list found none",
                            "install the user-space providers (ibverbs-providers) and check that ibv_devices lists"
                                    + " the NIC; in a container mount /dev/infiniband",
                            0,
                            memlock);
                }
                MemorySegment devices = list.reinterpret(ADDRESS.byteSize() * count);
                List<RdmaDevice> found = new ArrayList<>();
                List<RdmaProblem> problems = new ArrayList<>();
                for (int i = 0; i < count; i++) {
                    MemorySegment device = devices.getAtIndex(ADDRESS, i);
                    String name = verbs.deviceName(device);
                    MemorySegment context = verbs.openDevice(device, capture);
                    if (context.equals(MemorySegment.NULL)) {
                        int errno = Verbs.errno(capture);
                        problems.add(new RdmaProblem(
                                "device " + name + " cannot be opened: " + Verbs.strerror(errno),
                                "check the permissions of /dev/infiniband/uverbs* (or run in the rdma group)"));
                        continue;
                    }
                    try {
                        describe(verbs, context, name, arena)
                                .ifPresentOrElse(
                                        found::add,
                                        () -> problems.add(new RdmaProblem(
                                                "device " + name + " cannot be queried", "check dmesg")));
                    } finally {
                        verbs.closeDevice(context);
                    }
                }
                return new RdmaProbeResult.Devices(found, memlock, problems);
            } finally {
                verbs.freeDeviceList(list);
            }
        }
    }

    /** Reads the device, its ports and GID tables through an open context. */
    static Optional<RdmaDevice> describe(Verbs verbs, MemorySegment context, String name, Arena arena) {
        MemorySegment attr = arena.allocate(VerbsLayout.SIZEOF_DEVICE_ATTR, 8);
        if (verbs.queryDevice(context, attr) != 0) {
            return Optional.empty();
        }
        int portCount = Byte.toUnsignedInt(attr.get(JAVA_BYTE, VerbsLayout.DEVICE_ATTR_PHYS_PORT_CNT));
        List<RdmaPort> ports = new ArrayList<>();
        MemorySegment portAttr = arena.allocate(VerbsLayout.SIZEOF_PORT_ATTR, 8);
        MemorySegment gidEntry = arena.allocate(VerbsLayout.SIZEOF_GID_ENTRY, 8);
        for (int p = 1; p <= portCount; p++) {
            if (verbs.queryPort(context, p, portAttr) != 0) {
                continue;
            }
            int tableLength = portAttr.get(JAVA_INT, VerbsLayout.PORT_ATTR_GID_TBL_LEN);
            List<GidEntry> gids = new ArrayList<>();
            for (int g = 0; g < Math.min(tableLength, MAX_GIDS); g++) {
                gidEntry.fill((byte) 0);
                int rc = verbs.queryGidEx(context, p, g, gidEntry);
                if (rc != 0) {
                    continue; // ENODATA: an empty entry
                }
                MemorySegment raw = gidEntry.asSlice(VerbsLayout.GID_ENTRY_GID, 16);
                if (isZero(raw)) {
                    continue;
                }
                gids.add(new GidEntry(
                        g,
                        formatGid(raw),
                        GidType.of(gidEntry.get(JAVA_INT, VerbsLayout.GID_ENTRY_GID_TYPE)),
                        gidEntry.get(JAVA_INT, VerbsLayout.GID_ENTRY_NDEV_IFINDEX)));
            }
            ports.add(new RdmaPort(
                    p,
                    portState(portAttr.get(JAVA_INT, VerbsLayout.PORT_ATTR_STATE)),
                    mtuBytes(portAttr.get(JAVA_INT, VerbsLayout.PORT_ATTR_ACTIVE_MTU)),
                    mtuBytes(portAttr.get(JAVA_INT, VerbsLayout.PORT_ATTR_MAX_MTU)),
                    linkLayer(portAttr.get(JAVA_BYTE, VerbsLayout.PORT_ATTR_LINK_LAYER)),
                    Short.toUnsignedInt(portAttr.get(JAVA_SHORT, VerbsLayout.PORT_ATTR_LID)),
                    tableLength,
                    gids));
        }
        return Optional.of(new RdmaDevice(
                name,
                attr.getString(VerbsLayout.DEVICE_ATTR_FW_VER),
                unsignedCapped(attr.get(JAVA_LONG, VerbsLayout.DEVICE_ATTR_MAX_MR_SIZE)),
                attr.get(JAVA_INT, VerbsLayout.DEVICE_ATTR_MAX_QP),
                attr.get(JAVA_INT, VerbsLayout.DEVICE_ATTR_MAX_QP_WR),
                attr.get(JAVA_INT, VerbsLayout.DEVICE_ATTR_MAX_SGE),
                attr.get(JAVA_INT, VerbsLayout.DEVICE_ATTR_MAX_CQE),
                attr.get(JAVA_INT, VerbsLayout.DEVICE_ATTR_MAX_MR),
                attr.get(JAVA_INT, VerbsLayout.DEVICE_ATTR_MAX_QP_RD_ATOM),
                ports));
    }

    /**
     * What keeps {@code settings} from working on this machine, each with its fix; empty when every NIC, port and GID
     * index it names exists and is usable.
     *
     * @param poolBytes the memory the node will register (0 if not known): checked against the memlock limit
     */
    public static List<RdmaProblem> problems(RdmaProbeResult result, RdmaSettings settings, long poolBytes) {
        List<RdmaProblem> problems = new ArrayList<>();
        long memlock = result.memlockLimitBytes();
        if (memlock >= 0 && (poolBytes > 0 ? memlock < poolBytes : memlock < 64L << 20)) {
            problems.add(new RdmaProblem(
                    "memlock limit is " + memlock + " bytes"
                            + (poolBytes > 0 ? ", the pool to register is " + poolBytes : "")
                            + ": registering memory pins it and fails past the limit",
                    "raise it: ulimit -l unlimited, LimitMEMLOCK=infinity (systemd), --ulimit memlock=-1 (docker),"
                            + " or memlock in /etc/security/limits.conf"));
        }
        switch (result) {
            case RdmaProbeResult.NoDevice none -> problems.add(new RdmaProblem(none.reason(), none.fix()));
            case RdmaProbeResult.Devices found -> {
                problems.addAll(found.problems());
                for (RdmaNic nic : settings.nics()) {
                    problems.addAll(nicProblems(found, nic));
                }
            }
        }
        return problems;
    }

    private static List<RdmaProblem> nicProblems(RdmaProbeResult.Devices found, RdmaNic nic) {
        List<RdmaProblem> out = new ArrayList<>();
        Optional<RdmaDevice> device = resolve(found, nic);
        if (device.isEmpty()) {
            String names =
                    found.devices().stream().map(RdmaDevice::name).toList().toString();
            out.add(new RdmaProblem(
                    nic.device().isEmpty()
                            ? "no device has an active port " + nic.port()
                            : "device " + nic.device() + " does not exist (devices: " + names + ")",
                    "name one of " + names + " in the topology's rdma nics"));
            return out;
        }
        String where = "port " + nic.port() + " of " + device.get().name();
        Optional<RdmaPort> port = device.get().port(nic.port());
        if (port.isEmpty()) {
            out.add(new RdmaProblem(
                    where + " does not exist (" + device.get().ports().size() + " ports)",
                    "name a port from 1 to " + device.get().ports().size()));
            return out;
        }
        RdmaPort p = port.get();
        if (!p.active()) {
            out.add(new RdmaProblem(
                    where + " is " + p.state(),
                    "check the link (cable, switch port, ip link set <netdev> up); ibv_devinfo -d "
                            + device.get().name()));
        }
        if (p.ethernet()) {
            Optional<GidEntry> gid =
                    p.gids().stream().filter(g -> g.index() == nic.gidIndex()).findFirst();
            List<Integer> v2 = p.gids().stream()
                    .filter(g -> g.type() == GidType.ROCE_V2)
                    .map(GidEntry::index)
                    .toList();
            if (gid.isEmpty()) {
                out.add(new RdmaProblem(
                        "GID index " + nic.gidIndex() + " of " + where + " is empty",
                        "use a RoCE v2 GID index: " + v2 + " (show_gids, or give the netdev an IP address)"));
            } else if (gid.get().type() != GidType.ROCE_V2) {
                out.add(new RdmaProblem(
                        "GID index " + nic.gidIndex() + " of " + where + " is "
                                + gid.get().type() + ", not RoCE v2 (routable UDP/IP)",
                        "use a RoCE v2 GID index: " + v2));
            }
        } else if (p.lid() == 0) {
            out.add(new RdmaProblem(
                    where + " (InfiniBand) has no LID",
                    "start a subnet manager on the fabric (opensm) and wait for the port to become ACTIVE"));
        }
        return out;
    }

    /** The device a NIC entry names; the first with that port active when it names none. */
    static Optional<RdmaDevice> resolve(RdmaProbeResult.Devices found, RdmaNic nic) {
        if (!nic.device().isEmpty()) {
            return found.device(nic.device());
        }
        return found.devices().stream()
                .filter(d -> d.port(nic.port()).map(RdmaPort::active).orElse(false))
                .findFirst();
    }

    /** A {@code uint64_t} as a long, values past {@code Long.MAX_VALUE} (software devices say 2^64-1) capped. */
    static long unsignedCapped(long value) {
        return value < 0 ? Long.MAX_VALUE : value;
    }

    static String formatGid(MemorySegment raw) {
        byte[] b = raw.toArray(JAVA_BYTE);
        HexFormat hex = HexFormat.of();
        StringBuilder out = new StringBuilder(39);
        for (int i = 0; i < 16; i += 2) {
            if (i > 0) {
                out.append(':');
            }
            out.append(hex.toHexDigits(b[i])).append(hex.toHexDigits(b[i + 1]));
        }
        return out.toString();
    }

    private static boolean isZero(MemorySegment raw) {
        for (long i = 0; i < raw.byteSize(); i++) {
            if (raw.get(JAVA_BYTE, i) != 0) {
                return false;
            }
        }
        return true;
    }

    static int mtuBytes(int mtuEnum) {
        return mtuEnum >= 1 && mtuEnum <= 5 ? 128 << mtuEnum : 0;
    }

    static String portState(int state) {
        return switch (state) {
            case 0 -> "NOP";
            case 1 -> "DOWN";
            case 2 -> "INIT";
            case 3 -> "ARMED";
            case 4 -> "ACTIVE";
            case 5 -> "ACTIVE_DEFER";
            default -> "UNKNOWN(" + state + ")";
        };
    }

    static String linkLayer(byte layer) {
        return switch (layer) {
            case Verbs.LINK_LAYER_INFINIBAND -> "InfiniBand";
            case Verbs.LINK_LAYER_ETHERNET -> "Ethernet";
            default -> "Unspecified";
        };
    }
}
