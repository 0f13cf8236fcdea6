package io.pegaflow.fabric.grpc;

import com.google.protobuf.ByteString;
import io.pegaflow.proto.fabric.LocationEvent;
import io.pegaflow.proto.fabric.WatchLocationsRequest;
import io.pegaflow.store.BlockKey;
import io.pegaflow.store.StoreEvent;
import io.pegaflow.store.StoreListener;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CopyOnWriteArrayList;
import org.apache.pekko.NotUsed;
import org.apache.pekko.japi.Pair;
import org.apache.pekko.stream.BoundedSourceQueue;
import org.apache.pekko.stream.QueueOfferResult;
import org.apache.pekko.stream.javadsl.Source;

/**
 * This node's block-location changes for {@code WatchLocations}: a store listener that keeps the set of blocks the
 * node holds per namespace, numbers every change (one sequence per node run, the {@code incarnation}), remembers the
 * last {@link #REPLAY_EVENTS} changes for resuming, and hands each change to the watchers of its namespace.
 *
 * <p>Threading: {@link #onEvents} runs on the store's event thread; {@link #watch} on a gRPC thread, and the snapshot
 * is taken and the watcher registered when its stream is materialized. One lock guards the sets, the sequence and the
 * replay buffer, so a watcher's snapshot and its first live change never overlap or leave a gap. Offers to a watcher
 * never block: a watcher {@link #WATCHER_BUFFER} changes behind is failed (it resumes with its last sequence).
 *
 * <p>Cost: the held sets duplicate the store's index (a {@code BlockKey} per sealed block, ~100 heap bytes each); a
 * snapshot scan of the store under its lock would remove that, at the price of a store API.
 */
public final class LocationWatch implements StoreListener {
    static final int REPLAY_EVENTS = 65_536;
    static final int WATCHER_BUFFER = 8_192;

    private record Change(long sequence, BlockKey key, boolean stored) {}

    private record Watcher(String namespace, BoundedSourceQueue<LocationEvent> queue) {}

    private final String nodeId;
    private final long incarnation;
    private final Map<String, Set<BlockKey>> held = new HashMap<>();
    private final ArrayDeque<Change> replay = new ArrayDeque<>();
    private final List<Watcher> watchers = new CopyOnWriteArrayList<>();
    private long sequence;

    public LocationWatch(String nodeId, long incarnation) {
        this.nodeId = nodeId;
        this.incarnation = incarnation;
    }

    public long incarnation() {
        return incarnation;
    }

    @Override
    public synchronized void onEvents(List<StoreEvent> batch) {
        for (StoreEvent event : batch) {
            boolean stored = event.kind() == StoreEvent.Kind.SEALED;
            BlockKey key = event.key();
            Set<BlockKey> set = held.computeIfAbsent(key.namespace(), ns -> new HashSet<>());
            boolean changed = stored ? set.add(key) : set.remove(key);
            if (!changed) {
                continue;
            }
            if (set.isEmpty()) {
                held.remove(key.namespace());
            }
            Change change = new Change(++sequence, key, stored);
            if (replay.size() == REPLAY_EVENTS) {
                replay.removeFirst();
            }
            replay.addLast(change);
            for (Watcher w : watchers) {
                if (w.namespace().equals(key.namespace())) {
                    offer(w, toProto(change));
                }
            }
        }
    }

    /** The stream for one request: snapshot (or replay), then live changes. */
    public Source<LocationEvent, NotUsed> watch(WatchLocationsRequest request) {
        String namespace = request.getNamespace();
        return Source.<LocationEvent, NotUsed>fromMaterializer((mat, attributes) -> {
                    Pair<BoundedSourceQueue<LocationEvent>, Source<LocationEvent, NotUsed>> live =
                            Source.<LocationEvent>queue(WATCHER_BUFFER).preMaterialize(mat);
                    Watcher watcher = new Watcher(namespace, live.first());
                    List<LocationEvent> first = register(watcher, request);
                    return Source.from(first).concat(live.second()).watchTermination((m, done) -> {
                        done.whenComplete((d, e) -> {
                            watchers.remove(watcher);
                            watcher.queue().complete();
                        });
                        return NotUsed.getInstance();
                    });
                })
                .mapMaterializedValue(m -> NotUsed.getInstance());
    }

    private synchronized List<LocationEvent> register(Watcher watcher, WatchLocationsRequest request) {
        List<LocationEvent> first = new ArrayList<>();
        long after = request.getAfterSequence();
        long oldestReplayable =
                replay.isEmpty() ? sequence + 1 : replay.peekFirst().sequence();
        boolean resumable = request.getIncarnation() == incarnation
                && after > 0
                && after <= sequence
                && after + 1 >= oldestReplayable;
        if (resumable) {
            for (Change c : replay) {
                if (c.sequence() > after && c.key().namespace().equals(watcher.namespace())) {
                    first.add(toProto(c));
                }
            }
        } else {
            for (BlockKey key : held.getOrDefault(watcher.namespace(), Set.of())) {
                first.add(event(LocationEvent.Kind.HELD, key.hash(), sequence));
            }
            first.add(event(LocationEvent.Kind.SNAPSHOT_END, new byte[0], sequence));
        }
        watchers.add(watcher);
        return first;
    }

    private void offer(Watcher w, LocationEvent event) {
        QueueOfferResult result = w.queue().offer(event);
        if (result != QueueOfferResult.enqueued()) {
            watchers.remove(w);
            w.queue()
                    .fail(new IllegalStateException("watcher fell " + WATCHER_BUFFER
                            + " changes behind; resume with the last sequence received"));
        }
    }

    private LocationEvent toProto(Change c) {
        return event(
                c.stored() ? LocationEvent.Kind.STORED : LocationEvent.Kind.REMOVED,
                c.key().hash(),
                c.sequence());
    }

    private LocationEvent event(LocationEvent.Kind kind, byte[] hash, long seq) {
        return LocationEvent.newBuilder()
                .setKind(kind)
                .setNodeId(nodeId)
                .setHash(ByteString.copyFrom(hash))
                .setSequence(seq)
                .setIncarnation(incarnation)
                .build();
    }
}
