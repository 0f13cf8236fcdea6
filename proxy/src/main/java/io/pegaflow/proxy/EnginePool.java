package io.pegaflow.proxy;

import java.net.URI;
import java.util.List;
import java.util.concurrent.atomic.AtomicLong;

/** The engines of one leg, taken in turn (round-robin). Thread-safe. */
final class EnginePool {
    private final String leg;
    private final List<URI> engines;
    private final AtomicLong next = new AtomicLong();

    EnginePool(String leg, List<URI> engines) {
        this.leg = leg;
        this.engines = List.copyOf(engines);
    }

    String leg() {
        return leg;
    }

    URI pick() {
        return engines.get((int) Math.floorMod(next.getAndIncrement(), (long) engines.size()));
    }

    List<URI> engines() {
        return engines;
    }
}
