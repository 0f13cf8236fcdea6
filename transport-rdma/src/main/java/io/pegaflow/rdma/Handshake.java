package io.pegaflow.rdma;

import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.EOFException;
import java.io.IOException;
import java.util.ArrayList;
import java.util.List;

/**
 * The side channel's messages: the one-time exchange of queue pair parameters (QPN, PSN, LID, GID, MTU) and region
 * keys at connect, then region announcements. Plain {@link DataOutputStream} framing over the TCP connection the
 * dialling node opens to the peer's listener ({@link io.pegaflow.transport.PeerAddress#port()}).
 *
 * <p>A malformed or hostile message is a {@link BadHandshake} value (the connection is closed, the transport goes on),
 * never a crash. Not thread-safe: one reader and one writer per connection.
 */
final class Handshake {
    private Handshake() {}

    static final int MAGIC = 0x5046_5244; // "PFRD"
    /** 2: the hello gives each NIC's queue pair count (1 gave one count for all). */
    static final int VERSION = 2;

    static final int MAX_QPS = 1024;
    static final int MAX_REGIONS = 65_536;
    static final int MAX_CHUNKS = 1 << 20;
    static final int MAX_NODE_ID = 256;

    static final byte REGION_ADDED = 1;
    static final byte REGION_REMOVED = 2;

    /** One queue pair's connection parameters. */
    record QpParams(int qpn, int psn, int lid, byte[] gid, int mtu) {}

    /**
     * The dialler's opening: who it is and its queue pairs, NIC by NIC: {@code qpsPerNic.get(n)} of them on NIC
     * {@code n} (each NIC of the topology may have its own count).
     */
    record Hello(String nodeId, List<Integer> qpsPerNic, List<QpParams> qps) {
        Hello {
            qpsPerNic = List.copyOf(qpsPerNic);
            qps = List.copyOf(qps);
        }

        int nics() {
            return qpsPerNic.size();
        }

        /** The NIC queue pair {@code i} of {@link #qps} is on. */
        int nicOf(int i) {
            int n = 0;
            for (int seen = qpsPerNic.get(0); i >= seen; seen += qpsPerNic.get(n)) {
                n++;
            }
            return n;
        }
    }

    /** The listener's answer: its queue pairs (same shape) and every region it has registered now. */
    record Reply(String nodeId, List<QpParams> qps, List<RegionAdvert> regions) {}

    /**
     * A region as peers need it: the key and range of the description plus the rkey of every registration chunk on
     * every NIC, {@code rkeys[nic][chunk]}.
     */
    record RegionAdvert(int regionId, long key, long base, long length, long chunkBytes, int[][] rkeys) {
        boolean matches(io.pegaflow.transport.RemoteRegion r) {
            return r.regionId() == regionId
                    && r.remoteKey() == key
                    && r.baseAddress() == base
                    && r.lengthBytes() == length;
        }
    }

    /** A message that does not parse or breaks the protocol's bounds. */
    static final class BadHandshake extends Exception {
        BadHandshake(String message) {
            super(message);
        }
    }

    static void writeHello(DataOutputStream out, Hello hello) throws IOException {
        out.writeInt(MAGIC);
        out.writeInt(VERSION);
        out.writeUTF(hello.nodeId());
        out.writeInt(hello.nics());
        for (int count : hello.qpsPerNic()) {
            out.writeInt(count);
        }
        writeQps(out, hello.qps());
        out.flush();
    }

    static Hello readHello(DataInputStream in) throws IOException, BadHandshake {
        readMagic(in);
        String nodeId = readNodeId(in);
        int nics = bounded(in.readInt(), 1, 64, "NIC count");
        List<Integer> qpsPerNic = new java.util.ArrayList<>(nics);
        int expected = 0;
        for (int n = 0; n < nics; n++) {
            int count = bounded(in.readInt(), 1, 64, "queue pairs of NIC " + n);
            qpsPerNic.add(count);
            expected += count;
        }
        List<QpParams> qps = readQps(in);
        if (qps.size() != expected) {
            throw new BadHandshake("hello lists " + qps.size() + " queue pairs, expected " + expected);
        }
        return new Hello(nodeId, qpsPerNic, qps);
    }

    static void writeReply(DataOutputStream out, Reply reply) throws IOException {
        out.writeInt(MAGIC);
        out.writeInt(VERSION);
        out.writeUTF(reply.nodeId());
        writeQps(out, reply.qps());
        out.writeInt(reply.regions().size());
        for (RegionAdvert r : reply.regions()) {
            writeRegion(out, r);
        }
        out.flush();
    }

    /** Refusals travel as a reply with a negative version and a reason. */
    static void writeRefusal(DataOutputStream out, String reason) throws IOException {
        out.writeInt(MAGIC);
        out.writeInt(-1);
        out.writeUTF(reason.length() > 1000 ? reason.substring(0, 1000) : reason);
        out.flush();
    }

