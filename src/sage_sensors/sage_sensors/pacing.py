"""Wall-clock pacing for file and synthetic sources: a fixed schedule that does not drift.

The schedule is `deadline[k] = start + k * period` (next_deadline += period), never
"sleep(period) after the work", so the achieved rate equals the requested one however long
each frame takes, as long as it takes less than a period on average. When the work falls
more than `max_lag` periods (and at least `min_lag_s`) behind, the pacer skips the missed ticks
and counts them as drops; a shorter stall (the OS preempting the thread) is caught up with a
short burst, so a 200 Hz IMU loses no sample to a 20 ms hiccup.

The rate may change while a source runs (`Pacer.set_period`, from any thread): the schedule is
re-timed, not restarted. `Decimator` thins a faster stream (a device that cannot slow down) to
a lower rate by capture stamp, on the same non-drifting schedule.
"""
from __future__ import annotations

from collections.abc import Callable
import threading
import time

#: Longest single sleep: a rate change made while the pacer sleeps (a slow rate, up to 10 s a
#: tick) takes effect within this, not at the old tick.
RETIME_CHECK_S = 0.1


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
        self._stop = stop if stop is not None else threading.Event()
        self._mono = monotonic
        self._max_lag_ticks = max_lag
        self._min_lag_s = min_lag_s
        self._next: float | None = None
        self._last: float | None = None
        self._lock = threading.Lock()    # set_period comes from another thread
        self.dropped = 0
        self.ticks = 0
        self.set_period(period_s)

    def set_period(self, period_s: float) -> None:
        """Change the rate (any thread): the next tick comes one new period after the last.

        The schedule is re-timed, not restarted: no burst of catch-up ticks and no drops. A
        tick that would already be due (a faster rate after a long slow period) comes now.
        """
        if period_s < 0:
            raise ValueError('period_s must be >= 0')
        with self._lock:
            self._max_lag = max(self._max_lag_ticks,
                                int(self._min_lag_s / period_s) if period_s > 0 else 0)
            self.period_s = period_s
            if self._last is not None and period_s > 0:
                self._next = max(self._last + period_s, self._mono())

    def reset(self) -> None:
        """Start the schedule again at the next wait()."""
        with self._lock:
            self._next = None
            self._last = None

    def wait(self) -> float | None:
        """Block until the next tick; return its scheduled monotonic time (None when stopped).

        The scheduled time, not the wake-up time, is what a synthetic source stamps, so stamps
        are exactly periodic even when the thread wakes late.
        """
        while True:
            with self._lock:
                now = self._mono()
                if self._next is None:
                    self._next = now
                elif self.period_s > 0:
                    lag = int((now - self._next) / self.period_s)
                    if lag > self._max_lag:
                        self.dropped += lag
                        self._next += lag * self.period_s
                delay = self._next - now
                if delay <= 0:
                    tick = self._next
                    self._last = tick
                    self._next = tick + self.period_s if self.period_s > 0 else now
                    break
                target = self._next
            if self._stop.wait(min(delay, RETIME_CHECK_S)):
                return None
            with self._lock:
                if delay <= RETIME_CHECK_S and self._next == target:
                    # Slept the whole delay and nobody re-timed the tick: it is due.
                    tick = target
                    self._last = tick
                    self._next = tick + self.period_s if self.period_s > 0 else self._mono()
                    break
            # Look again: set_period may have re-timed the tick while this thread slept.
        if self._stop.is_set():
            return None
        self.ticks += 1
        return tick


class Decimator:
    """Keeps the frames of a faster stream that fall on a slower fixed-rate schedule.

    For a device that delivers more frames than asked for (it cannot slow down, or a pipeline
    runs at a fixed rate). The schedule is `next += period` from the first kept frame, so the
    kept rate equals the asked one on average whatever the device's jitter; a frame is kept
    when it arrives no earlier than half a source interval before its slot.

    Args:
        period_s: seconds between kept frames (0 = keep every frame).
        source_period_s: the stream's own interval (sets the early-arrival slack).
    """

    def __init__(self, period_s: float = 0.0, source_period_s: float = 0.0) -> None:
        self.period_s = 0.0
        self._slack = 0.0
        self._next: float | None = None
        self.skipped = 0
        self.set_period(period_s, source_period_s)

    def set_period(self, period_s: float, source_period_s: float) -> None:
        """Change the kept rate; 0 (or not slower than the source) keeps every frame."""
        if period_s < 0 or source_period_s < 0:
            raise ValueError('periods must be >= 0')
        self.period_s = period_s if period_s > source_period_s else 0.0
        self._slack = source_period_s / 2.0
        self._next = None

    def keep(self, stamp: float) -> bool:
        """True when the frame captured at `stamp` (seconds) is passed on."""
        if self.period_s <= 0.0:
            return True
        if self._next is not None and stamp < self._next - self._slack:
            self.skipped += 1
            return False
        late = self._next is None or stamp - self._next >= self.period_s
        self._next = stamp + self.period_s if late else self._next + self.period_s
        return True


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
