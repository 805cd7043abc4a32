"""Pure bookkeeping behind /diagnostics: counters, rates, latencies and the worst problem.

Cores and shells record events here; `sage_common.ros.DiagnosticsPublisher` turns a snapshot
into diagnostic_msgs. No rclpy import, so cores and tests use it directly.
"""
from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
import time

import numpy as np


class Level(IntEnum):
    """Diagnostic levels, same values as diagnostic_msgs/DiagnosticStatus."""

    OK = 0
    WARN = 1
    ERROR = 2
    STALE = 3


@dataclass(frozen=True)
class Snapshot:
    """What one diagnostics message reports for a node."""

    level: Level
    message: str
    values: dict[str, str]


class Health:
    """Counts inputs, outputs, drops and errors; keeps recent latencies and problems.

    A problem raised with `problem()` sets the level for `hold_s` seconds, so a one-off
    error is visible in rqt for a while and then clears by itself.
    """

    def __init__(self, window_s: float = 5.0, hold_s: float = 10.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._window_s = window_s
        self._hold_s = hold_s
        self.counters: dict[str, int] = {}
        self._events: dict[str, deque[float]] = {}
        self._latency_ms: dict[str, deque[float]] = {}
        self._problem: tuple[Level, str, float] | None = None
        self._conditions: dict[str, tuple[Level, str]] = {}
        self.values: dict[str, str] = {}

    def count(self, name: str, n: int = 1) -> None:
        """Add n to a counter and remember when, for its rate."""
        self.counters[name] = self.counters.get(name, 0) + n
        events = self._events.setdefault(name, deque(maxlen=4096))
        now = self._clock()
        for _ in range(n):
            events.append(now)

    def latency(self, name: str, ms: float) -> None:
        """Record one latency sample in milliseconds."""
        self._latency_ms.setdefault(name, deque(maxlen=512)).append(float(ms))

    def rate(self, name: str) -> float:
        """Events per second of a counter over the recent window."""
        events = self._events.get(name)
        if not events:
            return 0.0
        horizon = self._clock() - self._window_s
        while events and events[0] < horizon:
            events.popleft()
        return len(events) / self._window_s

    def problem(self, level: Level, message: str) -> None:
        """Report a problem; the worst recent one is shown until it ages out."""
        now = self._clock()
        current = self._problem
        if current is None or level >= current[0] or now - current[2] > self._hold_s:
            self._problem = (level, message, now)
        self.count('errors' if level >= Level.ERROR else 'warnings')

    def condition(self, key: str, level: Level, message: str) -> None:
        """Report a lasting state (e.g. a GPU fallback) until it is set again with ''."""
        if message:
            self._conditions[key] = (level, message)
        else:
            self._conditions.pop(key, None)

    def snapshot(self) -> Snapshot:
        """Current level, message and key values (counters, rates, latency percentiles)."""
        values = dict(self.values)
        for name, n in sorted(self.counters.items()):
            values[name] = str(n)
            values[f'{name}_per_s'] = f'{self.rate(name):.2f}'
        for name, samples in sorted(self._latency_ms.items()):
            if samples:
                arr = np.fromiter(samples, float)
                values[f'{name}_p50_ms'] = f'{np.percentile(arr, 50):.3f}'
                values[f'{name}_p95_ms'] = f'{np.percentile(arr, 95):.3f}'
        level, message = Level.OK, 'ok'
        if self._problem is not None:
            p_level, p_msg, when = self._problem
            if self._clock() - when <= self._hold_s:
                level, message = p_level, p_msg
        for c_level, c_msg in self._conditions.values():
            if c_level > level:
                level, message = c_level, c_msg
        return Snapshot(level, message, values)
