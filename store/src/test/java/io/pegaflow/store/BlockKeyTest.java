package io.pegaflow.store;

import static io.pegaflow.store.StoreFixture.hash;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotSame;
import static org.junit.jupiter.api.Assertions.assertNull;

import java.util.HashMap;
import org.junit.jupiter.api.Test;

class BlockKeyTest {
    @Test
    void shouldFindStoredKeysThroughTheReusableProbeAndNothingElse() {
        HashMap<BlockKey, String> map = new HashMap<>();
        map.put(new BlockKey("ns", hash("a")), "a");
        map.put(new BlockKey("other", hash("a")), "other a");
        BlockKey.Probe probe = new BlockKey.Probe();
        assertEquals("a", map.get(probe.set("ns", hash("a"))));
        assertEquals("other a", map.get(probe.set("other", hash("a"))));
        assertNull(map.get(probe.set("ns", hash("b"))));
        assertNull(map.get(probe.set("third", hash("a"))));
    }

    @Test
    void shouldCopyTheHashInAndOut() {
        byte[] h = hash("a");
        BlockKey key = new BlockKey("ns", h);
        h[0] = 'z';
        assertEquals(new BlockKey("ns", hash("a")), key);
        assertArrayEquals(hash("a"), key.hash());
        assertNotSame(key.hash(), key.hash());
    }
}
