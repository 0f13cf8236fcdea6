package io.pegaflow.rdma;

/** The type of a GID table entry ({@code enum ibv_gid_type_sysfs}); RoCE v2 is what a routed Ethernet fabric needs. */
public enum GidType {
    /** InfiniBand (or RoCE v1 on an Ethernet port: the same value in the kernel's table). */
    IB,
    ROCE_V1,
    ROCE_V2,
    /** The library could not tell (no {@code _ibv_query_gid_ex} support). */
    UNKNOWN;

    static GidType of(int code) {
        return switch (code) {
            case 0 -> IB;
            case 1 -> ROCE_V1;
            case 2 -> ROCE_V2;
            default -> UNKNOWN;
        };
    }
}
