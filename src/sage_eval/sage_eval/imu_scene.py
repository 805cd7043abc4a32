"""A bag of IMU samples alone (still, with shakes at given times): the cheapest input a live
graph and the offline replay can both score, for tests of timing and plumbing (sim time,
namespaces) where camera frames and audio would only add load. No rclpy."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from rosbags.rosbag2 import Writer
from rosbags.rosbag2.enums import StoragePlugin
from rosbags.rosbag2.errors import WriterError

from sage_eval.bagio import IMU_TOPIC, typestore
from sage_eval.errors import ScenarioError

GRAVITY = 9.80665
SHAKE_ACCEL = 8.0  # m/s^2 peak, at SHAKE_HZ: far above sensor noise
SHAKE_HZ = 9.0
SHAKE_GYRO = 2.5  # rad/s while shaking, about axis x, y, z in turn (each shake a new motion)


def write_imu_bag(out_bag: Path, start_s: float, seconds: float, hz: float = 100.0,
                  shakes: Sequence[tuple[float, float]] = (), seed: int = 0) -> int:
    """Write an MCAP bag of sensor_msgs/Imu on /sage/imu/data; returns the sample count.

    Args:
        out_bag: bag folder to create (must not exist).
        start_s: stamp of the first sample (seconds since the epoch; message time = stamp).
        seconds, hz: length and rate.
        shakes: (from, to) seconds after start_s in which the IMU is shaken (turning about
            x, y, z in turn).
        seed: sensor noise.

    Raises:
        ScenarioError: the bag cannot be written.
    """
    ts = typestore()
    Imu = ts.types['sensor_msgs/msg/Imu']
    Header = ts.types['std_msgs/msg/Header']
    Time = ts.types['builtin_interfaces/msg/Time']
    Quat = ts.types['geometry_msgs/msg/Quaternion']
    Vec3 = ts.types['geometry_msgs/msg/Vector3']
    rng = np.random.default_rng(seed)
    n = int(round(seconds * hz))
    cov = np.zeros(9)
    cov[0] = -1.0  # no orientation estimate
    try:
        writer = Writer(Path(out_bag), version=9, storage_plugin=StoragePlugin.MCAP)
        with writer:
            conn = writer.add_connection(IMU_TOPIC, Imu.__msgtype__, typestore=ts)
            for i in range(n):
                t = i / hz
                shaking = [k for k, (a, b) in enumerate(shakes) if a <= t < b]
                acc = rng.normal(0.0, 0.03, 3) + [0.0, 0.0, GRAVITY]
                gyr = rng.normal(0.0, 0.005, 3)
                if shaking:
                    acc += SHAKE_ACCEL * np.sin(2 * np.pi * SHAKE_HZ * t)
                    gyr[shaking[0] % 3] += SHAKE_GYRO
                ns = int(round((start_s + t) * 1e9))
                msg = Imu(header=Header(stamp=Time(sec=ns // 10**9, nanosec=ns % 10**9),
                                        frame_id='imu_link'),
                          orientation=Quat(x=0.0, y=0.0, z=0.0, w=1.0),
                          orientation_covariance=cov,
                          angular_velocity=Vec3(x=float(gyr[0]), y=float(gyr[1]),
                                                z=float(gyr[2])),
                          angular_velocity_covariance=np.zeros(9),
                          linear_acceleration=Vec3(x=float(acc[0]), y=float(acc[1]),
                                                   z=float(acc[2])),
                          linear_acceleration_covariance=np.zeros(9))
                writer.write(conn, ns, ts.serialize_cdr(msg, Imu.__msgtype__))
    except WriterError as err:
        raise ScenarioError(f'cannot write IMU bag {out_bag}: {err}') from err
    return n
