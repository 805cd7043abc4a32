"""IMU node: publishes /sage/imu/data (sensor_msgs/Imu) with covariances.

Thin shell: parameters from imu_params, readings from imu_backends, ImuProcessor for
validation and orientation, a CaptureRunner thread that publishes each valid reading stamped
at capture. NaN or saturated readings are counted and reported, never published.
"""
from __future__ import annotations

import sys

import numpy as np
from sensor_msgs.msg import Imu

from sage_common.convert import set_stamp
from sage_common.health import Level
from sage_common.ros import SENSOR_QOS, declare_params, run
from sage_common.stamps import to_sec
from sage_common.vocabulary import Topic

from sage_sensors.driver_topics import driver_qos
from sage_sensors.driver_watch import ImuUnitCheck
from sage_sensors.errors import SensorError
from sage_sensors.imu_backends import make_imu, orientation_mode
from sage_sensors.imu_core import ImuProcessor, ImuReading, sensor_variances
from sage_sensors.imu_params import PARAMS, validate
from sage_sensors.ros_imu import RosImuSource, driver_orientation
from sage_sensors.shell import SensorNode

IMU_TOPIC = Topic.IMU


class ImuNode(SensorNode):
    """Publishes IMU readings from the configured backend."""

    def __init__(self, **kwargs) -> None:
        super().__init__('imu', **kwargs)
        self._cfg = declare_params(self, PARAMS, validate)
        source = make_imu(self._cfg, self._cmap, self._stop, self.get_logger().info)
        try:
            mode = orientation_mode(str(self._cfg['orientation']), source)
        except SensorError:
            source.close()
            raise
        accel_var, gyro_var = sensor_variances(str(self._cfg['backend']))
        self._proc = ImuProcessor(
            mode, float(self._cfg['accel_variance']) or accel_var,
            float(self._cfg['gyro_variance']) or gyro_var, float(self._cfg['filter_alpha']),
            float(getattr(source, 'rate', 0.0) or self._cfg['rate']))
        self._pub = self.create_publisher(Imu, IMU_TOPIC, SENSOR_QOS)
        self._frame_id = str(self._cfg['frame_id'])
        self._units: ImuUnitCheck | None = None
        if isinstance(source, RosImuSource):
            self._subscribe_driver(source)
        self._start_capture(source, self._publish, make_imu)
        self.get_logger().info(f'imu: {source.name} -> {IMU_TOPIC}, orientation {mode}')

    def _subscribe_driver(self, source: RosImuSource) -> None:
        """ros backend: the driver's sensor_msgs/Imu, its units checked as they come."""
        cfg = self._cfg
        topic = str(cfg['topic'])
        feed = self._driver_feed()
        feed.watch(topic)
        self._units = ImuUnitCheck(
            float(cfg['units.accel_min_m_s2']), float(cfg['units.accel_max_m_s2']),
            float(cfg['units.gyro_max_rad_s']), float(cfg['units.window_s']))

        def on_imu(msg: Imu) -> None:
            stamp = to_sec(msg.header.stamp)
            feed.message(topic, stamp)
            a, w, q = msg.linear_acceleration, msg.angular_velocity, msg.orientation
            source.push(ImuReading(
                stamp if stamp > 0 else self._cmap.now(), np.array([a.x, a.y, a.z]),
                np.array([w.x, w.y, w.z]),
                driver_orientation((q.x, q.y, q.z, q.w), msg.orientation_covariance)))
        self._driver_subs.append(self.create_subscription(
            Imu, topic, on_imu, driver_qos(int(cfg['driver.depth']))))

    def _check_units(self, reading: ImuReading) -> None:
        assert self._units is not None
        gyro = self._units.reading(reading.stamp, reading.accel, reading.gyro)
        if gyro:
            self.health.count('units_suspect')
            self.health.problem(Level.WARN, gyro)
            self.health.values['units_gyro'] = gyro
        self.health.condition('units_accel', Level.WARN, self._units.accel_problem)
        self.health.values['units_accel'] = self._units.accel_problem or 'ok'

    def _publish(self, reading: ImuReading) -> None:
        if self._units is not None:
            self._check_units(reading)
        out, problem = self._proc.process(reading)
        if out is None:
            self.health.count('invalid')
            self.health.problem(Level.WARN, f'IMU reading not published: {problem}')
            return
        msg = Imu()
        set_stamp(msg.header, out.reading.stamp)
        msg.header.frame_id = self._frame_id
        a, w, q = out.reading.accel, out.reading.gyro, out.reading.orientation
        msg.linear_acceleration.x, msg.linear_acceleration.y, msg.linear_acceleration.z = (
            float(a[0]), float(a[1]), float(a[2]))
        msg.angular_velocity.x, msg.angular_velocity.y, msg.angular_velocity.z = (
            float(w[0]), float(w[1]), float(w[2]))
        if q is not None:
            msg.orientation.x, msg.orientation.y, msg.orientation.z, msg.orientation.w = (
                float(q[0]), float(q[1]), float(q[2]), float(q[3]))
        msg.orientation_covariance = out.orientation_covariance
        msg.linear_acceleration_covariance = out.accel_covariance
        msg.angular_velocity_covariance = out.gyro_covariance
        self._pub.publish(msg)
        self.health.count('published')
        self.health.latency('capture_to_publish', (self._cmap.now() - reading.stamp) * 1e3)


def main(args=None) -> int:
    return run(lambda: ImuNode(), args)


if __name__ == '__main__':
    sys.exit(main())
