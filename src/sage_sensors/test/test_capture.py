"""Capture thread and pacing: schedule, drops, reconnect with backoff, fallback, stop."""
import threading

import pytest

from sage_common.health import Health, Level

from sage_sensors.capture import CaptureRunner
from sage_sensors.errors import SensorError, StreamEnded, StreamError
from sage_sensors.pacing import ClockMap, Pacer


class FakeClock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def test_pacer_schedule_does_not_drift_with_slow_work():
    clock = FakeClock()
    stop = threading.Event()
    pacer = Pacer(0.01, stop, monotonic=clock)
    ticks = []
    for _ in range(5):
        ticks.append(pacer.wait())
        clock.t += 0.004 + 0.01     # work plus the sleep the pacer would have done
    # the schedule is start + k * period whatever the work took (no accumulated drift)
    assert ticks == pytest.approx([100.0 + k * 0.01 for k in range(5)], abs=1e-9)
    assert pacer.dropped == 0


def test_pacer_skips_and_counts_ticks_it_fell_far_behind_on():
    clock = FakeClock()
    pacer = Pacer(0.01, threading.Event(), monotonic=clock, max_lag=3, min_lag_s=0.0)
    pacer.wait()
    clock.t += 0.105                # stalled for 10 periods
    tick = pacer.wait()
    assert pacer.dropped == 9 and tick == pytest.approx(100.1)


def test_pacer_returns_none_once_stopped():
    stop = threading.Event()
    pacer = Pacer(10.0, stop)
    pacer.wait()
    stop.set()
    assert pacer.wait() is None


def test_clock_map_shifts_monotonic_times_onto_the_node_clock():
    cm = ClockMap(clock=lambda: 1000.0, monotonic=lambda: 5.0)
    assert cm.to_clock(6.5) == 1001.5


class ScriptedSource:
    """Yields items, raising the scripted errors in between."""

    def __init__(self, script, name='fake', reconnectable=False, open_failures=0):
        self.script = list(script)
        self.name = name
        self.reconnectable = reconnectable
        self.dropped = 0
        self.opens = 0
        self.open_failures = open_failures
        self.closed = 0

    def open(self):
        self.opens += 1
        if self.open_failures:
            self.open_failures -= 1
            raise StreamError('still gone')

    def read(self):
        if not self.script:
            raise StreamEnded('script over')
        item = self.script.pop(0)
        if isinstance(item, Exception):
            raise item
        if item == 'drop':
            self.dropped += 2
            return None
        return item

    def close(self):
        self.closed += 1


def _run(runner, timeout=5.0):
    runner.start()
    runner._thread.join(timeout)
    assert not runner._thread.is_alive()


def test_items_reach_emit_and_drops_are_counted():
    got, health = [], Health()
    src = ScriptedSource([1, 'drop', 2, 3])
    _run(CaptureRunner(src, got.append, health, threading.Event()))
    assert got == [1, 2, 3]
    assert health.counters['captured'] == 3 and health.counters['dropped'] == 2
    assert health.snapshot().level == Level.WARN          # the stream ended


def test_a_lost_device_is_reconnected_with_backoff():
    got, health = [], Health()
    src = ScriptedSource([1, StreamError('unplugged'), 2], reconnectable=True,
                         open_failures=2)
    _run(CaptureRunner(src, got.append, health, threading.Event(), backoff_s=(0.01, 0.02)))
    assert got == [1, 2]
    assert src.opens == 3 and health.counters['reconnects'] == 1


def test_a_failing_file_falls_back_with_an_error_on_diagnostics():
    got, health, logs = [], Health(), []
    broken = ScriptedSource([1, StreamError('file vanished')], name='file:x')
    spare = ScriptedSource(['s1', 's2'], name='synthetic')
    runner = CaptureRunner(broken, got.append, health, threading.Event(),
                           log=lambda lvl, msg: logs.append((lvl, msg)), fallback=lambda: spare)
    _run(runner)
    assert got == [1, 's1', 's2'] and runner.source is spare
    assert health.values['source'] == 'synthetic'
    assert any(lvl == Level.ERROR and 'vanished' in msg for lvl, msg in logs)


def test_without_fallback_a_failing_stream_stops_without_raising():
    health = Health()
    runner = CaptureRunner(ScriptedSource([StreamError('corrupt')]), lambda _: None, health,
                           threading.Event())
    _run(runner)
    snap = health.snapshot()
    assert snap.level == Level.ERROR and 'corrupt' in snap.message
    assert not runner.running


def test_an_emit_error_is_reported_and_capture_goes_on():
    health, got = Health(), []

    def emit(item):
        if item == 2:
            raise SensorError('bad item')
        got.append(item)
    _run(CaptureRunner(ScriptedSource([1, 2, 3]), emit, health, threading.Event()))
    assert got == [1, 3] and health.counters['warnings'] >= 1


def test_stop_ends_the_thread_and_closes_the_source():
    stop = threading.Event()
    src = ScriptedSource([])
    src.read = lambda: stop.wait(0.01) and None
    runner = CaptureRunner(src, lambda _: None, Health(), stop)
    runner.start()
    runner.stop()
    assert not runner._thread.is_alive() and src.closed >= 1


def test_pacer_catches_up_a_short_stall_without_dropping():
    clock = FakeClock()
    pacer = Pacer(0.005, threading.Event(), monotonic=clock, max_lag=3, min_lag_s=0.1)
    pacer.wait()
    clock.t += 0.03                 # a 30 ms hiccup at 200 Hz: six ticks late
    ticks = [pacer.wait() for _ in range(7)]
    assert pacer.dropped == 0
    assert ticks == pytest.approx([100.0 + 0.005 * k for k in range(1, 8)], abs=1e-9)
