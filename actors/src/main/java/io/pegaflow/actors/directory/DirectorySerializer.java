package io.pegaflow.actors.directory;

import java.io.NotSerializableException;
import java.nio.BufferUnderflowException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import org.apache.pekko.actor.ExtendedActorSystem;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.ActorRefResolver;
import org.apache.pekko.actor.typed.javadsl.Adapter;
import org.apache.pekko.serialization.ByteBufferSerializer;
import org.apache.pekko.serialization.SerializerWithStringManifest;

/**
 * Pekko serializer of the directory's messages ({@link DirectoryWire}): fixed fields little-endian, arrays as a length
 * and their elements copied in bulk, actor refs as their serialization format. A lookup of a few hundred fingerprints
 * and its reply cost a few microseconds here, where Jackson CBOR parsed every element as a token (the largest single
 * cost of a remote {@code Locate}, see {@code bench/results/locate-grpc.md}). Writes straight into Artery's buffers
 * ({@link ByteBufferSerializer}). A malformed message fails with {@link NotSerializableException} (Artery drops it and
 * logs); nothing is trusted: lengths are checked against the bytes present before anything is allocated.
 *
 * <p>Stateless apart from the ref resolver; safe from any thread.
 */
public final class DirectorySerializer extends SerializerWithStringManifest implements ByteBufferSerializer {
    /** Pekko serializer id; ids 0–40 are Pekko's own. */
    static final int IDENTIFIER = 7_401_001;

    private static final String PUBLISH = "P";
    private static final String LOOKUP = "L";
    private static final String PURGE = "N";
    private static final String HOLDINGS = "H";
    private static final String WAKE = "W";
    private static final String GET_STATS = "S";
    private static final String LOOKUP_REPLY = "LR";
    private static final String RANGE_STATS = "RS";
    private static final String GET_HOLDINGS = "GH";
    // "2": with the request id that routes the reply to one long-lived collector (the first forms had none).
    private static final String RELAY_LOOKUP = "RL2";
    private static final String RELAY_REPLY = "RR2";

    private final ExtendedActorSystem system;
    private volatile ActorRefResolver resolver;

    public DirectorySerializer(ExtendedActorSystem system) {
        this.system = system;
    }

    @Override
    public int identifier() {
        return IDENTIFIER;
    }

    @Override
    public String manifest(Object o) {
        return switch (o) {
            case BlockRange.Command.Publish p -> PUBLISH;
            case BlockRange.Command.Lookup l -> LOOKUP;
            case BlockRange.Command.PurgeNode p -> PURGE;
            case BlockRange.Command.Holdings h -> HOLDINGS;
            case BlockRange.Command.Wake w -> WAKE;
            case BlockRange.Command.GetStats g -> GET_STATS;
            case BlockRange.LookupReply r -> LOOKUP_REPLY;
            case BlockRange.RangeStats s -> RANGE_STATS;
            case HoldingsProvider.Command.GetHoldings g -> GET_HOLDINGS;
            case LookupRelay.Command.RelayLookup l -> RELAY_LOOKUP;
            case LookupRelay.RelayReply r -> RELAY_REPLY;
            default ->
                throw new IllegalArgumentException(
                        "not a directory message: " + o.getClass().getName());
        };
    }

    @Override
    public byte[] toBinary(Object o) {
        byte[] bytes = new byte[sizeOf(o)];
        ByteBuffer buf = ByteBuffer.wrap(bytes);
        toBinary(o, buf);
        if (buf.hasRemaining()) {
            throw new IllegalStateException("size of " + o.getClass().getName() + " miscounted");
        }
        return bytes;
    }

    @Override
    public void toBinary(Object o, ByteBuffer buf) {
        ByteOrder order = buf.order();
        buf.order(ByteOrder.LITTLE_ENDIAN);
        try {
            write(o, buf);
        } finally {
            buf.order(order);
        }
    }

    @Override
    public Object fromBinary(byte[] bytes, String manifest) throws NotSerializableException {
        return fromBinary(ByteBuffer.wrap(bytes), manifest);
    }

    @Override
    public Object fromBinary(ByteBuffer buf, String manifest) throws NotSerializableException {
        ByteOrder order = buf.order();
        buf.order(ByteOrder.LITTLE_ENDIAN);
        try {
            return read(buf, manifest);
        } catch (BufferUnderflowException | IllegalArgumentException e) {
            NotSerializableException failure =
                    new NotSerializableException("malformed directory message " + manifest + ": " + e);
            failure.initCause(e);
            throw failure;
        } finally {
            buf.order(order);
        }
    }

