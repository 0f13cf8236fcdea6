package io.pegaflow.proxy;

import java.net.URI;
import java.net.URISyntaxException;
import java.time.Duration;
import java.util.List;

/**
 * What one proxy serves: where it listens, the prefill and decode engines (base URLs such as {@code
 * http://10.0.0.1:8100}) and how long one leg may take until its answer starts.
 */
public record ProxySettings(String host, int port, List<URI> prefill, List<URI> decode, Duration legTimeout) {
    public ProxySettings {
        if (host == null || host.isBlank()) {
            throw new IllegalArgumentException("host: must not be empty");
        }
        if (port < 0 || port > 65535) {
            throw new IllegalArgumentException("port: " + port + " is outside 0..65535");
        }
        prefill = checkEngines("--prefill", prefill);
        decode = checkEngines("--decode", decode);
        if (legTimeout == null || legTimeout.isNegative() || legTimeout.isZero()) {
            throw new IllegalArgumentException("legTimeout: must be positive, got " + legTimeout);
        }
    }

    private static List<URI> checkEngines(String option, List<URI> engines) {
        if (engines == null || engines.isEmpty()) {
            throw new IllegalArgumentException(option + ": name at least one engine URL");
        }
        return List.copyOf(engines);
    }

    /**
     * An engine's base URL: {@code http://HOST:PORT} (or https), no path beyond "/", no query; the trailing slash is
     * dropped.
     */
    public static URI engineUrl(String option, String text) {
        URI uri;
        try {
            uri = new URI(text.strip());
        } catch (URISyntaxException e) {
            throw new IllegalArgumentException(option + ": " + text + " is not a URL (" + e.getReason() + ")");
        }
        String scheme = uri.getScheme();
        if (scheme == null || !(scheme.equals("http") || scheme.equals("https"))) {
            throw new IllegalArgumentException(option + ": " + text + " is not an http:// or https:// URL");
        }
        if (uri.getHost() == null || uri.getPort() == 0) {
            throw new IllegalArgumentException(option + ": " + text + " names no host (http://HOST:PORT)");
        }
        String path = uri.getPath() == null ? "" : uri.getPath();
        if (!(path.isEmpty() || path.equals("/")) || uri.getQuery() != null || uri.getFragment() != null) {
            throw new IllegalArgumentException(
                    option + ": " + text + " has a path or query; give the engine's base URL (http://HOST:PORT)");
        }
        return URI.create(scheme + "://" + uri.getRawAuthority());
    }
}
