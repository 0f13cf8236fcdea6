package io.pegaflow.proxy;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;

/** The proxy's configuration: {@code pegaflow-proxy.conf} over the libraries' reference configuration. */
public final class ProxyConfig {
    private ProxyConfig() {}

    public static Config load() {
        ClassLoader loader = ProxyConfig.class.getClassLoader();
        return ConfigFactory.parseResources(loader, "pegaflow-proxy.conf")
                .withFallback(ConfigFactory.defaultReference(loader))
                .resolve();
    }
}
