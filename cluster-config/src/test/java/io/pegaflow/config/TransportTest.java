package io.pegaflow.config;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.Optional;
import org.junit.jupiter.api.Test;

class TransportTest {

    @Test
    void shouldReadYamlNamesIgnoringCase() {
        assertEquals(Optional.of(Transport.RDMA), Transport.fromYaml("rdma"));
        assertEquals(Optional.of(Transport.TCP), Transport.fromYaml("tcp"));
        assertEquals(Optional.of(Transport.TCP), Transport.fromYaml("TCP"));
    }

    @Test
    void shouldFindNoTransportForUnknownOrNullNames() {
        assertEquals(Optional.empty(), Transport.fromYaml("ib"));
        assertEquals(Optional.empty(), Transport.fromYaml(""));
        assertEquals(Optional.empty(), Transport.fromYaml(null));
    }

    @Test
    void shouldWriteLowerCaseYamlNames() {
        assertEquals("rdma", Transport.RDMA.yamlName());
        assertEquals("tcp", Transport.TCP.yamlName());
    }
}
