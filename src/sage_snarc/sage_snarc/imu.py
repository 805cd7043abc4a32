"""IMU decimation: 100-200 Hz samples -> one aggregated window every `window_s` of stamp time."""
from __future__ import annotations

from dataclasses import dataclass
import math
from typing import Any

import numpy as np

from sage_common.records import ImuRecord

GRAVITY = 9.80665  # standard gravity (m/s^2)
GRAVITY_ALPHA = 0.02  # smoothing of SNARC's gravity estimate per window (50 windows)


@dataclass(frozen=True)
class ImuWindow:
    """Aggregate of the IMU samples whose stamps fall in one window."""

    stamp: float  # stamp of the last sample in the window
    count: int
    accel_mean: np.ndarray  # (3,) m/s^2
    gyro_mean: np.ndarray  # (3,) rad/s
    dyn_max: float  # max over samples of | |a| - g |
    gyro_max: float  # max over samples of |w|


class ImuAggregator:
    """Groups samples by floor(stamp / window_s); a window is emitted when a later one starts.

    Samples older than the open window (out of order) and non-finite samples are rejected
    by `push`, which then returns the reason so the caller can report it.
    """

    def __init__(self, window_s: float, gravity: float = GRAVITY) -> None:
        self.window_s = float(window_s)
        self.gravity = float(gravity)
        self._index: int | None = None
        self._reset()

    def _reset(self) -> None:
        self._n = 0
        self._acc = np.zeros(3)
        self._gyr = np.zeros(3)
        self._dyn = 0.0
        self._wmax = 0.0
        self._last = -math.inf

    def push(self, rec: ImuRecord) -> tuple[ImuWindow | None, str]:
        """Add one sample.

        Returns:
            (the window this sample closed or None, '' or the reason the sample was dropped).
        """
        try:
            ax, ay, az = (float(v) for v in np.ravel(rec.accel))
            wx, wy, wz = (float(v) for v in np.ravel(rec.gyro))
        except (TypeError, ValueError):
            return None, 'malformed'
        total = ax + ay + az + wx + wy + wz + float(rec.stamp)
        if not math.isfinite(total):
            return None, 'non_finite'
        index = math.floor(rec.stamp / self.window_s)
        done = None
        if self._index is not None and index < self._index:
            return None, 'out_of_order'
        if self._index is not None and index > self._index and self._n:
            done = self._emit()
        if self._index is None or index > self._index:
            self._index = index
            self._reset()
        self._n += 1
        acc, gyr = self._acc, self._gyr
        acc[0] += ax
        acc[1] += ay
        acc[2] += az
        gyr[0] += wx
        gyr[1] += wy
        gyr[2] += wz
        self._dyn = max(self._dyn, abs(math.sqrt(ax * ax + ay * ay + az * az) - self.gravity))
        self._wmax = max(self._wmax, math.sqrt(wx * wx + wy * wy + wz * wz))
        self._last = max(self._last, rec.stamp)
        return done, ''

    def _emit(self) -> ImuWindow:
        return ImuWindow(stamp=self._last, count=self._n, accel_mean=self._acc / self._n,
                         gyro_mean=self._gyr / self._n, dyn_max=self._dyn,
                         gyro_max=self._wmax)

    def state_dict(self) -> dict[str, Any]:
        """Checkpoint of the open window."""
        return {'index': self._index, 'n': self._n, 'acc': self._acc.copy(),
                'gyr': self._gyr.copy(), 'dyn': self._dyn, 'wmax': self._wmax,
                'last': self._last}

    def discard_open(self) -> None:
        """Forget the open window (its samples belong to a stream that has ended)."""
        self._index = None
        self._reset()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a checkpoint."""
        self._index = None if state['index'] is None else int(state['index'])
        self._n = int(state['n'])
        self._acc = np.asarray(state['acc'], dtype=np.float64).copy()
        self._gyr = np.asarray(state['gyr'], dtype=np.float64).copy()
        self._dyn = float(state['dyn'])
        self._wmax = float(state['wmax'])
        self._last = float(state['last'])
