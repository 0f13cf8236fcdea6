"""End to end on the shared node: dedup, tensor-parallel partial blocks, a worker killed with -9, missing blocks.

The node runs with --partial-timeout-ms 1000. Workers here are this test process (an in-process SharedKVCache) or,
where a separate process matters (two TP ranks, a process that dies), kv_worker.py processes.
"""

from __future__ import annotations

import contextlib
import os

import grpc
import pytest
from e2e_support import expect_error, file_bytes, random_hashes, read_block, refs, unique, wait_until
from kv_worker import WorkerProcess

from pegaflow.client import EngineError
from pegaflow.flag import LoadFlagFile, LoadState
from pegaflow.shm import HOST_DEVICE, SharedKVCache

pytestmark = pytest.mark.node

# 2 layers x 2 KV heads x head 128, 16-token blocks, bf16: 16 KiB per layer per block.
SHAPE = {"num_layers": 2, "num_blocks": 64, "block_size": 16, "num_kv_heads": 2, "head_size": 128}


@contextlib.contextmanager
def registered_cache(engine, namespace: str, **overrides):
    """This process as a worker: a cache registered in ``namespace``; unregistered and removed afterwards."""
    with SharedKVCache(**{**SHAPE, **overrides}) as cache:
        reply = engine.register_context(
            unique("engine"), namespace, 0, 1, 0, cache.num_layers, HOST_DEVICE, cache.layer_registrations()
        )
        try:
            yield cache, reply.context_id
        finally:
            engine.unregister_context(reply.context_id)


def _save_counts(reply) -> tuple[int, int, int]:
    return reply.blocks_stored, reply.blocks_skipped, reply.blocks_sealed


def test_saving_sealed_blocks_again_skips_them_and_inserts_nothing(engine, node):
    namespace = unique("dedup")
    hashes = random_hashes(5)
    with registered_cache(engine, namespace) as (cache, ctx), registered_cache(engine, namespace) as (_other, ctx2):
        cache.fill_random(range(5), seed=1)
        assert _save_counts(engine.save(ctx, list(zip(range(5), hashes)))) == (5, 0, 5)
        before = node.fresh_metrics()

        assert _save_counts(engine.save(ctx, list(zip(range(10, 15), hashes)))) == (0, 5, 0)
        assert _save_counts(engine.save(ctx2, list(zip(range(5), hashes)))) == (0, 5, 0), "another worker too"
        x = random_hashes(1)[0]
        assert _save_counts(engine.save(ctx, [(6, x), (7, x)])) == (1, 1, 1), "one hash twice in one request"

        after = node.fresh_metrics()
        inserted = after.value("pegaflow_block_insertions_total") - before.value("pegaflow_block_insertions_total")
        assert inserted == 1, "only the one new hash may be inserted"
        assert engine.query(namespace, [*hashes, x]).hit_blocks == 6


