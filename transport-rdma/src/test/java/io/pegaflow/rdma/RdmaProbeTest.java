package io.pegaflow.rdma;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.pegaflow.transport.TransportException;
import io.pegaflow.transport.TransportSettings;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The availability probe on whatever this machine has: on a host without kernel RDMA it must return NoDevice with a
 * reason (ENOSYS), never throw; inside the Soft-RoCE VM it must list rxe0 with an active Ethernet port and a RoCE v2
 * GID at index 1.
 */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class RdmaProbeTest {

    @Test
    void shouldReturnDevicesOrNoDeviceWithAReasonAndNeverThrow() {
        RdmaProbeResult result = RdmaProbe.probe();
        switch (result) {
            case RdmaProbeResult.NoDevice none -> {
                assertTrue(none.reason().startsWith("no RDMA device: "), none.reason());
                assertFalse(none.fix().isEmpty());
                assertTrue(none.errno() == 0 || none.errno() == 38, "errno " + none.errno());
            }
            case RdmaProbeResult.Devices found -> {
                assertFalse(found.devices().isEmpty());
                for (RdmaDevice d : found.devices()) {
                    assertTrue(d.maxMrSize() > 0, d.toString());
                    assertFalse(d.ports().isEmpty(), d.toString());
                }
            }
        }
    }

    @Test
    void shouldNameTheProblemAndItsFixForEveryMissingNic() {
        RdmaSettings settings = RdmaSettings.of("no_such_dev0", 1, 1);
        List<RdmaProblem> problems = RdmaProbe.problems(RdmaProbe.probe(), settings, 0);
        assertFalse(problems.isEmpty());
        for (RdmaProblem p : problems) {
            assertFalse(p.fix().isEmpty(), p.toString());
        }
        assertTrue(
                problems.stream()
                        .anyMatch(p -> p.problem().startsWith("no RDMA device: ")
                                || p.problem().contains("no_such_dev0 does not exist")),
                problems.toString());
    }

    @Test
    void shouldRefuseToBuildATransportOnAMissingDeviceWithAClearMessage() {
        TransportSettings settings = TransportSettings.of("a", "127.0.0.1", 0, List.of());
        TransportException e = org.junit.jupiter.api.Assertions.assertThrows(
                TransportException.class, () -> RdmaTransports.create(settings, RdmaSettings.of("no_such_dev0", 1, 1)));
        assertTrue(e.getMessage().startsWith("RDMA unavailable: "), e.getMessage());
        assertFalse(
                RdmaTransports.available(RdmaSettings.of("no_such_dev0", 1, 1)).isEmpty());
    }

    @Test
    void shouldFindRxe0WithARoceV2GidAtIndexOneInsideTheSoftRoceVm() {
        RdmaProbeResult result = RdmaProbe.probe();
        org.junit.jupiter.api.Assumptions.assumeTrue(
                result instanceof RdmaProbeResult.Devices d && d.device("rxe0").isPresent(),
                "no rxe0 here (runs inside the Soft-RoCE VM)");
        RdmaDevice rxe = ((RdmaProbeResult.Devices) result).device("rxe0").orElseThrow();
        RdmaPort port = rxe.port(1).orElseThrow();
        assertTrue(port.active(), port.toString());
        assertEquals("Ethernet", port.linkLayer());
        GidEntry gid =
                port.gids().stream().filter(g -> g.index() == 1).findFirst().orElseThrow();
        assertEquals(GidType.ROCE_V2, gid.type(), gid.toString());
        assertEquals("10.0.2.15", gid.ipv4());
        assertEquals(List.of(), RdmaProbe.problems(result, RdmaSettings.of("rxe0", 1, 1), 0));
    }

    @Test
    void shouldFormatGidsAndReadTheirIpv4() {
        GidEntry gid = new GidEntry(1, "0000:0000:0000:0000:0000:ffff:0a00:020f", GidType.ROCE_V2, 2);
        assertEquals("10.0.2.15", gid.ipv4());
        assertEquals("", new GidEntry(0, "fe80:0000:0000:0000:5054:00ff:fe12:3456", GidType.ROCE_V2, 2).ipv4());
    }
}
