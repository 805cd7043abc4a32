"""A sensor's first frames kept until something reads them.

A sensor built before its consumer (the microphone before the audio encoder in one process:
the encoder's model load then overlaps the first window's second of audio) would publish its
first frames to nobody. StartHold keeps up to `limit` of them while no reader has matched and
hands them over, oldest first, with the first frame that has a reader. After that it passes
every frame straight through: a reader that leaves later is not waited for again.
"""
from __future__ import annotations

from collections import deque
from typing import Generic, TypeVar

T = TypeVar('T')


class StartHold(Generic[T]):
    """Frames held until the first reader (limit 0: none held)."""

    def __init__(self, limit: int) -> None:
        self._held: deque[T] = deque(maxlen=max(0, int(limit)))
        self.released = limit <= 0
        self.dropped = 0  # held frames pushed out by newer ones before a reader came

    def take(self, frame: T, listened: bool) -> list[T]:
        """The frames to publish now, given whether a reader is matched."""
        if self.released:
            return [frame]
        if not listened:
            if len(self._held) == self._held.maxlen:
                self.dropped += 1
            self._held.append(frame)
            return []
        self.released = True
        out = [*self._held, frame]
        self._held.clear()
        return out
