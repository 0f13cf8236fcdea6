"""SharedKVCache registrations must locate exactly the bytes written through its numpy views.

Each test writes a pattern through vLLM-shaped views, then reads the file with plain os.pread at the offsets
the registration gives: nothing here trusts the cache's own bookkeeping.
"""

import os

import numpy as np
import pytest

from pegaflow.shm import HOST_DEVICE, KV_PLANES, PACKED, SCRIBBLE_BYTE, SharedKVCache

SHAPE = {"num_layers": 3, "num_blocks": 5, "block_size": 4, "num_kv_heads": 2, "head_size": 8}


@pytest.fixture
def make_cache():
    caches = []

    def make(**kwargs):
        cache = SharedKVCache(**{**SHAPE, **kwargs})
        caches.append(cache)
        return cache

    yield make
    for cache in caches:
        cache.close()
        cache.unlink()


def _pattern(rng, shape) -> np.ndarray:
    # Values 0x0101..0xFEFE: no zero byte, so untouched (zero) bytes are told apart from written ones.
    return rng.integers(1, 255, size=(*shape, 2), dtype=np.uint8).view(np.uint16)[..., 0]


def _write_blocks(cache: SharedKVCache, seed: int) -> dict[tuple[int, int], bytes]:
    """Writes every block of every layer through the views; returns the bytes each block must hold, in order."""
    rng = np.random.default_rng(seed)
    expected = {}
    for layer in range(cache.num_layers):
        view = cache.layer(layer).view(np.uint16)  # bit patterns, whatever the 2-byte dtype
        for block in range(cache.num_blocks):
            if cache.layout == PACKED:
                logical = _pattern(rng, view.shape[1:])  # (heads, block_size, 2*head)
                view[block] = logical
                expected[layer, block] = np.ascontiguousarray(logical.transpose(1, 0, 2)).tobytes()  # NHD
            else:
                k, v = _pattern(rng, view.shape[2:]), _pattern(rng, view.shape[2:])
                view[0, block], view[1, block] = k, v
                expected[layer, block] = k.tobytes() + v.tobytes()  # K segment first, then V
        del view
    return expected


def _read_block(registration, block: int) -> bytes:
    fd = os.open(registration.region.shm.path, os.O_RDONLY)
    try:
        start = registration.region.shm.offset_bytes + block * registration.block_stride_bytes
        return b"".join(os.pread(fd, s.length_bytes, start + s.offset_bytes) for s in registration.segments)
    finally:
        os.close(fd)


def _assert_registrations_locate_the_written_bytes(cache: SharedKVCache):
    expected = _write_blocks(cache, seed=7)
    registrations = cache.layer_registrations(first_layer_index=10)

    assert [r.layer_index for r in registrations] == [10, 11, 12]
    assert len({r.region.shm.path for r in registrations}) == 1  # layers share one backing file
    for layer, registration in enumerate(registrations):
        assert registration.num_blocks == cache.num_blocks
        for block in range(cache.num_blocks):
            assert _read_block(registration, block) == expected[layer, block], (layer, block)
            assert cache.block_bytes(layer, block) == expected[layer, block]

    # Everything written is covered: the only non-zero bytes in the file are the registered ones.
    covered = sum(len(b) for b in expected.values())
    with open(cache.path, "rb") as f:
        raw = np.frombuffer(f.read(), dtype=np.uint8)
    assert raw.size == cache.size_bytes
    assert np.count_nonzero(raw) == covered


def test_packed_layout_is_one_segment_per_block(make_cache):
    cache = make_cache(layout=PACKED)
    page = 4 * 2 * 2 * 8 * 2
    registrations = cache.layer_registrations()
    assert [(s.offset_bytes, s.length_bytes) for s in registrations[0].segments] == [(0, page)]
    assert registrations[0].block_stride_bytes == page
    assert [r.region.shm.offset_bytes for r in registrations] == [0, 5 * page, 10 * page]
    _assert_registrations_locate_the_written_bytes(cache)


def test_packed_layout_with_block_padding_and_layer_gaps(make_cache):
    cache = make_cache(layout=PACKED, block_stride_padding_bytes=64, layer_gap_bytes=4096)
    page = 4 * 2 * 2 * 8 * 2
    registration = cache.layer_registrations()[1]
    assert registration.block_stride_bytes == page + 64
    assert [(s.offset_bytes, s.length_bytes) for s in registration.segments] == [(0, page)]
    assert registration.region.shm.offset_bytes == 5 * (page + 64) + 4096
    _assert_registrations_locate_the_written_bytes(cache)


