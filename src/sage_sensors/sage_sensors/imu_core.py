"""IMU core: register decoding (BNO055, MPU-6050), SI units, validity, complementary filter.

Everything here is pure and numbered after the datasheets:
- InvenSense MPU-6000/MPU-6050 Product Specification rev 3.4 (PS-MPU-6000A-00) and Register
  Map rev 4.2 (RM-MPU-6000A-00).
- Bosch BNO055 datasheet rev 1.4 (BST-BNO055-DS000-14).
Units out: linear acceleration in m/s^2, angular velocity in rad/s (converted exactly once:
the old prototype converted gyro units twice), orientation as an (x, y, z, w) quaternion.
"""
from __future__ import annotations

from dataclasses import dataclass
import math
import struct

import numpy as np

STANDARD_GRAVITY = 9.80665      # m/s^2 per g
DEG2RAD = math.pi / 180.0

# --- MPU-6050 (register map rev 4.2) --------------------------------------------------------
MPU6050_ADDRESS = 0x68          # AD0 low; 0x69 with AD0 high
MPU6050_WHO_AM_I_VALUE = 0x68
MPU_REG_SMPLRT_DIV = 0x19
MPU_REG_CONFIG = 0x1A
MPU_REG_GYRO_CONFIG = 0x1B
MPU_REG_ACCEL_CONFIG = 0x1C
MPU_REG_ACCEL_XOUT_H = 0x3B     # 14 bytes: accel xyz, temp, gyro xyz; big-endian int16
MPU_REG_PWR_MGMT_1 = 0x6B
MPU_REG_WHO_AM_I = 0x75
#: LSB per g for AFS_SEL 0..3 (spec table 6.2).
MPU_ACCEL_LSB_PER_G = {2: 16384.0, 4: 8192.0, 8: 4096.0, 16: 2048.0}
#: LSB per deg/s for FS_SEL 0..3 (spec table 6.1).
MPU_GYRO_LSB_PER_DPS = {250: 131.0, 500: 65.5, 1000: 32.8, 2000: 16.4}
#: Noise densities (spec tables 6.1, 6.2): gyro 0.005 deg/s/sqrt(Hz), accel 400 ug/sqrt(Hz).
MPU_GYRO_NOISE_DPS_RTHZ = 0.005
MPU_ACCEL_NOISE_G_RTHZ = 400e-6

# --- BNO055 (datasheet rev 1.4, section 4) --------------------------------------------------
BNO055_ADDRESS = 0x28           # COM3 low; 0x29 with COM3 high
BNO055_CHIP_ID_VALUE = 0xA0
BNO_REG_CHIP_ID = 0x00
BNO_REG_PAGE_ID = 0x07
BNO_REG_ACC_DATA_X_LSB = 0x08   # acc(6) mag(6) gyr(6) eul(6) qua(8) = 32 bytes to 0x27
BNO_REG_TEMP = 0x34
BNO_REG_CALIB_STAT = 0x35
BNO_REG_SYS_STATUS = 0x39
BNO_REG_SYS_ERR = 0x3A
BNO_REG_UNIT_SEL = 0x3B
BNO_REG_OPR_MODE = 0x3D
BNO_REG_PWR_MODE = 0x3E
BNO_REG_SYS_TRIGGER = 0x3F
BNO_MODE_CONFIG = 0x00
BNO_MODE_IMU = 0x08             # accel + gyro fusion (relative heading)
BNO_MODE_NDOF = 0x0C            # 9-DoF fusion (absolute heading)
#: UNIT_SEL written at start: accel m/s^2 (bit0=0), gyro deg/s (bit1=0), Euler degrees
#: (bit2=0), temperature Celsius (bit4=0), Windows orientation (bit7=0).
BNO_UNIT_SEL = 0x00
BNO_ACC_LSB_PER_MS2 = 100.0     # table 3-17: 1 m/s^2 = 100 LSB
BNO_MAG_LSB_PER_UT = 16.0       # table 3-19: 1 uT = 16 LSB
BNO_GYR_LSB_PER_DPS = 16.0      # table 3-22: 1 dps = 16 LSB (900 LSB per rad/s if bit1 set)
BNO_EUL_LSB_PER_DEG = 16.0      # table 3-29
BNO_QUA_LSB = 16384.0           # table 3-31: 1 quaternion unit = 2^14 LSB
BNO_ACC_RANGE_G = 4.0           # fixed +-4 g in fusion modes (table 3-8)
BNO_GYR_RANGE_DPS = 2000.0      # fixed 2000 dps in fusion modes (table 3-8)
#: Noise densities (table 1-2 / 0-2): gyro 0.014 deg/s/sqrt(Hz), accel 150 ug/sqrt(Hz).
BNO_GYRO_NOISE_DPS_RTHZ = 0.014
BNO_ACCEL_NOISE_G_RTHZ = 150e-6