def test_block_of_two_tp_ranks_is_visible_only_when_both_saved_and_each_rank_loads_its_own_shard(engine, node):
    namespace = unique("tp2")
    instance = unique("engine")
    p = random_hashes(1)

    with WorkerProcess(node.endpoint, "rank0") as rank0, WorkerProcess(node.endpoint, "rank1") as rank1:
        regs = [
            w.call("register", cache=SHAPE, namespace=namespace, instance_id=instance, tp_rank=rank, tp_size=2)
            for rank, w in enumerate((rank0, rank1))
        ]
        assert regs[0]["block_bytes"] == 2 * 2 * 16 * 1024 and regs[0]["slot_bytes"] == 2 * 16 * 1024
        rank0.call("fill", blocks=[3], seed=100)
        rank1.call("fill", blocks=[3], seed=200)

        assert rank0.call("save", blocks=refs([3], p)) == {"blocks_stored": 1, "blocks_skipped": 0, "blocks_sealed": 0}
        assert rank0.call("query", namespace=namespace, hashes=[p[0].hex()])["hit_blocks"] == 0, "rank 1 missing"
        partial = rank0.call("load", blocks=refs([9], p))
        assert partial["failed_block_ids"] == [9] and partial["blocks_scheduled"] == 0
        assert (partial["state"], partial["loaded"], partial["failed"]) == ("FAILED", 0, 1)

        assert rank1.call("save", blocks=refs([3], p)) == {"blocks_stored": 1, "blocks_skipped": 0, "blocks_sealed": 1}
        assert rank0.call("query", namespace=namespace, hashes=[p[0].hex()])["hit_blocks"] == 1
        for worker, reg in zip((rank0, rank1), regs):
            loaded = worker.call("load", blocks=refs([9], p))
            assert (loaded["state"], loaded["loaded"], loaded["failed"]) == ("DONE", 1, 0)
            with SharedKVCache(**SHAPE, path=reg["path"], create=False) as observer:
                registrations = observer.layer_registrations()
            data = file_bytes(reg["path"])
            for r in registrations:
                assert read_block(data, r, 9) == read_block(data, r, 3), f"{worker.name} layer {r.layer_index}"
        data0, data1 = file_bytes(regs[0]["path"]), file_bytes(regs[1]["path"])
        assert read_block(data0, registrations[0], 9) != read_block(data1, registrations[0], 9), "shards differ"

        # The other rank arriving within the partial timeout seals the block.
        q = random_hashes(1)
        rank0.call("save", blocks=refs([4], q))
        assert rank1.call("save", blocks=refs([4], q))["blocks_sealed"] == 1

        # A block whose other rank never comes is dropped after the partial timeout, its space freed.
        before = node.fresh_metrics()
        stale = random_hashes(1)
        assert rank0.call("save", blocks=refs([5], stale))["blocks_stored"] == 1

        def dropped():
            m = node.scrape()
            return (
                m.value("pegaflow_block_partial_dropped_total") - before.value("pegaflow_block_partial_dropped_total")
                == 1
                and m.value("pegaflow_store_blocks", state="inflight")
                == before.value("pegaflow_store_blocks", state="inflight")
                and m.value("pegaflow_pool_used_bytes") == before.value("pegaflow_pool_used_bytes")
            )

        wait_until(dropped, 15.0, "the partial block is dropped and its space freed", pause_s=0.2)
        # Rank 0's half is gone: rank 1 alone starts a new partial block, still invisible.
        assert rank1.call("save", blocks=refs([5], stale)) == {
            "blocks_stored": 1,
            "blocks_skipped": 0,
            "blocks_sealed": 0,
        }
        assert rank1.call("query", namespace=namespace, hashes=[stale[0].hex()])["hit_blocks"] == 0
        wait_until(
            lambda: (
                node.scrape().value("pegaflow_block_partial_dropped_total")
                - before.value("pegaflow_block_partial_dropped_total")
                == 2
            ),
            15.0,
            "the second partial block is dropped too",
            pause_s=0.2,
        )


