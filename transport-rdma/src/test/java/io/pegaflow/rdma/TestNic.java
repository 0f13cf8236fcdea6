package io.pegaflow.rdma;

import java.util.Optional;

/**
 * Which NIC the device tests use: {@code -Dpegaflow.rdma.device} / {@code -Dpegaflow.rdma.gidIndex} when given, else
 * the first device with an active port 1 and its first IPv4 RoCE v2 GID (index 1 in the Soft-RoCE VM), or GID 0 on
 * InfiniBand. Empty, with the probe's reason, where there is no device: the tests skip, saying why.
 */
final class TestNic {
    private TestNic() {}

    private static final RdmaProbeResult PROBE = RdmaProbe.probe();

    static Optional<RdmaSettings> settings() {
        if (!(PROBE instanceof RdmaProbeResult.Devices found)) {
            return Optional.empty();
        }
        String device = System.getProperty("pegaflow.rdma.device", "");
        String gid = System.getProperty("pegaflow.rdma.gidIndex", "");
        Optional<RdmaDevice> d = RdmaProbe.resolve(found, new RdmaNic(device, 1, 0));
        if (d.isEmpty()) {
            return Optional.empty();
        }
        RdmaPort port = d.get().port(1).orElseThrow();
        int index = !gid.isEmpty()
                ? Integer.parseInt(gid)
                : port.ethernet()
                        ? port.gids().stream()
                                .filter(g ->
                                        g.type() == GidType.ROCE_V2 && !g.ipv4().isEmpty())
                                .mapToInt(GidEntry::index)
                                .findFirst()
                                .orElse(1)
                        : 0;
        return Optional.of(RdmaSettings.of(d.get().name(), 1, index));
    }

    /** Why there is no device to test on ("" when there is one). */
    static String whyNone() {
        return switch (PROBE) {
            case RdmaProbeResult.NoDevice none -> none.reason() + " (these tests run inside the Soft-RoCE VM)";
            case RdmaProbeResult.Devices found ->
                settings().isPresent()
                        ? ""
                        : "no RDMA device with an active port 1 (these tests run inside the Soft-RoCE VM)";
        };
    }
}
