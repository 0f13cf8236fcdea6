package io.pegaflow.actors.directory;

import org.apache.pekko.cluster.sharding.typed.ShardingEnvelope;
import org.apache.pekko.cluster.sharding.typed.ShardingMessageExtractor;

/**
 * One shard per range (shard id = entity id = the range number), so the coordinator places and moves each range on
 * its own and a host's failure costs only the ranges it held.
 */
final class RangeMessageExtractor
        extends ShardingMessageExtractor<ShardingEnvelope<BlockRange.Command>, BlockRange.Command> {
    @Override
    public String entityId(ShardingEnvelope<BlockRange.Command> envelope) {
        return envelope.entityId();
    }

    @Override
    public String shardId(String entityId) {
        return entityId;
    }

    @Override
    public BlockRange.Command unwrapMessage(ShardingEnvelope<BlockRange.Command> envelope) {
        return envelope.message();
    }
}
