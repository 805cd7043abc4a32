"""Wall-clock pacing for file and synthetic sources: a fixed schedule that does not drift.

The schedule is `deadline[k] = start + k * period` (next_deadline += period), never
"sleep(period) after the work", so the achieved rate equals the requested one however long
each frame takes, as long as it takes less than a period on average. When the work falls
more than `max_lag` periods (and at least `min_lag_s`) behind, the pacer skips the missed ticks
and counts them as drops; a shorter stall (the OS preempting the thread) is caught up with a
short burst, so a 200 Hz IMU loses no sample to a 20 ms hiccup.
"""
from __future__ import annotations

from collections.abc import Callable
import threading
import time


class Pacer:
    """Sleeps until the next tick of a fixed-rate schedule.

    Args:
        period_s: seconds between ticks (> 0); 0 means "as fast as possible".
        stop: event that interrupts a sleep (wait returns None once it is set).
        monotonic: the monotonic clock (injectable for tests).
        max_lag: ticks the schedule may fall behind before missed ticks are dropped.
        min_lag_s: the drop threshold is never shorter than this (seconds).
    """

    def __init__(self, period_s: float, stop: threading.Event | None = None,
                 monotonic: Callable[[], float] = time.monotonic, max_lag: int = 3,
                 min_lag_s: float = 0.1) -> None:
        if period_s < 0:
            raise ValueError('period_s must be >= 0')
        self.period_s = period_s
        self._stop = stop if stop is not None else threading.Event()
        self._mono = monotonic
        self._max_lag = max(max_lag, int(min_lag_s / period_s) if period_s > 0 else 0)
        self._next: float | None = None
        self.dropped = 0
        self.ticks = 0

    def reset(self) -> None:
        """Start the schedule again at the next wait()."""
        self._next = None

    def wait(self) -> float | None:
        """Block until the next tick; return its scheduled monotonic time (None when stopped).

        The scheduled time, not the wake-up time, is what a synthetic source stamps, so stamps
        are exactly periodic even when the thread wakes late.
        """
        now = self._mono()
        if self._next is None:
            self._next = now
        elif self.period_s > 0:
            lag = int((now - self._next) / self.period_s)
            if lag > self._max_lag:
                self.dropped += lag
                self._next += lag * self.period_s
        delay = self._next - now
        if delay > 0 and self._stop.wait(delay):
            return None
        if self._stop.is_set():
            return None
        tick = self._next
        self._next = tick + self.period_s if self.period_s > 0 else self._mono()
        self.ticks += 1
        return tick


class ClockMap:
    """Maps monotonic times to the node clock (float seconds), fixed once at construction.

    Sleeping uses the monotonic clock (immune to NTP steps); stamps use the node clock.
    """

    def __init__(self, clock: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._mono = monotonic
        self.offset = clock() - monotonic()

    def to_clock(self, mono_t: float) -> float:
        """Node-clock stamp of a monotonic time."""
        return mono_t + self.offset

    def now(self) -> float:
        """Current node-clock time."""
        return self._clock()