@dataclass(frozen=True)
class ImuReading:
    """One IMU sample in SI units.

    accel (3,) m/s^2, gyro (3,) rad/s, orientation (4,) xyzw or None when unknown,
    saturated True when any raw axis hit the end of its range.
    """

    stamp: float
    accel: np.ndarray
    gyro: np.ndarray
    orientation: np.ndarray | None = None
    temperature: float = float('nan')
    saturated: bool = False


# --- MPU-6050 -------------------------------------------------------------------------------
def mpu6050_fs_bits(accel_range_g: int, gyro_range_dps: int) -> tuple[int, int]:
    """ACCEL_CONFIG and GYRO_CONFIG register values (AFS_SEL / FS_SEL in bits 4:3).

    Raises:
        ValueError: a range the chip does not have.
    """
    accel_ranges = sorted(MPU_ACCEL_LSB_PER_G)
    gyro_ranges = sorted(MPU_GYRO_LSB_PER_DPS)
    if accel_range_g not in accel_ranges:
        raise ValueError(f'MPU-6050 accel range {accel_range_g} g not in {accel_ranges}')
    if gyro_range_dps not in gyro_ranges:
        raise ValueError(f'MPU-6050 gyro range {gyro_range_dps} dps not in {gyro_ranges}')
    return accel_ranges.index(accel_range_g) << 3, gyro_ranges.index(gyro_range_dps) << 3


def decode_mpu6050(block: bytes, accel_range_g: int = 2, gyro_range_dps: int = 250,
                   stamp: float = 0.0) -> ImuReading:
    """Decode the 14 bytes read from ACCEL_XOUT_H (0x3B) into SI units.

    Layout: ACCEL_X/Y/Z, TEMP, GYRO_X/Y/Z, each big-endian int16. Temperature in C is
    raw / 340 + 36.53 (register map 4.18).

    Raises:
        ValueError: wrong block length or range.
    """
    if len(block) != 14:
        raise ValueError(f'MPU-6050 data block must be 14 bytes, got {len(block)}')
    ax, ay, az, traw, gx, gy, gz = struct.unpack('>7h', bytes(block))
    a_lsb = MPU_ACCEL_LSB_PER_G[accel_range_g]
    g_lsb = MPU_GYRO_LSB_PER_DPS[gyro_range_dps]
    raw = (ax, ay, az, gx, gy, gz)
    saturated = any(v in (32767, -32768) for v in raw)
    accel = np.array([ax, ay, az], dtype=np.float64) / a_lsb * STANDARD_GRAVITY
    gyro = np.array([gx, gy, gz], dtype=np.float64) / g_lsb * DEG2RAD
    return ImuReading(stamp, accel, gyro, None, traw / 340.0 + 36.53, saturated)