def test_worker_killed_with_sigkill_loses_its_context_but_its_saved_blocks_stay_cached(engine, node):
    namespace = unique("killed")
    hashes = random_hashes(4)
    worker = WorkerProcess(node.endpoint, "doomed")
    reg = None
    try:
        reg = worker.call("register", cache=SHAPE, namespace=namespace, instance_id=unique("engine"), session=True)
        worker.call("fill", blocks=[0, 1, 2, 3], seed=7)
        assert worker.call("save", blocks=refs(range(4), hashes))["blocks_sealed"] == 4
        assert engine.save(reg["context_id"], []).blocks_stored == 0  # the context is alive
        contexts = node.fresh_metrics().value("pegaflow_engine_contexts")

        worker.kill()

        def context_gone():
            try:
                engine.save(reg["context_id"], [])
                return False
            except EngineError as e:
                assert e.code == grpc.StatusCode.NOT_FOUND, e
                assert "context_id" in e.details and reg["context_id"] in e.details
                return True

        wait_until(context_gone, 10.0, "the node drops the dead worker's context")
        wait_until(
            lambda: node.scrape().value("pegaflow_engine_contexts") == contexts - 1,
            15.0,
            "pegaflow_engine_contexts drops by one",
            pause_s=0.2,
        )
        assert engine.query(namespace, hashes).hit_blocks == 4

        # A new worker of the namespace loads the dead one's blocks, byte for byte.
        with SharedKVCache(**SHAPE, path=reg["path"], create=False) as dead:
            expected = {
                (layer, b): dead.block_bytes(layer, b) for b in range(4) for layer in range(SHAPE["num_layers"])
            }
        with registered_cache(engine, namespace) as (cache, ctx), LoadFlagFile(slots=1) as flags:
            slot = flags.slot(0)
            slot.reset()
            engine.load(ctx, list(zip(range(40, 44), hashes)), slot)
            assert slot.wait(10) is LoadState.DONE and slot.loaded == 4
            for b in range(4):
                for layer in range(SHAPE["num_layers"]):
                    assert cache.block_bytes(layer, 40 + b) == expected[layer, b]
    finally:
        worker.kill()
        worker.close()
        for name in ("path", "flag_path") if reg else ():
            with contextlib.suppress(FileNotFoundError):
                os.unlink(reg[name])  # SIGKILL left the worker's files behind


def test_load_names_missing_blocks_and_the_flag_ends_failed_with_counts(engine):
    namespace = unique("missing")
    h = random_hashes(3)
    with registered_cache(engine, namespace) as (cache, ctx), LoadFlagFile(slots=2) as flags:
        cache.fill_random([0, 1], seed=3)
        expected = {(layer, b): cache.block_bytes(layer, b) for b in (0, 1) for layer in range(SHAPE["num_layers"])}
        engine.save(ctx, [(0, h[0]), (1, h[1])])
        cache.scribble([30, 31, 32])

        slot = flags.slot(0)
        slot.reset()
        reply = engine.load(ctx, [(30, h[0]), (31, h[1]), (32, h[2])], slot)
        assert list(reply.failed_block_ids) == [32] and reply.blocks_scheduled == 2
        assert slot.wait(10) is LoadState.FAILED
        snap = slot.snapshot()
        assert (snap.loaded_blocks, snap.failed_blocks) == (2, 1)
        for b in (0, 1):
            for layer in range(SHAPE["num_layers"]):
                assert cache.block_bytes(layer, 30 + b) == expected[layer, b], "present blocks are still loaded"
        assert set(cache.block_bytes(0, 32)) == {0xA5}, "a missing block's memory is left alone"

        nothing = flags.slot(1)
        nothing.reset()
        reply = engine.load(ctx, [(40, random_hashes(1)[0]), (41, random_hashes(1)[0])], nothing)
        assert list(reply.failed_block_ids) == [40, 41] and reply.blocks_scheduled == 0
        assert nothing.wait(10) is LoadState.FAILED
        assert (nothing.loaded, nothing.failed) == (0, 2)


def test_unregistering_keeps_cached_blocks_for_a_new_context_of_the_namespace(engine):
    namespace = unique("reuse")
    h = random_hashes(2)
    with registered_cache(engine, namespace) as (first, ctx):
        first.fill_random([0, 1], seed=9)
        expected = {(layer, b): first.block_bytes(layer, b) for b in (0, 1) for layer in range(SHAPE["num_layers"])}
        engine.save(ctx, list(zip([0, 1], h)))
    with expect_error(grpc.StatusCode.NOT_FOUND, "context_id", ctx):
        engine.save(ctx, [(0, h[0])])
    with registered_cache(engine, namespace) as (second, ctx2), LoadFlagFile(slots=1) as flags:
        slot = flags.slot(0)
        slot.reset()
        engine.load(ctx2, list(zip([5, 6], h)), slot)
        assert slot.wait(10) is LoadState.DONE
        for b in (0, 1):
            for layer in range(SHAPE["num_layers"]):
                assert second.block_bytes(layer, 5 + b) == expected[layer, b]
