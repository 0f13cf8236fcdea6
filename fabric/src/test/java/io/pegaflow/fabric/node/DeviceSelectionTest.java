package io.pegaflow.fabric.node;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import java.util.Optional;
import org.junit.jupiter.api.Test;

class DeviceSelectionTest {
    @Test
    void shouldServeEveryVisibleGpuByDefaultAndNoneWithoutCuda() {
        assertEquals(List.of(0, 1, 2, 3), DeviceSelection.auto().resolve(Optional.of(4)));
        assertEquals(List.of(), DeviceSelection.auto().resolve(Optional.empty()), "a CPU machine: the host stand-in");
        assertEquals(List.of(), DeviceSelection.auto().resolve(Optional.of(0)));
    }

    @Test
    void shouldServeExactlyTheListedGpusInTheirOrderWhateverTheDriverShows() {
        DeviceSelection listed = DeviceSelection.parse(" 2, 0 ");
        assertEquals(List.of(2, 0), listed.resolve(Optional.of(8)));
        assertEquals(List.of(2, 0), listed.resolve(Optional.empty()), "opening them says why CUDA is missing");
        assertEquals("2,0", listed.toString());
    }

    @Test
    void shouldServeNoGpuWhenToldNone() {
        assertEquals(List.of(), DeviceSelection.parse("none").resolve(Optional.of(8)));
        assertEquals(DeviceSelection.auto(), DeviceSelection.parse("ALL"));
    }

    @Test
    void shouldRefuseBadListsSayingWhatIsWrong() {
        assertTrue(assertThrows(IllegalArgumentException.class, () -> DeviceSelection.parse("0,,1"))
                .getMessage()
                .contains("is not an index"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> DeviceSelection.parse("1,1"))
                .getMessage()
                .contains("listed twice"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> DeviceSelection.parse("1024"))
                .getMessage()
                .contains("out of range 0..1023"));
        assertThrows(IllegalArgumentException.class, () -> DeviceSelection.parse("-1"));
        assertThrows(IllegalArgumentException.class, () -> DeviceSelection.parse(""));
    }
}
