package io.pegaflow.rdma;

import io.pegaflow.transport.CompletionHandler;
import io.pegaflow.transport.DescriptorList;
import io.pegaflow.transport.LocalRegion;
import io.pegaflow.transport.PeerAddress;
import io.pegaflow.transport.PeerState;
import io.pegaflow.transport.TransferStatus;
import io.pegaflow.transport.Transport;
import io.pegaflow.transport.TransportException;
import io.pegaflow.transport.TransportSettings;
import io.pegaflow.transport.TransportSnapshot;
import java.lang.foreign.MemorySegment;
import java.util.List;

/**
 * The RDMA verbs implementation of the transport SPI. Interim: the engine is being written, so construction refuses
 * with "RDMA unavailable: ..." (the methods below are unreachable until it lands).
 */
public final class RdmaTransport implements Transport {
    RdmaTransport(TransportSettings settings, RdmaSettings rdma, RdmaProbeResult.Devices devices) {
        throw new TransportException("RDMA unavailable: the RDMA transport engine is not implemented yet");
    }

    @Override
    public String name() {
        return "rdma";
    }

    @Override
    public String localNodeId() {
        throw new UnsupportedOperationException();
    }

    @Override
    public void start() {
        throw new UnsupportedOperationException();
    }

    @Override
    public PeerAddress localAddress() {
        throw new UnsupportedOperationException();
    }

    @Override
    public LocalRegion registerRegion(MemorySegment segment) {
        throw new UnsupportedOperationException();
    }

    @Override
    public void deregisterRegion(LocalRegion region) {
        throw new UnsupportedOperationException();
    }

    @Override
    public long maxRegionBytes() {
        throw new UnsupportedOperationException();
    }

    @Override
    public List<String> peers() {
        throw new UnsupportedOperationException();
    }

    @Override
    public PeerState peerState(String nodeId) {
        throw new UnsupportedOperationException();
    }

    @Override
    public TransferStatus read(DescriptorList d, long timeoutMs, long correlationId, CompletionHandler handler) {
        throw new UnsupportedOperationException();
    }

    @Override
    public TransferStatus write(DescriptorList d, long timeoutMs, long correlationId, CompletionHandler handler) {
        throw new UnsupportedOperationException();
    }

    @Override
    public boolean cancel(long correlationId) {
        throw new UnsupportedOperationException();
    }

    @Override
    public int maxInFlightPerPeer() {
        throw new UnsupportedOperationException();
    }

    @Override
    public int maxDescriptorsPerTransfer() {
        throw new UnsupportedOperationException();
    }

    @Override
    public TransportSnapshot snapshot() {
        throw new UnsupportedOperationException();
    }

    @Override
    public void close() {}
}