def test_kv_planes_layout_is_two_segments_a_plane_apart(make_cache):
    cache = make_cache(layout=KV_PLANES)
    plane_block = 4 * 2 * 8 * 2
    registration = cache.layer_registrations()[2]
    assert registration.block_stride_bytes == plane_block
    assert [(s.offset_bytes, s.length_bytes) for s in registration.segments] == [
        (0, plane_block),
        (5 * plane_block, plane_block),
    ]
    assert registration.region.shm.offset_bytes == 2 * 2 * 5 * plane_block
    _assert_registrations_locate_the_written_bytes(cache)


def test_kv_planes_layout_with_block_padding_and_layer_gaps(make_cache):
    cache = make_cache(layout=KV_PLANES, block_stride_padding_bytes=32, layer_gap_bytes=128, dtype="float16")
    _assert_registrations_locate_the_written_bytes(cache)


def test_registration_names_the_file_and_layers(make_cache):
    cache = make_cache(layer_names=["a", "b", "c"])
    registrations = cache.layer_registrations()
    assert [r.name for r in registrations] == ["a", "b", "c"]
    assert all(r.region.WhichOneof("kind") == "shm" for r in registrations)
    assert registrations[0].region.shm.path == str(cache.path) and cache.path.is_absolute()
    assert HOST_DEVICE == "host"


def test_fill_random_is_reproducible_and_scribble_overwrites(make_cache):
    first, second = make_cache(), make_cache(layout=PACKED)
    first.fill_random([1, 3], seed=42)
    second.fill_random([1, 3], seed=42)
    assert first.block_bytes(2, 3) == second.block_bytes(2, 3)
    assert first.block_bytes(0, 0) == bytes(len(first.block_bytes(0, 0)))  # untouched block stays zero

    before = first.block_bytes(1, 1)
    first.scribble([1])
    assert first.block_bytes(1, 1) == bytes([SCRIBBLE_BYTE]) * len(before)
    assert first.block_bytes(1, 3) == second.block_bytes(1, 3)


def test_a_second_mapping_of_the_file_sees_the_same_blocks(make_cache):
    writer = make_cache(layout=KV_PLANES, block_stride_padding_bytes=16)
    writer.fill_random([2], seed=1)
    reader = SharedKVCache(**SHAPE, layout=KV_PLANES, block_stride_padding_bytes=16, path=writer.path, create=False)
    try:
        assert reader.block_bytes(1, 2) == writer.block_bytes(1, 2)
        assert reader.layer_registrations() == writer.layer_registrations()
    finally:
        reader.close()


def test_opening_a_too_small_file_is_refused(make_cache):
    small = make_cache(num_blocks=1)
    with pytest.raises(ValueError, match="needs"):
        SharedKVCache(**{**SHAPE, "num_blocks": 4}, path=small.path, create=False)


def test_rejects_unknown_layouts_and_bad_sizes():
    with pytest.raises(ValueError, match="layout"):
        SharedKVCache(**SHAPE, layout="heads_first")
    with pytest.raises(ValueError, match="num_blocks"):
        SharedKVCache(**{**SHAPE, "num_blocks": 0})
    with pytest.raises(ValueError, match="block_stride_padding_bytes"):
        SharedKVCache(**SHAPE, block_stride_padding_bytes=3)


def test_context_manager_unmaps_and_removes_the_file():
    with SharedKVCache(**SHAPE) as cache:
        path = cache.path
        assert path.exists() and str(path).startswith("/dev/shm/")
    assert not path.exists()
    with pytest.raises(ValueError, match="closed"):
        cache.layer_registrations()


def test_as_torch_shares_memory_with_the_file(make_cache):
    torch = pytest.importorskip("torch", reason="torch is optional and not installed")
    cache = make_cache(layout=PACKED)
    tensor = cache.as_torch(1)
    assert tensor.dtype == torch.bfloat16
    assert tuple(tensor.shape) == (5, 2, 4, 16)  # (blocks, heads, block_size, 2*head)
    assert tensor.stride(0) * 2 == cache.layer_registrations()[1].block_stride_bytes
    tensor[3].fill_(1.0)  # bf16 1.0 is 0x3F80
    assert cache.block_bytes(1, 3) == b"\x80\x3f" * (4 * 2 * 16)
    del tensor
