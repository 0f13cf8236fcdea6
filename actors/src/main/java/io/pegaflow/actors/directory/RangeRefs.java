package io.pegaflow.actors.directory;

import org.apache.pekko.cluster.sharding.typed.javadsl.ClusterSharding;
import org.apache.pekko.cluster.sharding.typed.javadsl.EntityRef;

/** One sharding {@link EntityRef} per range, made once. Immutable; safe from any thread. */
final class RangeRefs {
    private final EntityRef<BlockRange.Command>[] refs;

    @SuppressWarnings("unchecked")
    RangeRefs(ClusterSharding sharding, int rangeCount) {
        refs = new EntityRef[rangeCount];
        for (int r = 0; r < rangeCount; r++) {
            refs[r] = sharding.entityRefFor(BlockRange.TYPE_KEY, Integer.toString(r));
        }
    }

    /** Given refs (tests: {@code TestEntityRef}s standing for the ranges). */
    RangeRefs(EntityRef<BlockRange.Command>[] refs) {
        this.refs = refs.clone();
    }

    EntityRef<BlockRange.Command> get(int range) {
        return refs[range];
    }

    int rangeCount() {
        return refs.length;
    }
}
