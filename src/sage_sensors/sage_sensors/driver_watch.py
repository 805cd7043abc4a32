"""Watching a robot driver's stream: gaps, out-of-order stamps, silence, suspicious IMU units.

The `ros` camera and IMU backends and the microphone's `audio_common` backend take messages a
driver publishes. The driver owns the stamps (capture time on its clock), so what SAGE can tell
about the stream it is given comes from those stamps and from arrival times:

- a gap: two consecutive stamps further apart than `gap_factor` times the stream's own period
  (the median of its recent intervals), with an estimate of the messages missing;
- out of order: a stamp not after the previous one (a driver restart, a bag looping);
- silence: no message for `silent_s` seconds of arrival time (a dead or stalled driver);
- units (IMU): sensor_msgs/Imu is m/s^2 and rad/s. A mean |acceleration| near 1 over a
  second is gravity in g; angular speeds beyond what a robot turns at are degrees per second.

Pure (no rclpy): the node shells feed it and put what it says on /diagnostics.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass
import math
import statistics

import numpy as np

from sage_common.params import ParamSpec

#: Intervals the period estimate is the median of; a gap is judged once MIN_INTERVALS exist.
PERIOD_WINDOW = 64
MIN_INTERVALS = 8

DRIVER_PARAMS: tuple[ParamSpec, ...] = (
    ParamSpec('driver.silent_s', 2.0, 'ros/audio_common backends: a driver topic without a '
              'message for this long (s) is reported on /diagnostics (ERROR once it had '
              'spoken, WARN while it never has)',
              min_value=0.1, max_value=3600.0, read_only=True),
    ParamSpec('driver.gap_factor', 1.8, 'ros/audio_common backends: consecutive driver stamps '
              'further apart than this many periods (the median recent interval) count as a '
              'gap, with round(interval / period) - 1 messages missing',
              min_value=1.2, max_value=100.0, read_only=True),
    ParamSpec('driver.depth', 10, 'ros/audio_common backends: subscription queue depth '
              '(best effort, so reliable and best-effort publishers both match); a deeper '
              'queue rides out a stalled node without losing messages',
              min_value=1, max_value=10000, read_only=True),
)


@dataclass(frozen=True)
class Gap:
    """A hole in a driver stream: the interval, the period it broke, messages missing."""

    interval_s: float
    period_s: float
    missing: int


class DriverWatch:
    """Counts a driver stream's messages, gaps and out-of-order stamps; tells silence.

    Args:
        topic: the driver topic (for messages).
        gap_factor: an interval above gap_factor x period is a gap.
        silent_s: no arrival for this long is silence.
    """

    def __init__(self, topic: str, gap_factor: float = 1.8, silent_s: float = 2.0) -> None:
        self.topic = topic
        self.gap_factor = float(gap_factor)
        self.silent_s = float(silent_s)
        self.messages = 0
        self.gaps = 0
        self.missing = 0
        self.out_of_order = 0
        self.unstamped = 0
        self._last_stamp: float | None = None
        self._last_arrival: float | None = None
        self._started: float | None = None
        self._intervals: deque[float] = deque(maxlen=PERIOD_WINDOW)

    @property
    def period_s(self) -> float | None:
        """The stream's own period (median recent interval), once enough are known."""
        if len(self._intervals) < MIN_INTERVALS:
            return None
        return float(statistics.median(self._intervals))

    def start(self, now: float) -> None:
        """Begin watching at arrival time now (silence before the first message counts)."""
        if self._started is None:
            self._started = now

    def message(self, stamp: float, arrival: float) -> Gap | None:
        """One message stamped `stamp` (0 = the driver did not stamp it) arrived at `arrival`.

        Returns:
            the gap this message closes, or None.
        """
        self.start(arrival)
        self.messages += 1
        self._last_arrival = arrival
        if stamp <= 0.0:
            self.unstamped += 1
            return None
        last, self._last_stamp = self._last_stamp, stamp
        if last is None:
            return None
        interval = stamp - last
        if interval <= 0.0:
            self.out_of_order += 1
            return None
        period = self.period_s
        self._intervals.append(interval)
        if period is None or interval <= self.gap_factor * period:
            return None
        self._intervals.pop()       # a gap is not the stream's period
        missing = max(1, int(round(interval / period)) - 1)
        self.gaps += 1
        self.missing += missing
        return Gap(interval, period, missing)

    def silence(self, now: float) -> str:
        """'' while the stream is alive, else why it is taken as silent."""
        if self._started is None:
            return ''
        if self._last_arrival is None:
            waited = now - self._started
            if waited >= self.silent_s:
                return (f'no message on {self.topic} in {waited:.0f} s: is the driver '
                        'running, and is this the topic it publishes?')
            return ''
        quiet = now - self._last_arrival
        if quiet >= self.silent_s:
            return f'driver silent: no message on {self.topic} for {quiet:.1f} s'
        return ''

    def values(self) -> dict[str, str]:
        """Diagnostics key values."""
        period = self.period_s
        return {'driver_topic': self.topic, 'driver_messages': str(self.messages),
                'driver_gaps': str(self.gaps), 'driver_missing': str(self.missing),
                'driver_out_of_order': str(self.out_of_order),
                'driver_unstamped': str(self.unstamped),
                'driver_rate_hz': f'{1.0 / period:.2f}' if period else 'unknown'}


