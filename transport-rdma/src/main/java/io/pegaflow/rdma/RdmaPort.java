package io.pegaflow.rdma;

import java.util.List;

/**
 * One port of an RDMA device, as {@code ibv_query_port} and the GID table report it.
 *
 * @param port the port number (from 1)
 * @param state {@code DOWN}, {@code INIT}, {@code ARMED}, {@code ACTIVE}, ... ({@code enum ibv_port_state})
 * @param activeMtuBytes the active path MTU in bytes (256..4096)
 * @param maxMtuBytes the largest MTU the port supports
 * @param linkLayer {@code InfiniBand}, {@code Ethernet} (RoCE) or {@code Unspecified}
 * @param lid the port's LID (InfiniBand; 0 on RoCE)
 * @param gidTableLength the size of the GID table
 * @param gids the non-empty GID entries with their types
 */
public record RdmaPort(
        int port,
        String state,
        int activeMtuBytes,
        int maxMtuBytes,
        String linkLayer,
        int lid,
        int gidTableLength,
        List<GidEntry> gids) {

    public RdmaPort {
        gids = List.copyOf(gids);
    }

    public boolean active() {
        return state.equals("ACTIVE");
    }

    public boolean ethernet() {
        return linkLayer.equals("Ethernet");
    }
}
