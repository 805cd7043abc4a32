"""IMU node parameters (pure: the launcher checks profile values with these specs)."""
from __future__ import annotations

from collections.abc import Mapping
import os
from typing import Any

from sage_common.params import ParamSpec

from sage_sensors.driver_watch import DRIVER_PARAMS, IMU_UNIT_PARAMS
from sage_sensors.imu_core import MPU_ACCEL_LSB_PER_G, MPU_GYRO_LSB_PER_DPS
from sage_sensors.scene import IMU_MOTIONS
from sage_sensors.source_params import SOURCE_PARAMS
from sage_sensors.timeline import TIMELINE_PARAMS, timeline_from_params

BACKENDS = ('bno055', 'mpu6050', 'file', 'synthetic', 'ros')

PARAMS: tuple[ParamSpec, ...] = (
    ParamSpec('backend', 'synthetic', 'where IMU data comes from; ros = the robot\'s IMU '
              'driver topic (topic)', choices=BACKENDS, read_only=True),
    ParamSpec('topic', '/imu/data', 'ros backend: the driver\'s sensor_msgs/Imu topic (m/s^2, '
              'rad/s; its stamps are kept)', read_only=True),
    ParamSpec('i2c_bus', 7, 'I2C bus number (/dev/i2c-N); 7 = pins 3/5 of the Orin Nano '
              'dev kit header, 1 on the original Jetson Nano', min_value=0, max_value=255,
              read_only=True),
    ParamSpec('address', 0, 'I2C address (0 = chip default: 0x68 MPU-6050, 0x28 BNO055)',
              min_value=0, max_value=127, read_only=True),
    ParamSpec('accel_range_g', 4, 'MPU-6050 accelerometer full scale (2, 4, 8 or 16 g)',
              min_value=2, max_value=16, read_only=True),
    ParamSpec('gyro_range_dps', 500, 'MPU-6050 gyro full scale (250, 500, 1000 or 2000 deg/s)',
              min_value=250, max_value=2000, read_only=True),
    ParamSpec('bno055_mode', 'ndof', 'BNO055 fusion mode: ndof (absolute heading, uses the '
              'magnetometer) or imu (relative heading)', choices=('ndof', 'imu'),
              read_only=True),
    ParamSpec('path', '', 'CSV trace for the file backend (empty = the sample trace)',
              read_only=True),
    ParamSpec('rate', 200.0, 'sample rate in Hz (files play at their own rate)',
              min_value=1.0, max_value=1000.0, read_only=True),
    ParamSpec('orientation', 'auto', 'orientation source: device, filter (complementary), '
              'none (covariance[0] = -1), auto = device when it has one, else filter',
              choices=('auto', 'device', 'filter', 'none'), read_only=True),
    ParamSpec('filter_alpha', 0.98, 'complementary filter gyro weight per sample at rate',
              min_value=0.5, max_value=0.9999, read_only=True),
    ParamSpec('accel_variance', 0.0, 'accel noise variance (m/s^2)^2; 0 = from the datasheet '
              '(unknown for files)', min_value=0.0, max_value=100.0, read_only=True),
    ParamSpec('gyro_variance', 0.0, 'gyro noise variance (rad/s)^2; 0 = from the datasheet',
              min_value=0.0, max_value=100.0, read_only=True),
    ParamSpec('motion', 'scene', 'synthetic motion: scene (still, shaken at scene.shake_s), '
              'still, shake, rotate', choices=IMU_MOTIONS, read_only=True),
    ParamSpec('frame_id', 'imu_link', 'header.frame_id of the messages', read_only=True),
    ParamSpec('loop', True, 'file backend: start again at the end', read_only=True),
    ParamSpec('pace', True, 'file backend: real time (true) or as fast as possible (false)',
              read_only=True),
    ParamSpec('seed', 0, 'seed of the synthetic sensor noise', min_value=0,
              max_value=2**31 - 1, read_only=True),
) + IMU_UNIT_PARAMS + SOURCE_PARAMS + DRIVER_PARAMS + TIMELINE_PARAMS


def validate(values: Mapping[str, Any]) -> list[str]:
    """Cross-field rules: chip ranges, orientation source, a readable file, the schedule."""
    errors = []
    backend = values.get('backend')
    if backend == 'mpu6050':
        if values.get('accel_range_g') not in MPU_ACCEL_LSB_PER_G:
            errors.append(f"parameter 'accel_range_g': {values.get('accel_range_g')} is not "
                          'one of 2, 4, 8, 16')
        if values.get('gyro_range_dps') not in MPU_GYRO_LSB_PER_DPS:
            errors.append(f"parameter 'gyro_range_dps': {values.get('gyro_range_dps')} is not "
                          'one of 250, 500, 1000, 2000')
    if values.get('orientation') == 'device' and backend in ('mpu6050', 'synthetic'):
        errors.append(f"parameter 'orientation': the {backend} backend has no orientation "
                      "output; use 'filter' or 'none'")
    if backend == 'ros' and not str(values.get('topic', '')):
        errors.append("parameter 'topic': the ros backend needs the driver's Imu topic")
    path = str(values.get('path', ''))
    if backend == 'file' and path and not os.access(path, os.R_OK):
        errors.append(f"parameter 'path': IMU trace {path!r} is missing or unreadable")
    errors.extend(timeline_from_params(values).problems())
    return errors
