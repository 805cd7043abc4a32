"""Capture thread and pacing: schedule, drops, reconnect with backoff, fallback, stop."""
import random
import threading
import time

import pytest

from sage_common.health import Health, Level

from sage_sensors.capture import CaptureRunner
from sage_sensors.errors import SensorError, StreamEnded, StreamError
from sage_sensors.pacing import ClockMap, Decimator, Pacer


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


def test_a_new_period_re_times_the_schedule_from_the_last_tick():
    clock = FakeClock()
    pacer = Pacer(0.2, threading.Event(), monotonic=clock)
    assert pacer.wait() == pytest.approx(100.0)
    clock.t = 100.05
    pacer.set_period(0.02)          # faster: the tick one new period after the last is past
    assert pacer.wait() == pytest.approx(100.05)
    clock.t = 100.07
    assert pacer.wait() == pytest.approx(100.07)
    pacer.set_period(0.5)           # slower: one new period after the last tick
    clock.t = 100.57
    assert pacer.wait() == pytest.approx(100.57)
    assert pacer.dropped == 0


def test_a_sleeping_tick_is_re_timed_at_once_not_at_the_old_period():
    stop = threading.Event()
    pacer = Pacer(5.0, stop)        # 0.2 Hz: the next tick is 5 s away
    pacer.wait()
    threading.Timer(0.05, pacer.set_period, (0.01,)).start()
    start = time.monotonic()
    pacer.wait()
    assert time.monotonic() - start < 2.0


def test_decimator_keeps_a_faster_stream_at_the_asked_rate_despite_jitter():
    rng = random.Random(3)
    stamps = [k / 30.0 + rng.uniform(-0.004, 0.004) for k in range(300)]   # 10 s at 30 Hz
    for rate, expected in ((15.0, 150), (12.0, 120), (5.0, 50)):
        dec = Decimator(1.0 / rate, 1.0 / 30.0)
        kept = [s for s in stamps if dec.keep(s)]
        assert abs(len(kept) - expected) <= 1, (rate, len(kept))
        assert dec.skipped == 300 - len(kept)
    assert all(Decimator(1.0 / 60.0, 1.0 / 30.0).keep(s) for s in stamps)  # slower source


class RestartingSource(ScriptedSource):
    """A source that can apply a new rate only by being reopened (like a GStreamer pipeline)."""

    def __init__(self):
        super().__init__([])
        self.rate_hz = 30.0
        self.reopened = threading.Event()
        self.items = 0

    def set_rate(self, fps):
        self.rate_hz = fps
        return False

    def open(self):
        super().open()
        if self.opens > 1:
            self.reopened.set()

    def read(self):
        time.sleep(0.005)               # a device delivering at 200 Hz
        self.items += 1
        return self.items


def test_a_source_that_cannot_re_time_is_restarted_by_the_capture_thread():
    got, health, stop = [], Health(), threading.Event()
    src = RestartingSource()
    src.open()
    runner = CaptureRunner(src, got.append, health, stop)
    runner.start()
    assert runner.set_rate(5.0) is False
    assert src.reopened.wait(5.0)
    count = len(got)
    deadline = time.monotonic() + 5.0
    while len(got) <= count + 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    runner.stop()
    assert src.opens == 2 and src.closed >= 2 and health.counters['restarts'] == 1
    assert len(got) > count                 # frames flow again after the restart


def test_set_rate_on_a_source_without_a_rate_names_it():
    runner = CaptureRunner(ScriptedSource([], name='imu:file'), lambda _: None, Health(),
                           threading.Event())
    with pytest.raises(SensorError, match='imu:file has no adjustable rate'):
        runner.set_rate(10.0)
