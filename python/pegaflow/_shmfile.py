"""Shared-memory files: naming under /dev/shm and mapping them read-write, shared with the node."""

from __future__ import annotations

import mmap
import os
import uuid
from pathlib import Path

SHM_DIR = Path("/dev/shm")


def shm_path(name: str | None = None) -> Path:
    """A path in /dev/shm; a fresh unique name when none is given."""
    return SHM_DIR / (name or f"pegaflow-{os.getpid()}-{uuid.uuid4().hex[:12]}")


def resolve_shm_path(path: str | os.PathLike | None) -> Path:
    """Absolute paths stay; a bare or relative name goes under /dev/shm (the node needs an absolute path)."""
    if path is None:
        return shm_path()
    path = Path(path)
    return path if path.is_absolute() else SHM_DIR / path


def map_file(path: Path, size_bytes: int, create: bool) -> mmap.mmap:
    """Maps ``path`` read-write and shared; creates (truncating) and sizes it when ``create``, else checks its size."""
    flags = os.O_RDWR | (os.O_CREAT | os.O_TRUNC if create else 0)
    fd = os.open(path, flags, 0o600)
    try:
        if create:
            os.ftruncate(fd, size_bytes)  # tmpfs: the pages read as zeros until written
        else:
            actual = os.fstat(fd).st_size
            if actual < size_bytes:
                raise ValueError(f"{path} has {actual} bytes, the layout needs {size_bytes}")
        return mmap.mmap(fd, size_bytes, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ | mmap.PROT_WRITE)
    finally:
        os.close(fd)  # the mapping keeps the file open
