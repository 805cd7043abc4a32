"""A sensor's first frames kept until their consumer reads them.

A sensor built before its consumer (the microphone before the audio encoder in one process:
the encoder's model load then overlaps the first window's second of audio) would publish its
first frames to nobody. StartHold keeps up to `limit` of them until the reader it waits for
has matched and hands them over, oldest first, with that frame. Another reader that comes
first (a live view, a bag recorder, a benchmark's probe) does not end the hold, or the
consumer would miss the frames held for it; once the hold is full (the sensor has run for
its length) any reader ends it, so a consumer that never comes holds back nobody. After that
every frame passes straight through: a reader that leaves later is not waited for again.
"""
from __future__ import annotations

from collections import deque
from typing import Generic, TypeVar

T = TypeVar('T')


class StartHold(Generic[T]):
    """Frames held until the awaited reader (limit 0: none held)."""

    def __init__(self, limit: int) -> None:
        self._held: deque[T] = deque(maxlen=max(0, int(limit)))
        self.released = limit <= 0
        self.dropped = 0  # held frames pushed out by newer ones before a reader came

    def take(self, frame: T, awaited: bool, anyone: bool = False) -> list[T]:
        """The frames to publish now, given whether the awaited reader is matched and whether
        any reader is (which ends a full hold)."""
        if self.released:
            return [frame]
        full = len(self._held) == self._held.maxlen
        if not (awaited or (full and anyone)):
            if full:
                self.dropped += 1
            self._held.append(frame)
            return []
        self.released = True
        out = [*self._held, frame]
        self._held.clear()
        return out
