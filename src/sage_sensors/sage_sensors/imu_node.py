"""IMU node: publishes /sage/imu/data (sensor_msgs/Imu) with covariances.

Thin shell: parameters from imu_params, readings from imu_backends, ImuProcessor for
validation and orientation, a CaptureRunner thread that publishes each valid reading stamped
at capture. NaN or saturated readings are counted and reported, never published.
"""
from __future__ import annotations

import sys

from sensor_msgs.msg import Imu

from sage_common.convert import set_stamp
from sage_common.health import Level
from sage_common.ros import SENSOR_QOS, declare_params, run
from sage_common.vocabulary import Topic

from sage_sensors.errors import SensorError
from sage_sensors.imu_backends import make_imu, orientation_mode
from sage_sensors.imu_core import ImuProcessor, ImuReading, sensor_variances
from sage_sensors.imu_params import PARAMS, validate
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
        self._start_capture(source, self._publish, make_imu)
        self.get_logger().info(f'imu: {source.name} -> {IMU_TOPIC}, orientation {mode}')

    def _publish(self, reading: ImuReading) -> None:
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
