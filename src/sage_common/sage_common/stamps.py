"""Conversions between builtin_interfaces/Time-like objects and float seconds."""
from __future__ import annotations

from typing import Any


def to_sec(stamp: Any) -> float:
    """Seconds as float from anything with sec and nanosec attributes."""
    return float(stamp.sec) + float(stamp.nanosec) * 1e-9


def to_sec_nsec(t: float) -> tuple[int, int]:
    """Split float seconds into (sec, nanosec) with nanosec in [0, 1e9)."""
    ns = int(round(t * 1e9))
    return ns // 1_000_000_000, ns % 1_000_000_000