    private int sizeOf(Object o) {
        return switch (o) {
            case BlockRange.Command.Publish p -> 4 + 8 + 8 + longs(p.added()) + longs(p.removed());
            case BlockRange.Command.Lookup l -> longs(l.fingerprints()) + 8 + ref(l.replyTo());
            case BlockRange.Command.PurgeNode p -> 4 + 8;
            case BlockRange.Command.Holdings h -> 4 + 8 + 8 + 8 + 4 + 1 + longs(h.fingerprints());
            case BlockRange.Command.Wake w -> 4;
            case BlockRange.Command.GetStats g -> ref(g.replyTo());
            case BlockRange.LookupReply r -> 4 + 8 + longs(r.holderMasks()) + 1 + 4;
            case BlockRange.RangeStats s -> 4 + 4 + 4 + 8 + 1 + 4 + 8 + 8 + 8;
            case HoldingsProvider.Command.GetHoldings g -> 4 + 4 + 8 + ref(g.replyTo());
            case LookupRelay.Command.RelayLookup l ->
                ints(l.ranges()) + ints(l.counts()) + longs(l.fingerprints()) + 8 + 8 + ref(l.replyTo());
            case LookupRelay.RelayReply r -> 8 + longs(r.holderMasks()) + 4 + r.complete().length + ints(r.hostNodes());
            default ->
                throw new IllegalArgumentException(
                        "not a directory message: " + o.getClass().getName());
        };
    }

    private void write(Object o, ByteBuffer buf) {
        switch (o) {
            case BlockRange.Command.Publish p -> {
                buf.putInt(p.node()).putLong(p.incarnation()).putLong(p.sequence());
                putLongs(buf, p.added());
                putLongs(buf, p.removed());
            }
            case BlockRange.Command.Lookup l -> {
                putLongs(buf, l.fingerprints());
                buf.putLong(l.requestId());
                putRef(buf, l.replyTo());
            }
            case BlockRange.Command.PurgeNode p -> buf.putInt(p.node()).putLong(p.incarnation());
            case BlockRange.Command.Holdings h -> {
                buf.putInt(h.node())
                        .putLong(h.incarnation())
                        .putLong(h.requestId())
                        .putLong(h.sequence());
                buf.putInt(h.chunk()).put((byte) (h.last() ? 1 : 0));
                putLongs(buf, h.fingerprints());
            }
            case BlockRange.Command.Wake w -> buf.putInt(w.fromNode());
            case BlockRange.Command.GetStats g -> putRef(buf, g.replyTo());
            case BlockRange.LookupReply r -> {
                buf.putInt(r.range()).putLong(r.requestId());
                putLongs(buf, r.holderMasks());
                buf.put((byte) (r.complete() ? 1 : 0)).putInt(r.hostNode());
            }
            case BlockRange.RangeStats s -> {
                buf.putInt(s.range()).putInt(s.hostNode()).putInt(s.entries()).putLong(s.tableBytes());
                buf.put((byte) (s.complete() ? 1 : 0)).putInt(s.liveNodes());
                buf.putLong(s.snapshotsApplied()).putLong(s.ignoredMessages()).putLong(s.resyncs());
            }
            case HoldingsProvider.Command.GetHoldings g -> {
                buf.putInt(g.range()).putInt(g.rangeCount()).putLong(g.requestId());
                putRef(buf, g.replyTo());
            }
            case LookupRelay.Command.RelayLookup l -> {
                putInts(buf, l.ranges());
                putInts(buf, l.counts());
                putLongs(buf, l.fingerprints());
                buf.putLong(l.timeoutMs());
                buf.putLong(l.requestId());
                putRef(buf, l.replyTo());
            }
            case LookupRelay.RelayReply r -> {
                buf.putLong(r.requestId());
                putLongs(buf, r.holderMasks());
                buf.putInt(r.complete().length);
                for (boolean c : r.complete()) {
                    buf.put((byte) (c ? 1 : 0));
                }
                putInts(buf, r.hostNodes());
            }
            default ->
                throw new IllegalArgumentException(
                        "not a directory message: " + o.getClass().getName());
        }
    }