# --- BNO055 ---------------------------------------------------------------------------------
def decode_bno055(block: bytes, stamp: float = 0.0) -> ImuReading:
    """Decode the 32 bytes read from ACC_DATA_X_LSB (0x08) with UNIT_SEL = BNO_UNIT_SEL.

    Layout (little-endian int16): ACC xyz, MAG xyz, GYR xyz, EUL heading/roll/pitch,
    QUA w x y z. Quaternion out is (x, y, z, w), normalised; None if the chip has not
    produced one yet (all zero right after reset).

    Raises:
        ValueError: wrong block length.
    """
    if len(block) != 32:
        raise ValueError(f'BNO055 data block must be 32 bytes, got {len(block)}')
    v = struct.unpack('<16h', bytes(block))
    acc, gyr, qua = v[0:3], v[6:9], v[12:16]
    accel = np.array(acc, dtype=np.float64) / BNO_ACC_LSB_PER_MS2
    gyro = np.array(gyr, dtype=np.float64) / BNO_GYR_LSB_PER_DPS * DEG2RAD
    w, x, y, z = (c / BNO_QUA_LSB for c in qua)
    norm = math.sqrt(w * w + x * x + y * y + z * z)
    orientation = np.array([x, y, z, w]) / norm if norm > 0.5 else None
    limit = BNO_ACC_RANGE_G * STANDARD_GRAVITY * 0.999
    saturated = bool(np.any(np.abs(accel) >= limit)) or any(
        c in (32767, -32768) for c in (*acc, *gyr))
    return ImuReading(stamp, accel, gyro, orientation, float('nan'), saturated)


def decode_bno055_calib(calib_stat: int) -> dict[str, int]:
    """CALIB_STAT (0x35): 2-bit levels 0..3 for sys (7:6), gyro (5:4), accel (3:2), mag (1:0)."""
    return {'sys': (calib_stat >> 6) & 3, 'gyro': (calib_stat >> 4) & 3,
            'accel': (calib_stat >> 2) & 3, 'mag': calib_stat & 3}


# --- validity and covariances ---------------------------------------------------------------
def problem_of(reading: ImuReading) -> str | None:
    """Why a reading must not be published as valid data, or None if it is fine."""
    parts = [reading.accel, reading.gyro]
    if reading.orientation is not None:
        parts.append(reading.orientation)
    if not all(np.all(np.isfinite(p)) for p in parts):
        return 'non-finite (NaN/inf) reading'
    if reading.saturated:
        return 'saturated reading (a raw axis at the end of its range)'
    return None


def noise_variance(density_per_rthz: float, bandwidth_hz: float, scale: float) -> float:
    """Variance of white noise of a given density over a bandwidth, in SI units squared.

    Args:
        density_per_rthz: noise density in datasheet units per sqrt(Hz).
        bandwidth_hz: measurement bandwidth (about half the output rate without a DLPF).
        scale: datasheet unit to SI (g -> m/s^2, deg/s -> rad/s).
    """
    sigma = density_per_rthz * math.sqrt(bandwidth_hz) * scale
    return sigma * sigma


def diag3(variance: float) -> list[float]:
    """Row-major 3x3 covariance with variance on the diagonal."""
    return [variance, 0.0, 0.0, 0.0, variance, 0.0, 0.0, 0.0, variance]


#: orientation_covariance that means "orientation unknown" (sensor_msgs/Imu convention).
UNKNOWN_COVARIANCE = [-1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]


