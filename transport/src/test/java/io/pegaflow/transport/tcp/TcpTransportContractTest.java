package io.pegaflow.transport.tcp;

import io.pegaflow.transport.Transport;
import io.pegaflow.transport.TransportContractTest;
import io.pegaflow.transport.TransportSettings;
import java.util.concurrent.CountDownLatch;

/** The transport contract over real loopback sockets, with the TCP transport's test hooks as the slow peer. */
class TcpTransportContractTest extends TransportContractTest {

    @Override
    protected Transport newTransport(TransportSettings settings) {
        return new TcpTransport(settings);
    }

    @Override
    protected boolean stallReadReplies(
            Transport server, int block, int part, long stallMs, CountDownLatch stalled, CountDownLatch replySent) {
        ((TcpTransport) server).setTestHook(new TcpTestHook() {
            @Override
            public void beforeServingBlockPart(int blockIndex, int blockPart) throws InterruptedException {
                if (blockIndex == block && blockPart == part) {
                    stalled.countDown();
                    Thread.sleep(stallMs);
                }
            }

            @Override
            public void afterServingRead() {
                replySent.countDown();
            }
        });
        return true;
    }

    @Override
    protected boolean corruptOutgoingBlock(Transport sender, int block) {
        ((TcpTransport) sender).setTestHook(new TcpTestHook() {
            @Override
            public boolean corruptOutgoingBlock(int blockIndex) {
                return blockIndex == block;
            }
        });
        return true;
    }

    @Override
    protected void clearHooks(Transport transport) {
        ((TcpTransport) transport).setTestHook(TcpTestHook.NONE);
    }
}
