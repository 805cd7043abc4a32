"""Domain errors of the sensor nodes."""
from __future__ import annotations

from sage_common.errors import SageError


class SensorError(SageError):
    """A sensor cannot be opened or configured (bad parameter, missing device or file)."""


class StreamError(SensorError):
    """A running stream failed (device gone, file vanished, corrupt data); may be retried."""


class StreamEnded(StreamError):
    """A non-looping file reached its end: the stream stops cleanly."""
