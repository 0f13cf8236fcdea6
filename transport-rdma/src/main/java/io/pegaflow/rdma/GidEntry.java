package io.pegaflow.rdma;

/**
 * One non-empty entry of a port's GID table.
 *
 * @param index the GID index (what the topology's {@code gidIndex} names)
 * @param gid the 16 bytes as eight colon-separated groups of four hex digits ({@code 0000:...:ffff:0a00:020f})
 * @param type IB, RoCE v1 or RoCE v2
 * @param netdevIfindex the network interface the entry belongs to (RoCE), 0 if none
 */
public record GidEntry(int index, String gid, GidType type, int netdevIfindex) {

    /** The IPv4 address inside an IPv4-mapped GID ({@code ::ffff:a.b.c.d}), or empty if it is not one. */
    public String ipv4() {
        String[] g = gid.split(":");
        if (g.length != 8 || !g[5].equals("ffff") || !(g[0] + g[1] + g[2] + g[3] + g[4]).matches("0+")) {
            return "";
        }
        int hi = Integer.parseInt(g[6], 16);
        int lo = Integer.parseInt(g[7], 16);
        return (hi >> 8) + "." + (hi & 0xff) + "." + (lo >> 8) + "." + (lo & 0xff);
    }
}
