"""Returning freed heap to the operating system after a burst (glibc's malloc_trim).

A burst of rows allocates many small Python objects; once they are freed, glibc keeps the pages
for reuse, so the process's RSS stays at the burst's peak. On an 8 GB board shared with the GPU
that memory is better given back.
"""
from __future__ import annotations

import ctypes
import ctypes.util
from functools import lru_cache
from typing import Any


@lru_cache(maxsize=1)
def _libc() -> Any:
    name = ctypes.util.find_library('c')
    if not name:
        return None
    try:
        lib = ctypes.CDLL(name)
        return lib if hasattr(lib, 'malloc_trim') else None
    except OSError:
        return None


def release_freed_heap() -> bool:
    """Give freed heap pages back to the OS; False where the C library cannot (not glibc)."""
    lib = _libc()
    if lib is None:
        return False
    lib.malloc_trim(0)
    return True
