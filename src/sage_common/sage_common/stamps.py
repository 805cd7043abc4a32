"""Conversions between builtin_interfaces/Time-like objects and float seconds."""
from __future__ import annotations

import struct
from typing import Any


def to_sec(stamp: Any) -> float:
    """Seconds as float from anything with sec and nanosec attributes."""
    return float(stamp.sec) + float(stamp.nanosec) * 1e-9


def to_sec_nsec(t: float) -> tuple[int, int]:
    """Split float seconds into (sec, nanosec) with nanosec in [0, 1e9)."""
    ns = int(round(t * 1e9))
    return ns // 1_000_000_000, ns % 1_000_000_000


def cdr_header_stamp(data: bytes) -> float:
    """The header stamp (float seconds) of a serialized message whose first field is a
    std_msgs/Header, read from its CDR bytes without deserializing the rest (a 900 kB Image).

    Raises:
        ValueError: fewer bytes than an encapsulation header and a stamp.
    """
    if len(data) < 12:
        raise ValueError(f'{len(data)} bytes hold no CDR header stamp')
    order = '<' if data[1] & 1 else '>'  # encapsulation kind: odd = little endian
    sec, nanosec = struct.unpack_from(order + 'iI', data, 4)
    return float(sec) + float(nanosec) * 1e-9
