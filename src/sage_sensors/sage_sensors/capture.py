"""The capture thread shared by the three nodes: read, hand over, recover.

A Source blocks for at most about one period per read() (devices wait for hardware, file and
synthetic sources wait on a wall-clock schedule) and returns one item stamped at capture. The
CaptureRunner calls read() in its own thread and hands every item to `emit` (the node's
publish), so a slow device never blocks the executor. On a StreamError it reconnects devices
with exponential backoff, and switches a file stream to its fallback (or stops it) with an
ERROR in Health, so a vanished or corrupt file never crashes the node. A rate change
(`set_rate`, from any thread) re-times a RateSource in place, or, when the source says it
cannot, restarts capture (close, open) in the capture thread. No rclpy.
"""
from __future__ import annotations

from collections.abc import Callable
import threading
from typing import Any, Protocol

from sage_common.errors import SageError
from sage_common.health import Health, Level

from sage_sensors.errors import SensorError, StreamEnded, StreamError
from sage_sensors.realtime import set_thread_priority

Log = Callable[[Level, str], None]


class Source(Protocol):
    """One sensor backend as the runner sees it."""

    #: short description for logs and diagnostics, e.g. 'file:/data/scene.avi'
    name: str
    #: True for hardware: a failure is retried with backoff instead of falling back
    reconnectable: bool
    #: items the source knows it lost (missed schedule ticks, device overruns)
    dropped: int

    def open(self) -> None:
        """Acquire the device or file. Raises SensorError/StreamError."""

    def read(self) -> Any | None:
        """Next captured item, or None when nothing arrived (timeout, stopping)."""

    def close(self) -> None:
        """Release the device or file; safe to call twice."""


class RateSource(Source, Protocol):
    """A source whose capture rate can change while it runs (the camera)."""

    #: frames per second it delivers now
    rate_hz: float

    def set_rate(self, fps: float) -> bool:
        """Ask for a new rate (any thread); False when it applies only after close + open."""


def _no_log(level: Level, message: str) -> None:
    del level, message


class CaptureRunner:
    """Runs a Source in a daemon thread and hands its items to emit.

    Args:
        source: an opened source.
        emit: called in the capture thread with every item (must not block for long).
        health: counters 'captured', 'dropped', 'reconnects' and problems go here.
        stop: shared stop event (the sources' pacers wait on it too).
        log: log(level, message) sink (the node's logger).
        fallback: builds a replacement source when a non-reconnectable one fails.
        backoff_s: (first, max) delay between reconnect attempts.
        priority: SCHED_FIFO priority of the capture thread (0 = normal scheduling).
    """

    def __init__(self, source: Source, emit: Callable[[Any], None], health: Health,
                 stop: threading.Event, log: Log = _no_log,
                 fallback: Callable[[], Source] | None = None,
                 backoff_s: tuple[float, float] = (0.5, 10.0), priority: int = 0) -> None:
        self.source = source
        self._priority = priority
        self._emit = emit
        self._health = health
        self._stop = stop
        self._log = log
        self._fallback = fallback
        self._backoff = backoff_s
        self._dropped_seen = 0
        self._restart = threading.Event()
        self.running = False
        self._thread = threading.Thread(target=self._loop, name=f'capture:{source.name}',
                                        daemon=True)

    def start(self) -> None:
        """Start the capture thread."""
        self.running = True
        self._health.values['source'] = self.source.name
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        """Ask the thread to stop, wait for it, and close the source."""
        self._stop.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout)
        self.source.close()
        self.running = False

    def set_rate(self, fps: float) -> bool:
        """Change the capture rate (any thread).

        Returns:
            True when the source re-timed in place, False when capture restarts to apply it.

        Raises:
            SensorError: the source has no adjustable rate.
        """
        set_rate = getattr(self.source, 'set_rate', None)
        if set_rate is None:
            raise SensorError(f'{self.source.name} has no adjustable rate')
        if set_rate(fps):
            return True
        self._restart.set()
        return False

    def _set_priority(self) -> None:
        scheduling = set_thread_priority(self._priority)
        self._health.values['scheduling'] = scheduling
        if scheduling.startswith('normal ('):
            self._log(Level.WARN, f'capture thread: {scheduling}')
            self._health.problem(Level.WARN, f'capture thread runs at {scheduling}')

    def _loop(self) -> None:
        self._set_priority()
        try:
            while not self._stop.is_set():
                if self._restart.is_set() and not self._restart_source():
                    break
                try:
                    item = self.source.read()
                except StreamEnded as err:
                    self._log(Level.WARN, f'{self.source.name}: {err}; stream stopped')
                    self._health.problem(Level.WARN, f'stream ended: {err}')
                    break
                except StreamError as err:
                    if not self._recover(err):
                        break
                    continue
                self._count_drops()
                if item is None or self._stop.is_set():
                    continue
                self._health.count('captured')
                try:
                    self._emit(item)
                except SageError as err:      # a domain problem with one item: report, go on
                    self._health.problem(Level.WARN, f'cannot publish: {err}')
        finally:
            self.running = False
            self._health.values['stream'] = 'stopped'

    def _restart_source(self) -> bool:
        """Close and reopen the source for a new rate; False when the stream must stop."""
        self._restart.clear()
        self._log(Level.OK, f'{self.source.name}: restarting capture for the new rate')
        self.source.close()
        try:
            self.source.open()
        except StreamError as err:
            return self._recover(err)
        self._health.count('restarts')
        self._dropped_seen = self.source.dropped
        return True

    def _count_drops(self) -> None:
        dropped = self.source.dropped
        if dropped > self._dropped_seen:
            self._health.count('dropped', dropped - self._dropped_seen)
        self._dropped_seen = dropped

    def _recover(self, err: StreamError) -> bool:
        """Reconnect or fall back after a failure; False when the stream must stop."""
        name = self.source.name
        self.source.close()
        if self.source.reconnectable:
            self._log(Level.WARN, f'{name}: {err}; reconnecting')
            self._health.problem(Level.WARN, f'{name} lost ({err}); reconnecting')
            delay = self._backoff[0]
            while not self._stop.wait(delay):
                try:
                    self.source.open()
                except SageError as again:
                    self._health.problem(Level.WARN, f'{name} still unavailable: {again}')
                    delay = min(delay * 2.0, self._backoff[1])
                    continue
                self._health.count('reconnects')
                self._dropped_seen = self.source.dropped
                self._log(Level.OK, f'{name}: reconnected')
                return True
            return False
        if self._fallback is not None:
            try:
                replacement = self._fallback()
                replacement.open()
            except SageError as fail:
                self._log(Level.ERROR, f'{name}: {err}; fallback failed too: {fail}')
                self._health.problem(Level.ERROR, f'{name} failed ({err}); stream stopped')
                return False
            self._log(Level.ERROR, f'{name}: {err}; falling back to {replacement.name}')
            self._health.problem(Level.ERROR, f'{name} failed ({err}); now {replacement.name}')
            self.source = replacement
            self._dropped_seen = replacement.dropped
            self._health.values['source'] = replacement.name
            return True
        self._log(Level.ERROR, f'{name}: {err}; stream stopped')
        self._health.problem(Level.ERROR, f'{name} failed ({err}); stream stopped')
        return False
