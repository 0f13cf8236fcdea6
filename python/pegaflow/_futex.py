"""futex(FUTEX_WAIT) on a 32-bit word of a shared mapping, through ctypes: the load flag's waiter sleeps in the kernel
and the node's FUTEX_WAKE (after it writes the state) wakes it at once. Linux on x86-64 and aarch64 only;
``AVAILABLE`` is False elsewhere and callers poll instead. ctypes releases the GIL for the call.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import mmap
import platform
import sys

_SYS_FUTEX = {"x86_64": 202, "amd64": 202, "aarch64": 98, "arm64": 98}.get(platform.machine().lower())
_FUTEX_WAIT = 0  # shared (not FUTEX_PRIVATE_FLAG): the waker is another process
_FUTEX_WAKE = 1


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


def _load_syscall():
    if not sys.platform.startswith("linux") or _SYS_FUTEX is None:
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        fn = libc.syscall
    except (OSError, AttributeError):
        return None
    fn.restype = ctypes.c_long
    return fn


_syscall = _load_syscall()
AVAILABLE = _syscall is not None


def buffer_address(buffer: mmap.mmap) -> int:
    """The address of the mapping's first byte (valid while the mapping stays open)."""
    anchor = ctypes.c_char.from_buffer(buffer)
    try:
        return ctypes.addressof(anchor)
    finally:
        del anchor  # releases the buffer export, so the mapping can still be closed


def wait(address: int, expected: int, timeout_s: float) -> bool:
    """Sleeps while the 32-bit word at ``address`` equals ``expected``, at most ``timeout_s``.

    Returns False if the call is unusable here (the caller polls), True otherwise (woken, value changed, timed out or
    interrupted: the caller re-reads the word).
    """
    if _syscall is None:
        return False
    seconds = max(0.0, timeout_s)
    ts = _Timespec(int(seconds), int((seconds % 1.0) * 1e9))
    rc = _syscall(
        ctypes.c_long(_SYS_FUTEX),
        ctypes.c_void_p(address),
        ctypes.c_int(_FUTEX_WAIT),
        ctypes.c_uint32(expected & 0xFFFFFFFF),
        ctypes.byref(ts),
        ctypes.c_void_p(0),
        ctypes.c_int(0),
    )
    if rc == 0:
        return True
    err = ctypes.get_errno()
    return err in (errno.EAGAIN, errno.ETIMEDOUT, errno.EINTR)


def wake_all(address: int) -> int:
    """Wakes every waiter on the word at ``address`` (what the node does after writing a flag); -1 if unavailable."""
    if _syscall is None:
        return -1
    return _syscall(
        ctypes.c_long(_SYS_FUTEX), ctypes.c_void_p(address), ctypes.c_int(_FUTEX_WAKE), ctypes.c_int(2**31 - 1)
    )
