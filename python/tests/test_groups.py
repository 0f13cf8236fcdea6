"""coalesce_layer_groups: which per-layer registrations of one allocation become one group entry."""

from __future__ import annotations

from pegaflow._proto import engine_pb2
from pegaflow.groups import coalesce_layer_groups, layers_covered

PAGE = 4096


def _layer(index, offset, *, stride=8 * PAGE, path="/dev/shm/kv", segments=((0, PAGE),), blocks=16, replicated=False):
    return engine_pb2.LayerRegistration(
        name=f"model.layers.{index}.attn",
        layer_index=index,
        region=engine_pb2.MemoryRegion(shm=engine_pb2.SharedMemoryRegion(path=path, offset_bytes=offset)),
        num_blocks=blocks,
        block_stride_bytes=stride,
        segments=[engine_pb2.ByteSegment(offset_bytes=o, length_bytes=n) for o, n in segments],
        replicated=replicated,
    )


def test_blocks_first_layers_of_one_allocation_become_one_group():
    layers = [_layer(i, 1000 + i * PAGE) for i in reversed(range(8))]  # any order in, layer order out
    [group] = coalesce_layer_groups(layers)
    assert (group.layer_index, group.layer_count, group.layer_stride_bytes) == (0, 8, PAGE)
    assert group.region.shm.offset_bytes == 1000 and group.block_stride_bytes == 8 * PAGE
    assert group.name == "model.layers.0.attn..model.layers.7.attn"
    assert layers_covered([group]) == 8


def test_layers_outermost_stay_one_entry_per_layer():
    # LBNHC: layer l's blocks all come before layer l+1's: not interleaved inside a block.
    layers = [_layer(i, i * 16 * PAGE, stride=PAGE) for i in range(4)]
    out = coalesce_layer_groups(layers)
    assert [r.layer_count for r in out] == [0, 0, 0, 0] and layers_covered(out) == 4


def test_a_group_breaks_where_the_allocation_stride_index_or_shape_changes():
    layers = [
        _layer(0, 0),
        _layer(1, PAGE),
        _layer(2, 2 * PAGE, path="/dev/shm/other"),  # another allocation
        _layer(3, 3 * PAGE),
        _layer(4, 5 * PAGE),  # a gap: the stride changes
        _layer(6, 6 * PAGE),  # index 5 missing
        _layer(7, 7 * PAGE, segments=((0, PAGE // 2), (PAGE // 2, PAGE // 2))),
        _layer(8, 8 * PAGE, replicated=True),
    ]
    out = coalesce_layer_groups(layers)
    assert [(r.layer_index, max(1, r.layer_count)) for r in out] == [(0, 2), (2, 1), (3, 2), (6, 1), (7, 1), (8, 1)]
    assert out[2].layer_stride_bytes == 2 * PAGE


def test_a_group_never_spans_more_than_one_block_stride():
    layers = [_layer(i, i * PAGE, stride=4 * PAGE) for i in range(8)]  # 8 layers of a page in a 4-page block
    out = coalesce_layer_groups(layers)
    assert [(r.layer_index, r.layer_count) for r in out] == [(0, 4), (4, 4)]


def test_overlapping_layers_are_not_grouped():
    layers = [_layer(i, i * (PAGE // 2)) for i in range(4)]  # each layer's block overlaps the next one's
    assert layers_covered(coalesce_layer_groups(layers)) == 4
    assert all(r.layer_count == 0 for r in coalesce_layer_groups(layers))
