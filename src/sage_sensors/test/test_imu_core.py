"""IMU register decoding and units against the MPU-6050 and BNO055 datasheets."""
import math
import struct

import numpy as np
import pytest

from sage_sensors.imu_core import (STANDARD_GRAVITY, ComplementaryFilter, ImuProcessor,
                                   ImuReading, decode_bno055, decode_bno055_calib,
                                   decode_mpu6050, mpu6050_fs_bits, quat_to_euler,
                                   sensor_variances)

G = STANDARD_GRAVITY
DPS = math.pi / 180


def mpu_block(ax=0, ay=0, az=0, temp=0, gx=0, gy=0, gz=0) -> bytes:
    return struct.pack('>7h', ax, ay, az, temp, gx, gy, gz)


@pytest.mark.parametrize('range_g,lsb', [(2, 16384), (4, 8192), (8, 4096), (16, 2048)])
def test_mpu6050_accel_sensitivity_per_full_scale(range_g, lsb):
    r = decode_mpu6050(mpu_block(az=lsb, ax=-lsb // 2), accel_range_g=range_g)
    assert r.accel.tolist() == pytest.approx([-G / 2, 0.0, G])


@pytest.mark.parametrize('range_dps,lsb', [(250, 131.0), (500, 65.5), (1000, 32.8),
                                           (2000, 16.4)])
def test_mpu6050_gyro_is_converted_to_rad_per_s_exactly_once(range_dps, lsb):
    raw = int(round(90 * lsb))           # 90 deg/s
    r = decode_mpu6050(mpu_block(gz=raw), gyro_range_dps=range_dps)
    assert r.gyro[2] == pytest.approx(raw / lsb * DPS)
    assert r.gyro[2] == pytest.approx(math.pi / 2, rel=2e-3)    # not (pi/2) * pi/180 again


def test_mpu6050_temperature_formula_and_register_values():
    assert decode_mpu6050(mpu_block(temp=0)).temperature == pytest.approx(36.53)
    assert decode_mpu6050(mpu_block(temp=-340)).temperature == pytest.approx(35.53)
    assert mpu6050_fs_bits(2, 250) == (0x00, 0x00)
    assert mpu6050_fs_bits(4, 500) == (0x08, 0x08)
    assert mpu6050_fs_bits(16, 2000) == (0x18, 0x18)
    with pytest.raises(ValueError):
        mpu6050_fs_bits(3, 250)


def test_mpu6050_full_scale_raw_values_are_flagged_saturated():
    assert decode_mpu6050(mpu_block(ax=32767)).saturated
    assert decode_mpu6050(mpu_block(gy=-32768)).saturated
    assert not decode_mpu6050(mpu_block(ax=32766, az=16384)).saturated
    with pytest.raises(ValueError):
        decode_mpu6050(b'\x00' * 13)


def bno_block(acc=(0, 0, 0), mag=(0, 0, 0), gyr=(0, 0, 0), eul=(0, 0, 0),
              qua=(16384, 0, 0, 0)) -> bytes:
    return struct.pack('<16h', *acc, *mag, *gyr, *eul, *qua)


def test_bno055_units_from_the_datasheet():
    r = decode_bno055(bno_block(acc=(0, 100, 981), gyr=(16, 0, -1440)))
    assert r.accel.tolist() == pytest.approx([0.0, 1.0, 9.81])           # 100 LSB per m/s^2
    assert r.gyro.tolist() == pytest.approx([1 * DPS, 0.0, -90 * DPS])   # 16 LSB per dps
    assert r.orientation.tolist() == pytest.approx([0.0, 0.0, 0.0, 1.0])  # w=2^14 -> xyzw


def test_bno055_quaternion_is_reordered_to_xyzw_and_normalised():
    s = 16384 * math.sqrt(0.5)
    r = decode_bno055(bno_block(qua=(int(s), 0, 0, int(s))))     # 90 deg about z
    assert r.orientation.tolist() == pytest.approx([0, 0, math.sqrt(0.5), math.sqrt(0.5)],
                                                   abs=1e-4)
    assert decode_bno055(bno_block(qua=(0, 0, 0, 0))).orientation is None


def test_bno055_saturation_and_calibration_status():
    assert decode_bno055(bno_block(acc=(3923, 0, 0))).saturated      # 39.23 m/s^2 = 4 g
    assert not decode_bno055(bno_block(acc=(981, 0, 0))).saturated
    assert decode_bno055_calib(0b11100100) == {'sys': 3, 'gyro': 2, 'accel': 1, 'mag': 0}


def test_complementary_filter_stays_level_when_still():
    f = ComplementaryFilter(0.98, 0.005)
    for i in range(400):
        q = f.update(np.array([0, 0, G]), np.zeros(3), i * 0.005)
    assert q.tolist() == pytest.approx([0, 0, 0, 1], abs=1e-9)


def test_complementary_filter_tracks_tilt_from_gravity():
    roll = math.radians(30)
    f = ComplementaryFilter(0.98, 0.005)
    f.update(np.array([0, 0, G]), np.zeros(3), 0.0)        # starts level
    accel = np.array([0, math.sin(roll), math.cos(roll)]) * G
    for i in range(1, 1000):                               # 5 s
        q = f.update(accel, np.zeros(3), i * 0.005)
    r, p, _ = quat_to_euler(q)
    assert r == pytest.approx(roll, abs=math.radians(0.5))
    assert p == pytest.approx(0.0, abs=math.radians(0.5))


def test_complementary_filter_integrates_yaw_rate():
    f = ComplementaryFilter(0.98, 0.005)
    for i in range(201):                                   # 1 s at 0.5 rad/s about z
        q = f.update(np.array([0, 0, G]), np.array([0, 0, 0.5]), i * 0.005)
    assert quat_to_euler(q)[2] == pytest.approx(0.5, abs=1e-3)


def test_processor_flags_nan_and_saturated_readings_instead_of_publishing():
    proc = ImuProcessor('filter', 0.01, 0.001)
    ok, why = proc.process(ImuReading(0.0, np.array([0, 0, G]), np.zeros(3)))
    assert why is None and ok.orientation_covariance[0] > 0
    out, why = proc.process(ImuReading(0.005, np.array([np.nan, 0, G]), np.zeros(3)))
    assert out is None and 'NaN' in why
    out, why = proc.process(ImuReading(0.01, np.array([0, 0, G]), np.zeros(3),
                                       saturated=True))
    assert out is None and 'saturated' in why
    assert proc.invalid == 2


def test_unknown_orientation_has_covariance_minus_one():
    out, _ = ImuProcessor('none', 0.0, 0.0).process(
        ImuReading(0.0, np.array([0, 0, G]), np.zeros(3)))
    assert out.reading.orientation is None and out.orientation_covariance[0] == -1.0
    dev, _ = ImuProcessor('device', 0.0, 0.0).process(
        ImuReading(0.0, np.array([0, 0, G]), np.zeros(3), np.array([0, 0, 0, 1.0])))
    assert dev.orientation_covariance[0] > 0 and dev.reading.orientation[3] == 1.0


def test_datasheet_noise_gives_plausible_variances():
    acc, gyr = sensor_variances('mpu6050')
    # 400 ug/sqrt(Hz) over 94 Hz -> 3.9 mg rms; 0.005 dps/sqrt(Hz) over 98 Hz -> 0.05 dps
    assert math.sqrt(acc) == pytest.approx(400e-6 * math.sqrt(94) * G)
    assert math.sqrt(gyr) / DPS == pytest.approx(0.0495, abs=1e-3)
    assert sensor_variances('file') == (0.0, 0.0)
