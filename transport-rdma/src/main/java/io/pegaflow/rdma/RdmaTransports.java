package io.pegaflow.rdma;

import io.pegaflow.transport.TransportException;
import io.pegaflow.transport.TransportSettings;
import java.util.List;
import java.util.stream.Collectors;

/**
 * Builds the RDMA transport from settings. What the node calls for {@code transport: rdma}; a caller that allows a
 * TCP fallback checks {@link #available} (or catches the exception) and builds a TCP transport instead.
 */
public final class RdmaTransports {
    private RdmaTransports() {}

    /**
     * Probes the machine and builds an unstarted transport on the NICs {@code rdma} names. Control path (opens the
     * devices, allocates protection domains and completion queues).
     *
     * @throws TransportException with every problem and its fix when there is no device, a NIC, port or GID index the
     *     settings name is missing or unusable, or the library's struct layouts differ from the binding's (the
     *     message starts "RDMA unavailable: ")
     */
    public static RdmaTransport create(TransportSettings transport, RdmaSettings rdma) {
        RdmaProbeResult probe = RdmaProbe.probe();
        List<RdmaProblem> problems = RdmaProbe.problems(probe, rdma, 0).stream()
                .filter(p -> !p.problem().startsWith("memlock limit")) // registration reports its own failure
                .toList();
        if (!problems.isEmpty()) {
            throw new TransportException("RDMA unavailable: "
                    + problems.stream()
                            .map(p -> p.problem() + " (fix: " + p.fix() + ")")
                            .collect(Collectors.joining("; ")));
        }
        return new RdmaTransport(transport, rdma, (RdmaProbeResult.Devices) probe);
    }

    /** Whether {@link #create} would find what {@code rdma} names; the problems otherwise (never throws). */
    public static List<RdmaProblem> available(RdmaSettings rdma) {
        return RdmaProbe.problems(RdmaProbe.probe(), rdma, 0).stream()
                .filter(p -> !p.problem().startsWith("memlock limit"))
                .toList();
    }
}
