package io.pegaflow.proxy;

import java.net.URI;

/** One leg did not produce a usable answer: the proxy answers 502 naming the leg, the engine and why. */
final class LegFailure extends RuntimeException {
    private final String leg;
    private final URI engine;

    LegFailure(String leg, URI engine, String reason) {
        super(leg + " leg failed: engine " + engine + ": " + reason);
        this.leg = leg;
        this.engine = engine;
    }

    String leg() {
        return leg;
    }

    URI engine() {
        return engine;
    }
}
