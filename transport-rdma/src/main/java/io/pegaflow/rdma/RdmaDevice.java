package io.pegaflow.rdma;

import java.util.List;
import java.util.Optional;

/**
 * One RDMA device as {@code ibv_query_device} reports it, with its ports.
 *
 * @param name the device name ({@code mlx5_0}, {@code rxe0})
 * @param firmware the firmware version string (empty for software devices)
 * @param maxMrSize the longest memory region one registration may cover ({@code max_mr_size}); the transport splits
 *     a longer pool into several registrations
 * @param maxQp queue pairs the device supports
 * @param maxQpWr work requests per queue pair
 * @param maxSge scatter-gather entries per work request
 * @param maxCqe entries per completion queue
 * @param maxMr memory regions
 * @param maxQpRdAtom RDMA READs one queue pair may have outstanding as the target
 * @param ports the device's ports
 */
public record RdmaDevice(
        String name,
        String firmware,
        long maxMrSize,
        int maxQp,
        int maxQpWr,
        int maxSge,
        int maxCqe,
        int maxMr,
        int maxQpRdAtom,
        List<RdmaPort> ports) {

    public RdmaDevice {
        ports = List.copyOf(ports);
    }

    public Optional<RdmaPort> port(int number) {
        return ports.stream().filter(p -> p.port() == number).findFirst();
    }
}
