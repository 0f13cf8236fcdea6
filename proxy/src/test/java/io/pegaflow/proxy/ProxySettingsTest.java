package io.pegaflow.proxy;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.net.URI;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.Test;

class ProxySettingsTest {
    @Test
    void shouldKeepAnEnginesBaseUrlWithoutItsTrailingSlash() {
        assertEquals(URI.create("http://10.0.0.1:8100"), ProxySettings.engineUrl("--prefill", "http://10.0.0.1:8100/"));
        assertEquals(URI.create("https://engine:443"), ProxySettings.engineUrl("--decode", " https://engine:443 "));
    }

    @Test
    void shouldRefuseEngineUrlsThatAreNotABaseHttpUrlNamingTheOption() {
        for (String bad :
                List.of("ftp://h:1", "h:8100", "http://h:8100/v1", "http://h:8100?x=1", "http:// h", "http://:80")) {
            IllegalArgumentException e =
                    assertThrows(IllegalArgumentException.class, () -> ProxySettings.engineUrl("--decode", bad), bad);
            assertTrue(e.getMessage().startsWith("--decode: "), e.getMessage());
        }
    }

    @Test
    void shouldRefuseSettingsWithoutEnginesOrWithABadPortOrTimeout() {
        List<URI> one = List.of(URI.create("http://h:1"));
        Duration t = Duration.ofSeconds(1);
        assertThrows(IllegalArgumentException.class, () -> new ProxySettings("h", 80, List.of(), one, t));
        assertThrows(IllegalArgumentException.class, () -> new ProxySettings("h", 80, one, List.of(), t));
        assertThrows(IllegalArgumentException.class, () -> new ProxySettings("h", 70000, one, one, t));
        assertThrows(IllegalArgumentException.class, () -> new ProxySettings("h", 80, one, one, Duration.ZERO));
    }
}
