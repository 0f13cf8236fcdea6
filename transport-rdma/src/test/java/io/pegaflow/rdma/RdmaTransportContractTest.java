package io.pegaflow.rdma;

import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.pegaflow.transport.Transport;
import io.pegaflow.transport.TransportContractTest;
import io.pegaflow.transport.TransportSettings;
import java.util.concurrent.CountDownLatch;
import org.junit.jupiter.api.BeforeEach;

/**
 * The transport contract over real verbs: two transports in one JVM on one RDMA device (rxe0 inside the Soft-RoCE
 * VM), RC queue pairs between them, the side channel on loopback. Skipped, saying why, where there is no device.
 *
 * <p>The passive side of RDMA is the NIC: there is no thread to stall or to corrupt bytes, so the tests that need
 * those hooks skip (the timeout, cancel and dead-peer cases have RDMA tests of their own in
 * {@link RdmaTransportFailureTest}); checksums are left to the link's ICRC.
 */
class RdmaTransportContractTest extends TransportContractTest {

    @BeforeEach
    void needsADevice() {
        assumeTrue(TestNic.settings().isPresent(), TestNic.whyNone());
    }

    @Override
    protected Transport newTransport(TransportSettings settings) {
        return RdmaTransports.create(settings, TestNic.settings().orElseThrow());
    }

    @Override
    protected boolean stallReadReplies(
            Transport server, int block, int part, long stallMs, CountDownLatch stalled, CountDownLatch replySent) {
        return false;
    }

    @Override
    protected boolean corruptOutgoingBlock(Transport sender, int block) {
        return false;
    }

    @Override
    protected void clearHooks(Transport transport) {}

    @Override
    protected boolean supportsChecksums() {
        return false;
    }
}
