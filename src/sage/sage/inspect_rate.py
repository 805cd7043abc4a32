"""What `sage topic hz` computes: a topic's rate over a window of the latest arrivals."""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass
import math

DEFAULT_WINDOW = 100  # arrivals the rate is computed over


@dataclass(frozen=True)
class Rate:
    """A window's statistics: mean rate and the spread of the gaps between arrivals."""

    hz: float
    min_s: float
    max_s: float
    std_s: float
    window: int  # gaps in the window
    total: int   # messages heard since the start

    def line(self) -> str:
        return (f'average rate: {self.hz:.3f} Hz  min {self.min_s:.4f} s  max {self.max_s:.4f} s'
                f'  std dev {self.std_s:.5f} s  window {self.window}')


class RateWindow:
    """Arrival times (seconds, any monotonic clock) of the last `window` + 1 messages."""

    def __init__(self, window: int = DEFAULT_WINDOW) -> None:
        if window < 1:
            raise ValueError('the window must hold at least one gap')
        self._times: deque[float] = deque(maxlen=window + 1)
        self.total = 0

    def add(self, t: float) -> None:
        self._times.append(t)
        self.total += 1

    def rate(self) -> Rate | None:
        """The window's rate; None until two messages arrived."""
        if len(self._times) < 2:
            return None
        times = list(self._times)
        gaps = [b - a for a, b in zip(times, times[1:])]
        span = times[-1] - times[0]
        mean = span / len(gaps)
        std = math.sqrt(sum((g - mean) ** 2 for g in gaps) / len(gaps))
        hz = len(gaps) / span if span > 0 else math.inf
        return Rate(hz, min(gaps), max(gaps), std, len(gaps), self.total)
