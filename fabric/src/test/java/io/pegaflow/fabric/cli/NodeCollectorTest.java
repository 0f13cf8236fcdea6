package io.pegaflow.fabric.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.List;
import org.junit.jupiter.api.Test;

/** A node runs ZGC unless its JVM flags pick a collector (two collectors would stop the JVM from starting). */
class NodeCollectorTest {
    @Test
    void shouldAddZgcUnlessTheFlagsPickACollector() {
        assertEquals(List.of("-XX:+UseZGC"), NodeProcess.collectorFlags(List.of()));
        assertEquals(List.of("-XX:+UseZGC"), NodeProcess.collectorFlags(List.of("-Xmx512m", "-XX:+UseNUMA")));
        assertEquals(List.of(), NodeProcess.collectorFlags(List.of("-Xmx512m", "-XX:+UseG1GC")));
        assertEquals(List.of(), NodeProcess.collectorFlags(List.of("-XX:+UseParallelGC")));
        assertEquals(List.of(), NodeProcess.collectorFlags(List.of("-XX:+UseZGC")));
    }
}
