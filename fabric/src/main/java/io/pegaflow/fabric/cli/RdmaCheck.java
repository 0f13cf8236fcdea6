package io.pegaflow.fabric.cli;

import io.pegaflow.config.ByteSize;
import io.pegaflow.rdma.GidEntry;
import io.pegaflow.rdma.RdmaDevice;
import io.pegaflow.rdma.RdmaNic;
import io.pegaflow.rdma.RdmaPort;
import io.pegaflow.rdma.RdmaProbe;
import io.pegaflow.rdma.RdmaProbeResult;
import io.pegaflow.rdma.RdmaProblem;
import io.pegaflow.rdma.RdmaSettings;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * What {@code pegaflow rdma-check} found: the probe, the NICs it was asked about (from a topology or {@code --nic})
 * with their problems, and the machine-wide problems, as text or as a JSON tree. Pure: built from values, so a test
 * can hand it any probe result.
 *
 * @param probe what {@link RdmaProbe#probe()} returned
 * @param nics the NICs to check, possibly none
 * @param context where the NICs came from ("topology cluster.yaml node n1"), empty for none
 * @param transportNote a note about the node's transport (e.g. that it is tcp), empty for none
 * @param poolBytes the memory the node will register (0 unknown), checked against the memlock limit
 * @param canLockMemory whether this process may pin memory past the memlock limit ({@code CAP_IPC_LOCK})
 */
record RdmaCheck(
        RdmaProbeResult probe,
        List<RdmaNic> nics,
        String context,
        String transportNote,
        long poolBytes,
        boolean canLockMemory) {

    /** Every problem, machine-wide ones first, then per NIC; empty when the check passes. */
    List<RdmaProblem> problems() {
        List<RdmaProblem> all = new ArrayList<>(machineProblems());
        for (RdmaNic nic : nics) {
            all.addAll(nicProblems(nic));
        }
        return all;
    }

    /** No device (with its reason), devices that cannot be opened, a memlock limit too low for the pool. */
    List<RdmaProblem> machineProblems() {
        List<RdmaProblem> out = new ArrayList<>();
        if (!canLockMemory) {
            RdmaProbe.problems(probe, RdmaSettings.of("", 1, 0), poolBytes).stream()
                    .filter(RdmaCheck::isMemlock)
                    .forEach(out::add);
        }
        switch (probe) {
            case RdmaProbeResult.NoDevice none -> out.add(new RdmaProblem(none.reason(), none.fix()));
            case RdmaProbeResult.Devices found -> out.addAll(found.problems());
        }
        return out;
    }

    /** What is wrong with one NIC (it does not exist, port down, GID index empty or not RoCE v2, no LID). */
    List<RdmaProblem> nicProblems(RdmaNic nic) {
        if (!(probe instanceof RdmaProbeResult.Devices found)) {
            return List.of(); // the machine-wide "no RDMA device" says it all
        }
        RdmaSettings one = RdmaSettings.of(nic.device(), nic.port(), nic.gidIndex());
        List<RdmaProblem> out = new ArrayList<>();
        for (RdmaProblem p : RdmaProbe.problems(probe, one, 0)) {
            if (!isMemlock(p) && !found.problems().contains(p)) {
                out.add(p);
            }
        }
        return out;
    }

    private static boolean isMemlock(RdmaProblem p) {
        return p.problem().startsWith("memlock limit");
    }

    String text() {
        StringBuilder out = new StringBuilder();
        out.append("memlock limit: ").append(memlock(probe.memlockLimitBytes()));
        if (canLockMemory && probe.memlockLimitBytes() >= 0) {
            out.append(" (not enforced: this process has CAP_IPC_LOCK)");
        }
        out.append('\n');
        switch (probe) {
            case RdmaProbeResult.NoDevice none ->
                out.append("devices: none (").append(none.reason()).append(")\n");
            case RdmaProbeResult.Devices found -> {
                out.append("devices: ").append(found.devices().size()).append('\n');
                for (RdmaDevice d : found.devices()) {
                    device(out, d);
                }
            }
        }
        if (!context.isEmpty()) {
            out.append('\n').append(context).append(":\n");
            if (!transportNote.isEmpty()) {
                out.append("  ").append(transportNote).append('\n');
            }
            for (RdmaNic nic : nics) {
                List<RdmaProblem> problems = nicProblems(nic);
                out.append("  nic ")
                        .append(nic.device().isEmpty() ? "(any)" : nic.device())
                        .append(" port ")
                        .append(nic.port())
                        .append(" gidIndex ")
                        .append(nic.gidIndex())
                        .append(": ")
                        .append(
                                probe instanceof RdmaProbeResult.NoDevice
                                        ? "no device"
                                        : problems.isEmpty() ? "OK" : problems.size() + " problem(s)")
                        .append('\n');
            }
        }
        List<RdmaProblem> problems = problems();
        out.append('\n');
        if (problems.isEmpty()) {
            out.append("OK: no problems found\n");
        } else {
            out.append(problems.size()).append(problems.size() == 1 ? " problem:\n" : " problems:\n");
            for (RdmaProblem p : problems) {
                out.append("  - ").append(p.problem()).append('\n');
                out.append("    fix: ").append(p.fix()).append('\n');
            }
        }
        return out.toString();
    }

    private static void device(StringBuilder out, RdmaDevice d) {
        out.append("  ")
                .append(d.name())
                .append(": firmware ")
                .append(d.firmware().isEmpty() ? "-" : d.firmware())
                .append(", max_mr_size ")
                .append(ByteSize.format(d.maxMrSize()))
                .append(", max_qp ")
                .append(d.maxQp())
                .append(", max_qp_wr ")
                .append(d.maxQpWr())
                .append(", max_sge ")
                .append(d.maxSge())
                .append('\n');
        for (RdmaPort p : d.ports()) {
            out.append("    port ")
                    .append(p.port())
                    .append(": ")
                    .append(p.state())
                    .append(", ")
                    .append(p.ethernet() ? "Ethernet (RoCE)" : p.linkLayer())
                    .append(", MTU ")
                    .append(p.activeMtuBytes())
                    .append(" (max ")
                    .append(p.maxMtuBytes())
                    .append(")");
            if (!p.ethernet()) {
                out.append(", LID ").append(p.lid());
            }
            out.append(", GID table ").append(p.gidTableLength()).append('\n');
            for (GidEntry g : p.gids()) {
                out.append(String.format("      gid %3d  %-39s  %-8s", g.index(), g.gid(), g.type()));
                if (!g.ipv4().isEmpty()) {
                    out.append("  ").append(g.ipv4());
                }
                out.append('\n');
            }
        }
    }

    /** The same content as {@link #text()}, as maps and lists for Jackson. */
    Map<String, Object> json() {
        Map<String, Object> root = new LinkedHashMap<>();
        root.put("ok", problems().isEmpty());
        root.put("memlockLimitBytes", probe.memlockLimitBytes());
        root.put("canLockMemory", canLockMemory);
        List<Object> devices = new ArrayList<>();
        switch (probe) {
            case RdmaProbeResult.NoDevice none -> {
                Map<String, Object> noDevice = new LinkedHashMap<>();
                noDevice.put("reason", none.reason());
                noDevice.put("fix", none.fix());
                noDevice.put("errno", none.errno());
                root.put("noDevice", noDevice);
            }
            case RdmaProbeResult.Devices found -> devices.addAll(found.devices());
        }
        root.put("devices", devices);
        if (!context.isEmpty()) {
            Map<String, Object> checked = new LinkedHashMap<>();
            checked.put("source", context);
            checked.put("note", transportNote);
            List<Object> nicList = new ArrayList<>();
            for (RdmaNic nic : nics) {
                Map<String, Object> n = new LinkedHashMap<>();
                n.put("device", nic.device());
                n.put("port", nic.port());
                n.put("gidIndex", nic.gidIndex());
                List<RdmaProblem> problems = nicProblems(nic);
                n.put("usable", probe instanceof RdmaProbeResult.Devices && problems.isEmpty());
                n.put("problems", problems);
                nicList.add(n);
            }
            checked.put("nics", nicList);
            root.put("checked", checked);
        }
        root.put("problems", problems());
        return root;
    }

    private static String memlock(long bytes) {
        return bytes < 0 ? "unlimited" : ByteSize.format(bytes);
    }
}
