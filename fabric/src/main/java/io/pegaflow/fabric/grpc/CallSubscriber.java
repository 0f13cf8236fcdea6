package io.pegaflow.fabric.grpc;

import io.grpc.Metadata;
import io.grpc.ServerCall;
import io.grpc.Status;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicReference;
import org.reactivestreams.Subscriber;
import org.reactivestreams.Subscription;

/**
 * A server-streaming call fed by a Reactive Streams publisher (a Pekko {@code Source} run into {@code
 * Sink.asPublisher}), with gRPC's flow control: one message is asked for at a time, and the next only once the call
 * is ready for more (its transport buffer drained), so a slow client holds at most one message here and the source
 * waits rather than buffers. The stream's end closes the call (OK, or {@link GrpcErrors}'s status); the call's
 * cancellation (client gone, deadline, server stopping) cancels the stream.
 *
 * <p>Threading: the subscriber methods come serially from the stream (Reactive Streams §1.3) and alone touch the
 * call's send side; {@link #onCallReady} and {@link #cancel} come from the server's executor and only request or
 * cancel through the thread-safe {@link Subscription}. One flag, set before readiness is checked, hands the next
 * request to whichever side sees the call ready, so a wake-up is never lost and never doubled.
 */
final class CallSubscriber<T> implements Subscriber<T> {
    private final ServerCall<byte[], T> call;
    private final AtomicReference<Subscription> subscription = new AtomicReference<>();
    private final AtomicBoolean waitingForReady = new AtomicBoolean();
    private volatile boolean cancelled;
    private boolean headersSent;

    CallSubscriber(ServerCall<byte[], T> call) {
        this.call = call;
    }

    @Override
    public void onSubscribe(Subscription s) {
        if (!subscription.compareAndSet(null, s) || cancelled) {
            s.cancel();
            return;
        }
        s.request(1);
    }

    @Override
    public void onNext(T message) {
        if (cancelled) {
            return;
        }
        try {
            if (!headersSent) {
                headersSent = true;
                call.sendHeaders(new Metadata());
            }
            call.sendMessage(message);
        } catch (IllegalStateException e) {
            cancel(); // the call closed under us (cancelled): stop the stream
            return;
        }
        waitingForReady.set(true);
        if (call.isReady()) {
            requestNextIfWaiting();
        }
    }

    @Override
    public void onError(Throwable error) {
        close(GrpcErrors.statusOf(error));
    }

    @Override
    public void onComplete() {
        close(Status.OK);
    }

    /** The call can take more (from the call's listener). */
    void onCallReady() {
        requestNextIfWaiting();
    }

    /** The call is over from the client's side (from the call's listener): stop the stream. */
    void cancel() {
        cancelled = true;
        Subscription s = subscription.get();
        if (s != null) {
            s.cancel();
        }
    }

    private void requestNextIfWaiting() {
        Subscription s = subscription.get();
        if (s != null && waitingForReady.compareAndSet(true, false)) {
            s.request(1);
        }
    }

    private void close(Status status) {
        if (cancelled) {
            return;
        }
        try {
            call.close(status, new Metadata());
        } catch (IllegalStateException e) {
            // already closed by a cancellation
        }
    }
}