    static Reply readReply(DataInputStream in) throws IOException, BadHandshake {
        int magic = in.readInt();
        if (magic != MAGIC) {
            throw new BadHandshake("bad magic 0x" + Integer.toHexString(magic) + " (not a PegaFlow RDMA peer)");
        }
        int version = in.readInt();
        if (version == -1) {
            throw new BadHandshake("refused by the peer: " + in.readUTF());
        }
        if (version != VERSION) {
            throw new BadHandshake("protocol version " + version + ", expected " + VERSION);
        }
        String nodeId = readNodeId(in);
        List<QpParams> qps = readQps(in);
        int count = bounded(in.readInt(), 0, MAX_REGIONS, "region count");
        List<RegionAdvert> regions = new ArrayList<>(count);
        for (int i = 0; i < count; i++) {
            regions.add(readRegion(in));
        }
        return new Reply(nodeId, qps, regions);
    }

    static void writeRegionAdded(DataOutputStream out, RegionAdvert region) throws IOException {
        out.writeByte(REGION_ADDED);
        writeRegion(out, region);
        out.flush();
    }

    static void writeRegionRemoved(DataOutputStream out, int regionId, long key) throws IOException {
        out.writeByte(REGION_REMOVED);
        out.writeInt(regionId);
        out.writeLong(key);
        out.flush();
    }

    private static void readMagic(DataInputStream in) throws IOException, BadHandshake {
        int magic = in.readInt();
        if (magic != MAGIC) {
            throw new BadHandshake("bad magic 0x" + Integer.toHexString(magic) + " (not a PegaFlow RDMA peer)");
        }
        int version = in.readInt();
        if (version != VERSION) {
            throw new BadHandshake("protocol version " + version + ", expected " + VERSION);
        }
    }

    private static String readNodeId(DataInputStream in) throws IOException, BadHandshake {
        String id = in.readUTF();
        if (id.isEmpty() || id.length() > MAX_NODE_ID) {
            throw new BadHandshake("node id of length " + id.length());
        }
        return id;
    }

    private static void writeQps(DataOutputStream out, List<QpParams> qps) throws IOException {
        out.writeInt(qps.size());
        for (QpParams qp : qps) {
            out.writeInt(qp.qpn());
            out.writeInt(qp.psn());
            out.writeShort(qp.lid());
            out.write(qp.gid());
            out.writeByte(qp.mtu());
        }
    }

    private static List<QpParams> readQps(DataInputStream in) throws IOException, BadHandshake {
        int n = bounded(in.readInt(), 1, MAX_QPS, "queue pair count");
        List<QpParams> qps = new ArrayList<>(n);
        for (int i = 0; i < n; i++) {
            int qpn = in.readInt();
            int psn = in.readInt();
            int lid = in.readUnsignedShort();
            byte[] gid = new byte[16];
            in.readFully(gid);
            int mtu = in.readUnsignedByte();
            if ((qpn & ~0xFF_FFFF) != 0 || (psn & ~0xFF_FFFF) != 0 || mtu < 1 || mtu > 5) {
                throw new BadHandshake("queue pair " + i + " has qpn " + qpn + ", psn " + psn + ", mtu " + mtu);
            }
            qps.add(new QpParams(qpn, psn, lid, gid, mtu));
        }
        return qps;
    }

    private static void writeRegion(DataOutputStream out, RegionAdvert r) throws IOException {
        out.writeInt(r.regionId());
        out.writeLong(r.key());
        out.writeLong(r.base());
        out.writeLong(r.length());
        out.writeLong(r.chunkBytes());
        out.writeInt(r.rkeys().length);
        out.writeInt(r.rkeys()[0].length);
        for (int[] perNic : r.rkeys()) {
            for (int rkey : perNic) {
                out.writeInt(rkey);
            }
        }
    }

    static RegionAdvert readRegion(DataInputStream in) throws IOException, BadHandshake {
        int id = in.readInt();
        long key = in.readLong();
        long base = in.readLong();
        long length = in.readLong();
        long chunk = in.readLong();
        int nics = bounded(in.readInt(), 1, 64, "region NIC count");
        int chunks = bounded(in.readInt(), 1, MAX_CHUNKS, "region chunk count");
        if (id < 0 || length <= 0 || chunk <= 0 || (length + chunk - 1) / chunk != chunks) {
            throw new BadHandshake("region " + id + " of " + length + " bytes in " + chunks + " chunks of " + chunk);
        }
        int[][] rkeys = new int[nics][chunks];
        for (int n = 0; n < nics; n++) {
            for (int c = 0; c < chunks; c++) {
                rkeys[n][c] = in.readInt();
            }
        }
        return new RegionAdvert(id, key, base, length, chunk, rkeys);
    }

    private static int bounded(int value, int min, int max, String what) throws BadHandshake {
        if (value < min || value > max) {
            throw new BadHandshake(what + " " + value + " outside [" + min + ", " + max + "]");
        }
        return value;
    }

    /** EOF in the middle of a message is a bad handshake too. */
    static BadHandshake truncated(EOFException e) {
        return new BadHandshake("the connection ended inside a message");
    }
}