# --- quaternions and the complementary filter ------------------------------------------------
def quat_multiply(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product of two (x, y, z, w) quaternions."""
    ax, ay, az, aw = a
    bx, by, bz, bw = b
    return np.array([aw * bx + ax * bw + ay * bz - az * by,
                     aw * by - ax * bz + ay * bw + az * bx,
                     aw * bz + ax * by - ay * bx + az * bw,
                     aw * bw - ax * bx - ay * by - az * bz])


def quat_to_euler(q: np.ndarray) -> tuple[float, float, float]:
    """(roll, pitch, yaw) in radians of an (x, y, z, w) quaternion (ZYX convention)."""
    x, y, z, w = q
    roll = math.atan2(2 * (w * x + y * z), 1 - 2 * (x * x + y * y))
    pitch = math.asin(max(-1.0, min(1.0, 2 * (w * y - z * x))))
    yaw = math.atan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z))
    return roll, pitch, yaw


class ComplementaryFilter:
    """Orientation from gyro integration, with roll and pitch pulled toward gravity.

    A Mahony-style complementary filter without the integral term: the gyro rate is
    integrated, and the error between the measured and predicted gravity direction feeds
    back with gain (1 - alpha) / (alpha * dt), i.e. alpha of the classic complementary filter
    at the nominal sample period. Yaw has no reference and drifts with gyro bias.

    Args:
        alpha: weight of the gyro path per nominal sample (0 < alpha < 1).
        nominal_dt: the sample period alpha refers to (s).
        accel_window: accel is trusted only when |a| is within this fraction of 1 g.
    """

    def __init__(self, alpha: float = 0.98, nominal_dt: float = 0.005,
                 accel_window: float = 0.15) -> None:
        if not 0.0 < alpha < 1.0:
            raise ValueError('alpha must be in (0, 1)')
        self.kp = (1.0 - alpha) / (alpha * nominal_dt)
        self.accel_window = accel_window
        self.q = np.array([0.0, 0.0, 0.0, 1.0])
        self._last: float | None = None

    def update(self, accel: np.ndarray, gyro: np.ndarray, stamp: float) -> np.ndarray:
        """Advance to stamp with one reading; return the orientation (x, y, z, w)."""
        if self._last is None:
            self._last = stamp
            self._init_from_accel(accel)
            return self.q.copy()
        dt = stamp - self._last
        self._last = stamp
        if dt <= 0.0 or dt > 1.0:       # out of order or a long gap: do not integrate
            return self.q.copy()
        x, y, z, w = self.q
        omega = np.asarray(gyro, dtype=np.float64).copy()
        norm_a = float(np.linalg.norm(accel))
        if abs(norm_a - STANDARD_GRAVITY) < self.accel_window * STANDARD_GRAVITY:
            a = np.asarray(accel, dtype=np.float64) / norm_a
            # predicted "up" in the body frame: R(q)^T [0, 0, 1]
            v = np.array([2 * (x * z - w * y), 2 * (w * x + y * z), w * w - x * x - y * y + z * z])
            omega += self.kp * np.cross(a, v)
        dq = 0.5 * quat_multiply(self.q, np.array([omega[0], omega[1], omega[2], 0.0]))
        q = self.q + dq * dt
        self.q = q / np.linalg.norm(q)
        return self.q.copy()

    def _init_from_accel(self, accel: np.ndarray) -> None:
        norm_a = float(np.linalg.norm(accel))
        if not math.isfinite(norm_a) or norm_a < 1e-6:
            return
        ax, ay, az = np.asarray(accel, dtype=np.float64) / norm_a
        roll = math.atan2(ay, az)
        pitch = math.atan2(-ax, math.hypot(ay, az))
        cr, sr = math.cos(roll / 2), math.sin(roll / 2)
        cp, sp = math.cos(pitch / 2), math.sin(pitch / 2)
        self.q = np.array([sr * cp, cr * sp, -sr * sp, cr * cp])


# --- per-backend covariances and the processing step ----------------------------------------
#: DLPF_CFG written to the MPU-6050 CONFIG register: 2 = accel 94 Hz / gyro 98 Hz bandwidth,
#: right for 100-500 Hz sampling (register map 4.3).
MPU_DLPF_CFG = 2
MPU_DLPF_BW_HZ = (94.0, 98.0)
#: BNO055 fusion modes fix accel bandwidth at 62.5 Hz and gyro at 32 Hz (datasheet 3.5.4).
BNO_FUSION_BW_HZ = (62.5, 32.0)
#: Synthetic noise standard deviations (scene.imu_noise_table defaults).
SYNTHETIC_SIGMA = (0.02, 0.002)


def sensor_variances(backend: str) -> tuple[float, float]:
    """(accel, gyro) noise variances in SI units squared; 0.0 = unknown (file data)."""
    if backend == 'mpu6050':
        return (noise_variance(MPU_ACCEL_NOISE_G_RTHZ, MPU_DLPF_BW_HZ[0], STANDARD_GRAVITY),
                noise_variance(MPU_GYRO_NOISE_DPS_RTHZ, MPU_DLPF_BW_HZ[1], DEG2RAD))
    if backend == 'bno055':
        return (noise_variance(BNO_ACCEL_NOISE_G_RTHZ, BNO_FUSION_BW_HZ[0], STANDARD_GRAVITY),
                noise_variance(BNO_GYRO_NOISE_DPS_RTHZ, BNO_FUSION_BW_HZ[1], DEG2RAD))
    if backend == 'synthetic':
        return SYNTHETIC_SIGMA[0] ** 2, SYNTHETIC_SIGMA[1] ** 2
    return 0.0, 0.0


#: Orientation variance (roll, pitch, yaw) in rad^2: BNO055 fusion (about 1 deg tilt, 3 deg
#: heading) and the complementary filter (about 2 deg tilt, yaw unreferenced).
ORIENTATION_VARIANCE = {'device': ((1 * DEG2RAD) ** 2, (1 * DEG2RAD) ** 2, (3 * DEG2RAD) ** 2),
                        'filter': ((2 * DEG2RAD) ** 2, (2 * DEG2RAD) ** 2, (30 * DEG2RAD) ** 2)}


@dataclass(frozen=True)
class ImuOutput:
    """A validated reading ready to publish, with its row-major 3x3 covariances."""

    reading: ImuReading
    orientation_covariance: list[float]
    accel_covariance: list[float]
    gyro_covariance: list[float]


class ImuProcessor:
    """Validates readings and fills orientation: from the device, the filter, or unknown.

    Args:
        orientation: 'device' (keep the sensor's quaternion), 'filter' (complementary
            filter), 'none' (unknown: covariance[0] = -1).
        accel_var: accel variance (m/s^2)^2 (0 = unknown).
        gyro_var: gyro variance (rad/s)^2 (0 = unknown).
        alpha: complementary filter weight at the nominal rate.
        rate: nominal sample rate (Hz).
    """

    def __init__(self, orientation: str, accel_var: float, gyro_var: float,
                 alpha: float = 0.98, rate: float = 200.0) -> None:
        if orientation not in ('device', 'filter', 'none'):
            raise ValueError(f'unknown orientation mode {orientation!r}')
        self.mode = orientation
        self._filter = ComplementaryFilter(alpha, 1.0 / rate)
        self._accel_cov = diag3(accel_var)
        self._gyro_cov = diag3(gyro_var)
        self.invalid = 0

    def process(self, reading: ImuReading) -> tuple[ImuOutput | None, str | None]:
        """(output, None) for a good reading, (None, reason) for one that must not be used."""
        problem = problem_of(reading)
        if problem is not None:
            self.invalid += 1
            return None, problem
        orientation, cov = None, UNKNOWN_COVARIANCE
        if self.mode == 'filter':
            orientation = self._filter.update(reading.accel, reading.gyro, reading.stamp)
        elif self.mode == 'device':
            orientation = reading.orientation
        if orientation is not None:
            r, p, y = ORIENTATION_VARIANCE[self.mode]
            cov = [r, 0.0, 0.0, 0.0, p, 0.0, 0.0, 0.0, y]
        out = ImuReading(reading.stamp, reading.accel, reading.gyro, orientation,
                         reading.temperature, reading.saturated)
        return ImuOutput(out, list(cov), self._accel_cov, self._gyro_cov), None
