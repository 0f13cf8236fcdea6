package io.pegaflow.fabric.grpc;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.protobuf.ByteString;
import io.grpc.CallOptions;
import io.grpc.ClientCall;
import io.grpc.ManagedChannel;
import io.grpc.Metadata;
import io.grpc.MethodDescriptor;
import io.grpc.Server;
import io.grpc.ServerServiceDefinition;
import io.grpc.Status;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.grpc.netty.shaded.io.grpc.netty.NettyServerBuilder;
import io.pegaflow.proto.fabric.HealthRequest;
import io.pegaflow.proto.fabric.HealthResponse;
import io.pegaflow.proto.fabric.LocationEvent;
import java.net.InetSocketAddress;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.apache.pekko.Done;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.stream.Materializer;
import org.apache.pekko.stream.SystemMaterializer;
import org.apache.pekko.stream.javadsl.Source;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * {@link NodeCalls} on a real grpc-java Netty server and client over loopback: request parsing and its errors, the
 * size limit, handler failures, deadlines, and a server stream's flow control and cancellation.
 */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class NodeCallsOverNettyTest {
    static final String SERVICE = "test.Calls";

    ActorSystem<Void> system;
    Materializer materializer;
    Server server;
    ManagedChannel channel;

    final AtomicInteger emitted = new AtomicInteger();
    final CompletableFuture<Done> streamEnded = new CompletableFuture<>();
    final CompletableFuture<HealthResponse> slowReply = new CompletableFuture<>();

    @BeforeEach
    void start() throws Exception {
        system = ActorSystem.create(Behaviors.empty(), "node-calls-test");
        materializer = SystemMaterializer.get(system).materializer();
        ServerServiceDefinition service = ServerServiceDefinition.builder(SERVICE)
                .addMethod(NodeCalls.unary(
                        SERVICE,
                        "Echo",
                        HealthRequest.parser(),
                        HealthResponse.getDefaultInstance(),
                        (in, call) -> CompletableFuture.completedFuture(HealthResponse.newBuilder()
                                .setNodeId("echo of " + in.getSerializedSize() + " bytes")
                                .build())))
                .addMethod(NodeCalls.unary(
                        SERVICE,
                        "Fail",
                        HealthRequest.parser(),
                        HealthResponse.getDefaultInstance(),
                        (in, call) -> CompletableFuture.failedFuture(
                                EngineGrpcImpl.toGrpc(new IllegalStateException("boom")))))
                .addMethod(NodeCalls.unary(
                        SERVICE,
                        "Slow",
                        HealthRequest.parser(),
                        HealthResponse.getDefaultInstance(),
                        (in, call) -> slowReply))
                .addMethod(NodeCalls.serverStreaming(
                        SERVICE,
                        "Stream",
                        HealthRequest.parser(),
                        LocationEvent.getDefaultInstance(),
                        (in, call) -> Source.range(1, 1_000_000)
                                .map(i -> {
                                    emitted.incrementAndGet();
                                    return LocationEvent.newBuilder()
                                            .setSequence(i)
                                            .setHash(ByteString.copyFrom(new byte[1024]))
                                            .build();
                                })
                                .watchTermination((m, done) -> {
                                    done.whenComplete((d, e) -> streamEnded.complete(Done.getInstance()));
                                    return m;
                                }),
                        materializer))
                .build();
        server = NettyServerBuilder.forAddress(new InetSocketAddress("127.0.0.1", 0))
                .directExecutor()
                .maxInboundMessageSize(RequestLimits.TRANSPORT_MAX_BYTES)
                .addService(service)
                .build()
                .start();
        channel = NettyChannelBuilder.forAddress("127.0.0.1", server.getPort())
                .usePlaintext()
                .maxInboundMessageSize(64 << 20)
                .build();
    }

    @AfterEach
    void stop() throws Exception {
        channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
        server.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
        system.terminate();
        system.getWhenTerminated().toCompletableFuture().get(20, TimeUnit.SECONDS);
    }

    private static MethodDescriptor<byte[], byte[]> raw(String method, MethodDescriptor.MethodType type) {
        return MethodDescriptor.newBuilder(RequestBytes.INSTANCE, RequestBytes.INSTANCE)
                .setType(type)
                .setFullMethodName(MethodDescriptor.generateFullMethodName(SERVICE, method))
                .build();
    }

    /** One unary call with {@code request} as its bytes: the status, and the reply's bytes if any. */
    private Outcome unary(String method, byte[] request, CallOptions options) throws Exception {
        ClientCall<byte[], byte[]> call = channel.newCall(raw(method, MethodDescriptor.MethodType.UNARY), options);
        CompletableFuture<Outcome> done = new CompletableFuture<>();
        byte[][] reply = new byte[1][];
        call.start(
                new ClientCall.Listener<>() {
                    @Override
                    public void onMessage(byte[] message) {
                        reply[0] = message;
                    }

                    @Override
                    public void onClose(Status status, Metadata trailers) {
                        done.complete(new Outcome(status, reply[0]));
                    }
                },
                new Metadata());
        call.request(1);
        call.sendMessage(request);
        call.halfClose();
        return done.get(30, TimeUnit.SECONDS);
    }

    record Outcome(Status status, byte[] reply) {}

    @Test
    void shouldAnswerAValidRequestAndRefuseUndecodableBytesInvalidArgument() throws Exception {
        byte[] request = HealthRequest.getDefaultInstance().toByteArray();
        Outcome ok = unary("Echo", request, CallOptions.DEFAULT);
        assertEquals(Status.Code.OK, ok.status().getCode(), ok.status().toString());
        assertEquals("echo of 0 bytes", HealthResponse.parseFrom(ok.reply()).getNodeId());

        Outcome bad = unary("Echo", new byte[] {(byte) 0xff, (byte) 0xff, (byte) 0xff}, CallOptions.DEFAULT);
        assertEquals(Status.Code.INVALID_ARGUMENT, bad.status().getCode());
        assertTrue(
                bad.status().getDescription().startsWith("request: not a valid message of this method ("),
                bad.status().getDescription());
    }

    @Test
    void shouldRefuseAMessageOverTheLimitResourceExhaustedWithTheNodesReason() throws Exception {
        Outcome large = unary("Echo", new byte[RequestLimits.MAX_REQUEST_BYTES], CallOptions.DEFAULT);
        assertEquals(Status.Code.RESOURCE_EXHAUSTED, large.status().getCode());
        assertEquals(
                "request: larger than the node's limit of 4194304 bytes",
                large.status().getDescription());
        // Past the transport's own limit the length prefix alone is refused: still RESOURCE_EXHAUSTED.
        Outcome huge = unary("Echo", new byte[RequestLimits.TRANSPORT_MAX_BYTES + 1], CallOptions.DEFAULT);
        assertEquals(
                Status.Code.RESOURCE_EXHAUSTED,
                huge.status().getCode(),
                huge.status().toString());
        // The server still serves.
        assertEquals(
                Status.Code.OK,
                unary("Echo", new byte[0], CallOptions.DEFAULT).status().getCode());
    }

    @Test
    void shouldAnswerAFailedStageWithItsMappedStatus() throws Exception {
        Outcome failed = unary("Fail", new byte[0], CallOptions.DEFAULT);
        assertEquals(Status.Code.INTERNAL, failed.status().getCode());
        assertTrue(
                failed.status().getDescription().contains("boom"),
                failed.status().getDescription());
    }

    @Test
    void shouldEndACallPastItsDeadlineAndDropTheLateReply() throws Exception {
        Outcome late = unary("Slow", new byte[0], CallOptions.DEFAULT.withDeadlineAfter(200, TimeUnit.MILLISECONDS));
        assertEquals(Status.Code.DEADLINE_EXCEEDED, late.status().getCode());
        slowReply.complete(HealthResponse.getDefaultInstance()); // reply to a call already over: dropped quietly
        assertEquals(
                Status.Code.OK,
                unary("Echo", new byte[0], CallOptions.DEFAULT).status().getCode());
    }

    @Test
    void shouldEmitAStreamOnlyAsFastAsTheClientReadsAndStopItWhenTheClientCancels() throws Exception {
        ClientCall<byte[], byte[]> call =
                channel.newCall(raw("Stream", MethodDescriptor.MethodType.SERVER_STREAMING), CallOptions.DEFAULT);
        AtomicInteger received = new AtomicInteger();
        CountDownLatch first = new CountDownLatch(10);
        CompletableFuture<Status> closed = new CompletableFuture<>();
        call.start(
                new ClientCall.Listener<>() {
                    @Override
                    public void onMessage(byte[] message) {
                        received.incrementAndGet();
                        first.countDown();
                    }

                    @Override
                    public void onClose(Status status, Metadata trailers) {
                        closed.complete(status);
                    }
                },
                new Metadata());
        call.sendMessage(new byte[0]);
        call.halfClose();
        call.request(10);
        assertTrue(first.await(20, TimeUnit.SECONDS), "the first 10 messages");
        // The client reads no more: the server stops asking its source once the transport's windows are full.
        Thread.sleep(1500);
        int stalled = emitted.get();
        Thread.sleep(500);
        assertEquals(stalled, emitted.get(), "the source kept emitting while the client read nothing");
        assertTrue(stalled < 20_000, "emitted " + stalled + " of 1,000,000 with 10 read");
        call.request(100);
        assertTrue(emitted.get() < 1_000_000);
        call.cancel("the test is done", null);
        streamEnded.get(10, TimeUnit.SECONDS);
        assertEquals(Status.Code.CANCELLED, closed.get(10, TimeUnit.SECONDS).getCode());
        assertTrue(emitted.get() < 1_000_000, "the stream ran to its end after the cancel");
    }
}
