package io.pegaflow.actors.directory;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.NotSerializableException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Arrays;
import java.util.List;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.apache.pekko.actor.testkit.typed.javadsl.TestProbe;
import org.apache.pekko.actor.typed.javadsl.Adapter;
import org.apache.pekko.serialization.Serialization;
import org.apache.pekko.serialization.SerializationExtension;
import org.apache.pekko.serialization.Serializer;
import org.apache.pekko.serialization.Serializers;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.Timeout;

/** {@link DirectorySerializer} through Pekko's own serialization extension (so the config binding is tested too). */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
@Timeout(60)
class DirectorySerializerTest {
    private ActorTestKit kit;
    private Serialization serialization;

    @BeforeAll
    void start() {
        kit = ActorTestKit.create();
        serialization = SerializationExtension.get(Adapter.toClassic(kit.system()));
    }

    @AfterAll
    void stop() {
        kit.shutdownTestKit();
    }

    @Test
    void shouldRoundTripEveryDirectoryMessageThroughTheBinarySerializer() {
        TestProbe<BlockRange.LookupReply> replies = kit.createTestProbe();
        TestProbe<BlockRange.RangeStats> stats = kit.createTestProbe();
        TestProbe<BlockRange.Command> range = kit.createTestProbe();
        TestProbe<LookupRelay.RelayReply> relay = kit.createTestProbe();
        long[] fps = {1, -1, Long.MIN_VALUE, Long.MAX_VALUE, 0x0123_4567_89ab_cdefL};
        List<Object> messages = List.of(
                new BlockRange.Command.Publish(3, 77L, 9L, fps, new long[] {5}),
                new BlockRange.Command.Publish(0, 1L, 1L, new long[0], new long[0]),
                new BlockRange.Command.Lookup(fps, 42L, replies.getRef()),
                new BlockRange.Command.PurgeNode(63, -5L),
                new BlockRange.Command.Holdings(2, 8L, 11L, 12L, 3, true, fps),
                new BlockRange.Command.Wake(1),
                new BlockRange.Command.GetStats(stats.getRef()),
                new BlockRange.LookupReply(255, 43L, fps, true, 2),
                new BlockRange.RangeStats(1, 2, 3, 4L, false, 5, 6L, 7L, 8L),
                new HoldingsProvider.Command.GetHoldings(7, 256, 99L, range.getRef()),
                new LookupRelay.Command.RelayLookup(new int[] {4, 9}, new int[] {2, 3}, fps, 1600L, relay.getRef()),
                new LookupRelay.RelayReply(fps, new boolean[] {true, false}, new int[] {1, -1}),
                new LookupRelay.Command.RelayLookup(
                        new int[] {4}, new int[] {5}, fps, 1600L, Long.MIN_VALUE + 7, relay.getRef()),
                new LookupRelay.RelayReply(-3L, fps, new boolean[] {true}, new int[] {0}));
        for (Object m : messages) {
            Serializer serializer = serialization.findSerializerFor(m);
            assertInstanceOf(DirectorySerializer.class, serializer, m.getClass().getName());
            String manifest = Serializers.manifestFor(serializer, m);
            byte[] bytes = serialization.serialize(m).get();
            Object back = serialization
                    .deserialize(bytes, serializer.identifier(), manifest)
                    .get();
            assertEquals(describe(m), describe(back), m.getClass().getName());
            ByteBuffer buf = ByteBuffer.allocate(bytes.length + 16).order(ByteOrder.BIG_ENDIAN);
            ((DirectorySerializer) serializer).toBinary(m, buf);
            assertEquals(bytes.length, buf.position(), "ByteBuffer path writes the same bytes: " + manifest);
            assertEquals(ByteOrder.BIG_ENDIAN, buf.order(), "the caller's byte order is restored");
        }
    }

    @Test
    void shouldRefuseATruncatedOrOversizedMessageWithoutAllocatingIt() throws Exception {
        DirectorySerializer serializer =
                (DirectorySerializer) serialization.findSerializerFor(new BlockRange.Command.Wake(0));
        byte[] publish = serializer.toBinary(new BlockRange.Command.Publish(1, 2L, 3L, new long[] {4, 5}, new long[0]));
        assertThrows(
                NotSerializableException.class,
                () -> serializer.fromBinary(Arrays.copyOf(publish, publish.length - 3), "P"));
        byte[] huge = publish.clone();
        ByteBuffer.wrap(huge).order(ByteOrder.LITTLE_ENDIAN).putInt(20, Integer.MAX_VALUE); // added's length
        NotSerializableException e =
                assertThrows(NotSerializableException.class, () -> serializer.fromBinary(huge, "P"));
        assertTrue(e.getMessage().contains("elements"), e.getMessage());
        byte[] trailing = Arrays.copyOf(publish, publish.length + 1);
        assertThrows(NotSerializableException.class, () -> serializer.fromBinary(trailing, "P"));
        assertThrows(NotSerializableException.class, () -> serializer.fromBinary(publish, "no-such-manifest"));
    }

    /** Records with arrays compare by identity; this spells their components out. */
    private static String describe(Object m) {
        StringBuilder out = new StringBuilder(m.getClass().getName());
        for (var component : m.getClass().getRecordComponents()) {
            try {
                Object v = component.getAccessor().invoke(m);
                out.append(' ').append(component.getName()).append('=');
                out.append(
                        switch (v) {
                            case long[] a -> Arrays.toString(a);
                            case int[] a -> Arrays.toString(a);
                            case boolean[] a -> Arrays.toString(a);
                            default -> String.valueOf(v);
                        });
            } catch (ReflectiveOperationException e) {
                throw new AssertionError(e);
            }
        }
        return out.toString();
    }
}
