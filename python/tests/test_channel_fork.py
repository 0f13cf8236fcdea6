"""A forked child must not use its parent's command channel (both would hand out the same slots): no node needed."""

from __future__ import annotations

import os

import pytest

from pegaflow import channel


class _Stub:
    context_id = "ctx"
    open = True

    def __init__(self):
        self._pid = os.getpid()

    def close(self):
        pass


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_does_not_see_the_parents_channel():
    stub = _Stub()
    channel.register("host:1", stub)
    try:
        assert channel.lookup("host:1", "ctx") is stub
        assert channel.any_for("host:1") is stub
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child
            seen = channel.lookup("host:1", "ctx") is None and channel.any_for("host:1") is None
            os.write(write, b"1" if seen else b"0")
            os._exit(0)
        os.close(write)
        assert os.read(read, 1) == b"1", "the child saw the parent's channel"
        os.waitpid(pid, 0)
    finally:
        channel.unregister("host:1", stub)
