import numpy as np
import pytest

from pegaflow.layout import BlockLayout, ByteSegment, block_layout


def _of(array: np.ndarray, block_dim: int = 0) -> BlockLayout:
    return block_layout(array.shape, array.strides, array.itemsize, block_dim=block_dim)


def test_contiguous_blocks_are_one_segment_each():
    found = _of(np.zeros((10, 16, 4, 8), dtype=np.uint16))
    assert found == BlockLayout(10, 16 * 4 * 8 * 2, (ByteSegment(0, 16 * 4 * 8 * 2),))
    assert found.block_bytes == 1024


def test_permuted_inner_dims_still_form_one_segment():
    physical = np.zeros((10, 16, 4, 8), dtype=np.uint16)  # NHD
    logical = physical.transpose(0, 2, 1, 3)  # (blocks, heads, block_size, dim), as vLLM hands it over
    assert _of(logical) == _of(physical)


def test_kv_pair_inside_a_block_gives_one_segment():
    found = _of(np.zeros((10, 2, 16, 4, 8), dtype=np.uint16))  # (num_blocks, 2, ...)
    assert found.segments == (ByteSegment(0, 2 * 16 * 4 * 8 * 2),)


def test_strided_inner_dim_splits_into_segments():
    # Only the K half of a packed cache: per token and head, 8 of 16 elements.
    k_only = np.zeros((10, 16, 4, 16), dtype=np.uint16)[..., :8]
    found = _of(k_only)
    assert len(found.segments) == 16 * 4
    assert found.segments[:2] == (ByteSegment(0, 16), ByteSegment(32, 16))
    assert found.block_stride_bytes == 16 * 4 * 16 * 2


def test_kv_planes_give_two_segments_a_plane_apart():
    planes = np.zeros((2, 10, 16, 4, 8), dtype=np.uint16)
    page = 16 * 4 * 8 * 2
    assert _of(planes, block_dim=1) == BlockLayout(10, page, (ByteSegment(0, page), ByteSegment(10 * page, page)))


def test_rejects_blocks_that_are_not_the_outermost_dimension():
    tokens_first = np.zeros((16, 10, 4, 8), dtype=np.uint16).transpose(1, 0, 2, 3)  # blocks interleave
    with pytest.raises(ValueError, match="not the outermost"):
        _of(tokens_first)


def test_rejects_planes_inside_the_blocks_when_declared_as_kv_planes():
    blocks_first = np.zeros((10, 2, 16, 4, 8), dtype=np.uint16).transpose(1, 0, 2, 3, 4)
    with pytest.raises(ValueError, match="outside the blocks"):
        _of(blocks_first, block_dim=1)


def test_rejects_broadcast_and_negative_strides():
    with pytest.raises(ValueError, match="overlaps"):
        block_layout((10, 4, 8), (64, 0, 2), 2)
    with pytest.raises(ValueError, match="negative"):
        _of(np.zeros((10, 4, 8), dtype=np.uint16)[::-1])


def test_rejects_a_block_dim_other_than_0_or_1():
    with pytest.raises(ValueError, match="block_dim"):
        block_layout((2, 2, 10, 8), (320, 160, 16, 2), 2, block_dim=2)
