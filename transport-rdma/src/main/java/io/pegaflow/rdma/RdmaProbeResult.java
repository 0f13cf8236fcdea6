package io.pegaflow.rdma;

import java.util.List;
import java.util.Optional;

/** What {@link RdmaProbe#probe()} found: the devices, or why there are none. Never an exception. */
public sealed interface RdmaProbeResult {

    /** {@code RLIMIT_MEMLOCK} of this process in bytes; -1 unlimited (memory registration pins pages against it). */
    long memlockLimitBytes();

    /**
     * Devices were found.
     *
     * @param devices every device, in the library's order
     * @param memlockLimitBytes the soft memlock limit (-1 unlimited)
     * @param problems devices that were listed but could not be opened or queried, named with their fix
     */
    record Devices(List<RdmaDevice> devices, long memlockLimitBytes, List<RdmaProblem> problems)
            implements RdmaProbeResult {
        public Devices {
            devices = List.copyOf(devices);
            problems = List.copyOf(problems);
        }

        public Optional<RdmaDevice> device(String name) {
            return devices.stream().filter(d -> d.name().equals(name)).findFirst();
        }
    }

    /**
     * No usable device: no library, no kernel support ({@code ENOSYS}) or an empty list.
     *
     * @param reason what was seen, starting "no RDMA device: "
     * @param fix what to install or load
     * @param errno the errno of {@code ibv_get_device_list} (0 if none or not reached)
     * @param memlockLimitBytes the soft memlock limit (-1 unlimited)
     */
    record NoDevice(String reason, String fix, int errno, long memlockLimitBytes) implements RdmaProbeResult {}
}
