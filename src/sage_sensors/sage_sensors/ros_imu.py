"""The IMU's `ros` backend: readings from the robot's own IMU driver (sensor_msgs/Imu).

The node's subscription hands each message's stamp, acceleration, angular velocity and
orientation to `RosImuSource.push` (no rclpy here); the capture thread reads them in order and
they go through the same validation, orientation and covariances as a chip's readings. The
stamp is the driver's. An orientation the driver marks unknown (orientation_covariance[0] = -1,
or an all-zero quaternion) is passed on as unknown.
"""
from __future__ import annotations

from collections import deque
from collections.abc import Sequence
import threading

import numpy as np

from sage_sensors.imu_core import ImuReading

#: How long read() waits for a message before handing the capture thread None.
READ_TIMEOUT_S = 0.1


def driver_orientation(quaternion: Sequence[float], covariance: Sequence[float]
                       ) -> np.ndarray | None:
    """The driver's (x, y, z, w) orientation, or None when it says it has none."""
    if len(covariance) and float(covariance[0]) == -1.0:
        return None
    q = np.asarray(quaternion, dtype=np.float64)
    norm = float(np.linalg.norm(q))
    if not np.isfinite(norm) or norm < 0.5:      # all zero: never filled in
        return None
    return q / norm


class RosImuSource:
    """Readings pushed from a driver topic, handed to the capture thread in arrival order.

    Args:
        topic: the driver topic (for names and messages).
        capacity: readings held for the capture thread; beyond it the oldest are dropped and
            counted (a stalled process, not the driver).
    """

    reconnectable = False
    #: the driver may fill orientation in (BNO055-class parts, filters upstream); readings
    #: that carry none are published as unknown
    has_orientation = True

    def __init__(self, topic: str, capacity: int = 2000) -> None:
        self.name = f'ros:{topic}'
        self._cond = threading.Condition()
        self._queue: deque[ImuReading] = deque()
        self._capacity = capacity
        self._closed = False
        self.dropped = 0
        self.rate = 0.0          # unknown until the driver's stamps say

    def open(self) -> None:
        with self._cond:
            self._closed = False

    def push(self, reading: ImuReading) -> None:
        """Hand over one driver reading (subscription callback; never blocks)."""
        with self._cond:
            if len(self._queue) >= self._capacity:
                self._queue.popleft()
                self.dropped += 1
            self._queue.append(reading)
            self._cond.notify()

    def read(self) -> ImuReading | None:
        with self._cond:
            if not self._queue:
                self._cond.wait(READ_TIMEOUT_S)
            if not self._queue or self._closed:
                return None
            return self._queue.popleft()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._queue.clear()
            self._cond.notify()