    private Object read(ByteBuffer buf, String manifest) throws NotSerializableException {
        Object message = switch (manifest) {
            case PUBLISH ->
                new BlockRange.Command.Publish(
                        buf.getInt(), buf.getLong(), buf.getLong(), getLongs(buf), getLongs(buf));
            case LOOKUP -> new BlockRange.Command.Lookup(getLongs(buf), buf.getLong(), getRef(buf));
            case PURGE -> new BlockRange.Command.PurgeNode(buf.getInt(), buf.getLong());
            case HOLDINGS ->
                new BlockRange.Command.Holdings(
                        buf.getInt(),
                        buf.getLong(),
                        buf.getLong(),
                        buf.getLong(),
                        buf.getInt(),
                        getBoolean(buf),
                        getLongs(buf));
            case WAKE -> new BlockRange.Command.Wake(buf.getInt());
            case GET_STATS -> new BlockRange.Command.GetStats(getRef(buf));
            case LOOKUP_REPLY ->
                new BlockRange.LookupReply(buf.getInt(), buf.getLong(), getLongs(buf), getBoolean(buf), buf.getInt());
            case RANGE_STATS ->
                new BlockRange.RangeStats(
                        buf.getInt(),
                        buf.getInt(),
                        buf.getInt(),
                        buf.getLong(),
                        getBoolean(buf),
                        buf.getInt(),
                        buf.getLong(),
                        buf.getLong(),
                        buf.getLong());
            case GET_HOLDINGS ->
                new HoldingsProvider.Command.GetHoldings(buf.getInt(), buf.getInt(), buf.getLong(), getRef(buf));
            case RELAY_LOOKUP ->
                new LookupRelay.Command.RelayLookup(
                        getInts(buf), getInts(buf), getLongs(buf), buf.getLong(), buf.getLong(), getRef(buf));
            case RELAY_REPLY ->
                new LookupRelay.RelayReply(buf.getLong(), getLongs(buf), getBooleans(buf), getInts(buf));
            default -> throw new NotSerializableException("unknown directory message manifest " + manifest);
        };
        if (buf.hasRemaining()) {
            throw new NotSerializableException(
                    "directory message " + manifest + ": " + buf.remaining() + " trailing bytes");
        }
        return message;
    }

    private static int longs(long[] a) {
        return 4 + 8 * a.length;
    }

    private static int ints(int[] a) {
        return 4 + 4 * a.length;
    }

    private int ref(ActorRef<?> ref) {
        return 4 + refBytes(ref).length;
    }

    private static void putLongs(ByteBuffer buf, long[] a) {
        buf.putInt(a.length);
        buf.asLongBuffer().put(a);
        buf.position(buf.position() + 8 * a.length);
    }

    private static void putInts(ByteBuffer buf, int[] a) {
        buf.putInt(a.length);
        buf.asIntBuffer().put(a);
        buf.position(buf.position() + 4 * a.length);
    }

    private void putRef(ByteBuffer buf, ActorRef<?> ref) {
        byte[] bytes = refBytes(ref);
        buf.putInt(bytes.length).put(bytes);
    }

    private static long[] getLongs(ByteBuffer buf) {
        long[] a = new long[length(buf, 8)];
        buf.asLongBuffer().get(a);
        buf.position(buf.position() + 8 * a.length);
        return a;
    }

    private static int[] getInts(ByteBuffer buf) {
        int[] a = new int[length(buf, 4)];
        buf.asIntBuffer().get(a);
        buf.position(buf.position() + 4 * a.length);
        return a;
    }

    private static boolean[] getBooleans(ByteBuffer buf) {
        boolean[] a = new boolean[length(buf, 1)];
        for (int i = 0; i < a.length; i++) {
            a[i] = getBoolean(buf);
        }
        return a;
    }

    private static boolean getBoolean(ByteBuffer buf) {
        byte b = buf.get();
        if (b != 0 && b != 1) {
            throw new IllegalArgumentException("boolean byte " + b);
        }
        return b == 1;
    }

    /** A length prefix, checked against the bytes left so a corrupt length cannot allocate a huge array. */
    private static int length(ByteBuffer buf, int elementBytes) {
        int n = buf.getInt();
        if (n < 0 || (long) n * elementBytes > buf.remaining()) {
            throw new IllegalArgumentException(
                    "array of " + n + " elements of " + elementBytes + " bytes, " + buf.remaining() + " bytes left");
        }
        return n;
    }

    private <T> ActorRef<T> getRef(ByteBuffer buf) {
        byte[] bytes = new byte[length(buf, 1)];
        buf.get(bytes);
        return resolver().resolveActorRef(new String(bytes, StandardCharsets.UTF_8));
    }

    private byte[] refBytes(ActorRef<?> ref) {
        return resolver().toSerializationFormat(ref).getBytes(StandardCharsets.UTF_8);
    }

    /** Made on first use: the typed system's extension is not ready while serializers are being created. */
    private ActorRefResolver resolver() {
        ActorRefResolver r = resolver;
        if (r == null) {
            r = ActorRefResolver.get(Adapter.toTyped(system));
            resolver = r;
        }
        return r;
    }
}