IMU_UNIT_PARAMS: tuple[ParamSpec, ...] = (
    ParamSpec('units.accel_min_m_s2', 4.0, 'ros backend: a mean |linear acceleration| below '
              'this over units.window_s is reported as not m/s^2 (gravity in g reads 1.0, '
              'in m/s^2 9.8)', min_value=0.0, max_value=9.0, read_only=True),
    ParamSpec('units.accel_max_m_s2', 30.0, 'ros backend: a mean |linear acceleration| above '
              'this over units.window_s is reported as not m/s^2 (mg or raw counts)',
              min_value=11.0, max_value=10000.0, read_only=True),
    ParamSpec('units.gyro_max_rad_s', 20.0, 'ros backend: an angular speed above this (rad/s; '
              '20 = 1146 deg/s) is reported as degrees per second', min_value=1.0,
              max_value=1000.0, read_only=True),
    ParamSpec('units.window_s', 1.0, 'ros backend: seconds of readings the acceleration '
              'check averages', min_value=0.1, max_value=60.0, read_only=True),
)


class ImuUnitCheck:
    """Tells readings whose units look wrong for sensor_msgs/Imu (m/s^2, rad/s).

    Args:
        accel_min, accel_max: the mean |a| over a window outside [accel_min, accel_max]
            (m/s^2) is suspect: at rest it is 9.8, in motion it averages near it.
        gyro_max: |omega| above this (rad/s) is taken as degrees per second.
        window_s: seconds of stamps the acceleration mean covers.
    """

    def __init__(self, accel_min: float = 4.0, accel_max: float = 30.0,
                 gyro_max: float = 20.0, window_s: float = 1.0) -> None:
        self.accel_min = accel_min
        self.accel_max = accel_max
        self.gyro_max = gyro_max
        self.window_s = window_s
        self._start: float | None = None
        self._sum = 0.0
        self._n = 0
        self.accel_problem = ''
        self.gyro_suspect = 0

    def reading(self, stamp: float, accel: np.ndarray, gyro: np.ndarray) -> str:
        """Check one reading.

        Returns:
            '' or a gyro problem of this reading (the acceleration verdict, judged per
            window, is in `accel_problem` until the next window says otherwise).
        """
        a = float(np.linalg.norm(accel))
        w = float(np.linalg.norm(gyro))
        if math.isfinite(a):
            if self._start is None or stamp < self._start:
                self._start, self._sum, self._n = stamp, 0.0, 0
            self._sum += a
            self._n += 1
            if stamp - self._start >= self.window_s and self._n:
                mean = self._sum / self._n
                self.accel_problem = self._judge_accel(mean)
                self._start, self._sum, self._n = stamp, 0.0, 0
        if math.isfinite(w) and w > self.gyro_max:
            self.gyro_suspect += 1
            return (f'angular speed {w:.1f} rad/s ({math.degrees(w):.0f} deg/s) is beyond '
                    f'{self.gyro_max:g} rad/s: is the driver publishing degrees per second? '
                    'sensor_msgs/Imu wants rad/s')
        return ''

    def _judge_accel(self, mean: float) -> str:
        if mean < self.accel_min:
            hint = ' (gravity in g reads 1.0)' if 0.5 <= mean <= 1.5 else ''
            return (f'mean |linear acceleration| {mean:.2f} over {self.window_s:g} s{hint}: '
                    'is the driver publishing g? sensor_msgs/Imu wants m/s^2 (9.81 at rest)')
        if mean > self.accel_max:
            return (f'mean |linear acceleration| {mean:.1f} over {self.window_s:g} s: mg or raw '
                    'counts? sensor_msgs/Imu wants m/s^2 (9.81 at rest)')
        return ''
