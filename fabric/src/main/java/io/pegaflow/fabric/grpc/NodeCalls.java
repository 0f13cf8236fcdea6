package io.pegaflow.fabric.grpc;

import com.google.protobuf.InvalidProtocolBufferException;
import com.google.protobuf.Message;
import com.google.protobuf.Parser;
import io.grpc.Metadata;
import io.grpc.MethodDescriptor;
import io.grpc.ServerCall;
import io.grpc.ServerCallHandler;
import io.grpc.ServerMethodDefinition;
import io.grpc.Status;
import io.grpc.protobuf.ProtoUtils;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import org.apache.pekko.NotUsed;
import org.apache.pekko.stream.Materializer;
import org.apache.pekko.stream.javadsl.AsPublisher;
import org.apache.pekko.stream.javadsl.Sink;
import org.apache.pekko.stream.javadsl.Source;

/**
 * grpc-java method definitions for the node's services, around handlers that return a {@link CompletionStage} (unary)
 * or a Pekko {@link Source} (server streaming), as the pekko-grpc generated interfaces declare them. The request is
 * parsed here, so undecodable bytes and oversized messages get {@link GrpcErrors}'s answers; a failed stage or
 * source is answered with {@link GrpcErrors#statusOf}.
 *
 * <p>Threading: the listeners run on the server's executor (the Netty event loop: the server is direct) and only
 * parse and call a handler that must not block; the reply is sent from whatever thread completes the stage (or emits
 * on the stream). A {@link ServerCall} is touched by one thread at a time: the unary reply once, after the
 * handler's stage completes; stream messages from the subscriber's serial signals ({@link CallSubscriber}).
 */
final class NodeCalls {
    private NodeCalls() {}

    /** A unary handler: its stage completes with the reply or fails with the call's error. Must not block. */
    @FunctionalInterface
    interface Unary<Req, Resp> {
        CompletionStage<Resp> call(Req request, ServerCall<?, ?> call);
    }

    /** A server-streaming handler: the stream of replies (materialized once per call). Must not block. */
    @FunctionalInterface
    interface Streaming<Req, Resp> {
        Source<Resp, NotUsed> call(Req request, ServerCall<?, ?> call);
    }

    static <Req, Resp extends Message> ServerMethodDefinition<byte[], Resp> unary(
            String service, String method, Parser<Req> parser, Resp replyType, Unary<Req, Resp> handler) {
        MethodDescriptor<byte[], Resp> descriptor =
                descriptor(service, method, replyType, MethodDescriptor.MethodType.UNARY);
        ServerCallHandler<byte[], Resp> callHandler = (call, headers) -> {
            call.request(2); // a second message is a client's mistake, answered below
            return new OneRequest<>(call) {
                @Override
                void onRequest(byte[] bytes) {
                    CompletionStage<Resp> stage;
                    try {
                        stage = handler.call(parse(parser, bytes), call);
                    } catch (InvalidProtocolBufferException | RuntimeException e) {
                        stage = CompletableFuture.failedFuture(e);
                    }
                    stage.whenComplete((reply, error) -> reply(call, reply, error, this));
                }
            };
        };
        return ServerMethodDefinition.create(descriptor, callHandler);
    }

    static <Req, Resp extends Message> ServerMethodDefinition<byte[], Resp> serverStreaming(
            String service,
            String method,
            Parser<Req> parser,
            Resp replyType,
            Streaming<Req, Resp> handler,
            Materializer materializer) {
        MethodDescriptor<byte[], Resp> descriptor =
                descriptor(service, method, replyType, MethodDescriptor.MethodType.SERVER_STREAMING);
        ServerCallHandler<byte[], Resp> callHandler = (call, headers) -> {
            call.request(2);
            CallSubscriber<Resp> subscriber = new CallSubscriber<>(call);
            return new OneRequest<>(call) {
                @Override
                void onRequest(byte[] bytes) {
                    Source<Resp, NotUsed> replies;
                    try {
                        replies = handler.call(parse(parser, bytes), call);
                    } catch (InvalidProtocolBufferException | RuntimeException e) {
                        replies = Source.failed(e);
                    }
                    replies.runWith(Sink.asPublisher(AsPublisher.WITHOUT_FANOUT), materializer)
                            .subscribe(subscriber);
                }

                @Override
                public void onReady() {
                    subscriber.onCallReady();
                }

                @Override
                void onCancelled() {
                    subscriber.cancel();
                }
            };
        };
        return ServerMethodDefinition.create(descriptor, callHandler);
    }

    private static <Resp extends Message> MethodDescriptor<byte[], Resp> descriptor(
            String service, String method, Resp replyType, MethodDescriptor.MethodType type) {
        @SuppressWarnings("unchecked")
        MethodDescriptor.Marshaller<Resp> replies =
                (MethodDescriptor.Marshaller<Resp>) ProtoUtils.marshaller(replyType);
        return MethodDescriptor.newBuilder(RequestBytes.INSTANCE, replies)
                .setType(type)
                .setFullMethodName(MethodDescriptor.generateFullMethodName(service, method))
                .build();
    }

    /** The request message, after the size check (one array: the message's bytes; the parse makes the rest). */
    static <Req> Req parse(Parser<Req> parser, byte[] bytes) throws InvalidProtocolBufferException {
        if (RequestLimits.tooLarge(bytes.length)) {
            throw new RequestLimits.TooLarge(RequestLimits.MAX_REQUEST_BYTES);
        }
        return parser.parseFrom(bytes);
    }

    private static <Resp> void reply(
            ServerCall<byte[], Resp> call, Resp reply, Throwable error, OneRequest<Resp> state) {
        if (state.cancelled) {
            return; // the client is gone (cancelled, deadline passed): nothing to answer
        }
        try {
            if (error == null) {
                call.sendHeaders(new Metadata());
                call.sendMessage(reply);
                call.close(Status.OK, new Metadata());
            } else {
                call.close(GrpcErrors.statusOf(error), new Metadata());
            }
        } catch (IllegalStateException e) {
            // cancelled between the check and the send: the call is over either way
        }
    }

    /**
     * The listener of a call with exactly one request message: a second message or none at all is the client's
     * mistake (INVALID_ARGUMENT). Its callbacks come one at a time from the server's executor.
     */
    private abstract static class OneRequest<Resp> extends ServerCall.Listener<byte[]> {
        private final ServerCall<byte[], Resp> call;
        private byte[] request;
        private boolean refused;
        volatile boolean cancelled;

        OneRequest(ServerCall<byte[], Resp> call) {
            this.call = call;
        }

        abstract void onRequest(byte[] bytes);

        void onCancelled() {}

        @Override
        public final void onMessage(byte[] message) {
            if (refused) {
                return;
            }
            if (request != null) {
                refused = true;
                call.close(
                        Status.INVALID_ARGUMENT.withDescription("request: this method takes one message, got more"),
                        new Metadata());
                return;
            }
            request = message;
        }

        @Override
        public final void onHalfClose() {
            if (refused) {
                return;
            }
            if (request == null) {
                refused = true;
                call.close(
                        Status.INVALID_ARGUMENT.withDescription("request: this method takes one message, got none"),
                        new Metadata());
                return;
            }
            byte[] bytes = request;
            request = null; // the handler has it; this listener keeps nothing
            onRequest(bytes);
        }

        @Override
        public final void onCancel() {
            cancelled = true;
            onCancelled();
        }
    }
}
