"""IMU backends: BNO055 and MPU-6050 over I2C (smbus2), CSV files, the synthetic scene, and
the robot's own IMU driver topic (`ros`, in ros_imu).

Each source returns an ImuReading in SI units stamped at capture (just before the I2C burst
read, or the scheduled time of a paced file/synthetic sample). The I2C bus is injectable
(`bus_factory`), so register traffic is tested against a fake bus. Pure (no rclpy).
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
import os
from pathlib import Path
import threading
import time
from typing import Any, Protocol

import numpy as np

from sage_sensors.errors import SensorError, StreamEnded, StreamError
from sage_sensors.imu_core import (BNO055_ADDRESS, BNO055_CHIP_ID_VALUE, BNO_MODE_CONFIG,
                                   BNO_MODE_IMU, BNO_MODE_NDOF, BNO_REG_ACC_DATA_X_LSB,
                                   BNO_REG_CHIP_ID, BNO_REG_OPR_MODE, BNO_REG_PAGE_ID,
                                   BNO_REG_PWR_MODE, BNO_REG_UNIT_SEL, BNO_UNIT_SEL,
                                   MPU6050_ADDRESS, MPU6050_WHO_AM_I_VALUE, MPU_DLPF_CFG,
                                   MPU_REG_ACCEL_CONFIG, MPU_REG_ACCEL_XOUT_H, MPU_REG_CONFIG,
                                   MPU_REG_GYRO_CONFIG, MPU_REG_PWR_MGMT_1, MPU_REG_SMPLRT_DIV,
                                   MPU_REG_WHO_AM_I, ImuReading, decode_bno055,
                                   decode_mpu6050, mpu6050_fs_bits)
from sage_sensors.pacing import ClockMap, Pacer
from sage_sensors.ros_imu import RosImuSource
from sage_sensors.samples import ensure_samples, sample_data_dir
from sage_sensors.scene import imu_motion, imu_noise_table
from sage_sensors.timeline import Timeline, timeline_from_params

CSV_COLUMNS = ('t', 'ax', 'ay', 'az', 'gx', 'gy', 'gz')
CSV_QUATERNION = ('qx', 'qy', 'qz', 'qw')


class I2CBus(Protocol):
    """The part of smbus2.SMBus the drivers use."""

    def read_byte_data(self, i2c_addr: int, register: int) -> int: ...

    def write_byte_data(self, i2c_addr: int, register: int, value: int) -> None: ...

    def read_i2c_block_data(self, i2c_addr: int, register: int, length: int) -> list[int]: ...

    def close(self) -> None: ...


def smbus_factory(bus: int) -> I2CBus:
    """Open /dev/i2c-<bus> with smbus2.

    Raises:
        StreamError: no such bus or no permission.
    """
    try:
        # lazy: smbus2 only for a real I2C IMU
        from smbus2 import SMBus
        return SMBus(bus)
    except (OSError, ImportError) as err:
        raise StreamError(f'cannot open I2C bus /dev/i2c-{bus}: {err}') from err


class SyntheticImu:
    """Scripted motion (still, shake, rotate, or the scene's shake) on a fixed schedule."""

    reconnectable = False

    def __init__(self, timeline: Timeline, rate: float, motion: str, seed: int,
                 clock: ClockMap, stop: threading.Event) -> None:
        self.name = f'synthetic:{motion}'
        self._timeline = timeline
        self._rate = rate
        self._motion = motion
        self._clock = clock
        self._pacer = Pacer(1.0 / rate, stop)
        # one period pre-computed (motion + noise): a reading is a table lookup
        n = max(int(round(timeline.period_s * rate)), 1)
        accel, gyro = imu_motion(np.arange(n) / rate, timeline, motion)
        self._table = np.hstack([accel, gyro]) + imu_noise_table(n, seed)

    @property
    def dropped(self) -> int:
        return self._pacer.dropped

    def open(self) -> None:
        self._pacer.reset()

    def read(self) -> ImuReading | None:
        tick = self._pacer.wait()
        if tick is None:
            return None
        stamp = self._clock.to_clock(tick)
        row = self._table[int(round(self._timeline.phase(stamp) * self._rate)) % len(self._table)]
        return ImuReading(stamp, row[:3].copy(), row[3:].copy())

    def close(self) -> None:
        pass


class CsvImu:
    """A CSV trace (columns t, ax..az in m/s^2, gx..gz in rad/s, optional qx..qw), looped.

    Played at the trace's own rate (1 / median dt). Paced: stamp = scheduled time; fast:
    stamp = start + trace time. Rows with NaN are passed on, so they get flagged.
    """

    reconnectable = False

    def __init__(self, path: str, loop: bool, pace: bool, clock: ClockMap,
                 stop: threading.Event) -> None:
        self.name = f'file:{path}'
        self._path = path
        self._loop = loop
        self._pace = pace
        self._clock = clock
        self._stop = stop
        self._data = np.zeros((0, 7))
        self._quat: np.ndarray | None = None
        self._pacer: Pacer | None = None
        self._i = 0
        self._offset = 0.0
        self._start = 0.0
        self.rate = 0.0

    @property
    def dropped(self) -> int:
        return self._pacer.dropped if self._pacer is not None else 0

    def _load(self) -> None:
        if not os.access(self._path, os.R_OK):
            raise StreamError(f'IMU trace {self._path} is missing or unreadable')
        try:
            with open(self._path, encoding='utf-8') as f:
                header = [h.strip() for h in f.readline().lstrip('#').split(',')]
            table = np.genfromtxt(self._path, delimiter=',', skip_header=1, ndmin=2)
        except (OSError, ValueError, UnicodeDecodeError) as err:
            raise StreamError(f'cannot parse IMU trace {self._path}: {err}') from err
        missing = [c for c in CSV_COLUMNS if c not in header]
        if missing or table.shape[0] < 2 or table.shape[1] != len(header):
            raise StreamError(f'IMU trace {self._path} needs columns {",".join(CSV_COLUMNS)} '
                              f'and 2+ rows (missing: {",".join(missing) or "none"})')
        self._data = table[:, [header.index(c) for c in CSV_COLUMNS]]
        self._quat = (table[:, [header.index(c) for c in CSV_QUATERNION]]
                      if all(c in header for c in CSV_QUATERNION) else None)

    @property
    def has_orientation(self) -> bool:
        return self._quat is not None

    def open(self) -> None:
        self._load()
        dt = np.diff(self._data[:, 0])
        dt = dt[np.isfinite(dt) & (dt > 0)]
        if dt.size == 0:
            raise StreamError(f'IMU trace {self._path}: column t does not increase')
        self.rate = 1.0 / float(np.median(dt))
        self._pacer = Pacer(1.0 / self.rate if self._pace else 0.0, self._stop)
        self._i, self._offset = 0, 0.0
        self._start = self._clock.now()

    def read(self) -> ImuReading | None:
        assert self._pacer is not None
        tick = self._pacer.wait()
        if tick is None:
            return None
        if self._i >= len(self._data):
            if not self._loop:
                raise StreamEnded(f'end of {self._path}')
            self._offset += float(self._data[-1, 0] - self._data[0, 0]) + 1.0 / self.rate
            self._load()             # re-reading notices a trace that vanished
            self._i = 0
        row = self._data[self._i]
        q = None if self._quat is None else self._quat[self._i].copy()
        self._i += 1
        if self._pace:
            stamp = self._clock.to_clock(tick)
        else:
            stamp = self._start + self._offset + float(row[0] - self._data[0, 0])
        return ImuReading(stamp, row[1:4].copy(), row[4:7].copy(), q)

    def close(self) -> None:
        pass


class I2CImu:
    """Common part of the I2C drivers: bus, pacing, error mapping, capture stamps."""

    reconnectable = True
    has_orientation = False
    name = 'i2c'

    def __init__(self, bus: int, address: int, rate: float, clock: ClockMap,
                 stop: threading.Event, bus_factory: Callable[[int], I2CBus]) -> None:
        self._bus_no = bus
        self._address = address
        self._clock = clock
        self._pacer = Pacer(1.0 / rate, stop)
        self._factory = bus_factory
        self._bus: I2CBus | None = None
        self.rate = rate

    @property
    def dropped(self) -> int:
        return self._pacer.dropped

    def open(self) -> None:
        self.close()
        self._bus = self._factory(self._bus_no)
        try:
            self._configure(self._bus)
        except OSError as err:
            self.close()
            raise StreamError(f'{self.name}: no answer at 0x{self._address:02x} on '
                              f'/dev/i2c-{self._bus_no}: {err}') from err
        self._pacer.reset()

    def _configure(self, bus: I2CBus) -> None:
        raise NotImplementedError

    def _decode(self, block: bytes, stamp: float) -> ImuReading:
        raise NotImplementedError

    def _burst(self) -> tuple[int, int]:
        raise NotImplementedError

    def read(self) -> ImuReading | None:
        tick = self._pacer.wait()
        if tick is None:
            return None
        if self._bus is None:
            raise StreamError(f'{self.name}: bus closed')
        stamp = self._clock.now()
        register, length = self._burst()
        try:
            block = bytes(self._bus.read_i2c_block_data(self._address, register, length))
        except OSError as err:
            raise StreamError(f'{self.name}: read failed: {err}') from err
        return self._decode(block, stamp)

    def close(self) -> None:
        if self._bus is not None:
            try:
                self._bus.close()
            except OSError:
                pass
            self._bus = None


class Mpu6050(I2CImu):
    """InvenSense MPU-6050: accel + gyro, no orientation output (use the filter)."""

    def __init__(self, bus: int, address: int, rate: float, accel_range_g: int,
                 gyro_range_dps: int, clock: ClockMap, stop: threading.Event,
                 bus_factory: Callable[[int], I2CBus] = smbus_factory) -> None:
        super().__init__(bus, address or MPU6050_ADDRESS, rate, clock, stop, bus_factory)
        self.name = f'mpu6050:i2c-{bus}@0x{self._address:02x}'
        self._ranges = (accel_range_g, gyro_range_dps)
        self._fs = mpu6050_fs_bits(accel_range_g, gyro_range_dps)

    def _configure(self, bus: I2CBus) -> None:
        who = bus.read_byte_data(self._address, MPU_REG_WHO_AM_I) & 0x7E
        if who != MPU6050_WHO_AM_I_VALUE:
            raise StreamError(f'{self.name}: WHO_AM_I is 0x{who:02x}, expected 0x68')
        a = self._address
        bus.write_byte_data(a, MPU_REG_PWR_MGMT_1, 0x01)     # wake, clock = PLL on gyro X
        bus.write_byte_data(a, MPU_REG_CONFIG, MPU_DLPF_CFG)
        # with the DLPF on the sample clock is 1 kHz: rate = 1000 / (1 + SMPLRT_DIV)
        div = max(0, min(255, int(round(1000.0 / self.rate)) - 1))
        bus.write_byte_data(a, MPU_REG_SMPLRT_DIV, div)
        bus.write_byte_data(a, MPU_REG_ACCEL_CONFIG, self._fs[0])
        bus.write_byte_data(a, MPU_REG_GYRO_CONFIG, self._fs[1])

    def _burst(self) -> tuple[int, int]:
        return MPU_REG_ACCEL_XOUT_H, 14

    def _decode(self, block: bytes, stamp: float) -> ImuReading:
        return decode_mpu6050(block, self._ranges[0], self._ranges[1], stamp)


class Bno055(I2CImu):
    """Bosch BNO055: accel, gyro and a fused orientation quaternion."""

    has_orientation = True

    def __init__(self, bus: int, address: int, rate: float, mode: str, clock: ClockMap,
                 stop: threading.Event,
                 bus_factory: Callable[[int], I2CBus] = smbus_factory,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        super().__init__(bus, address or BNO055_ADDRESS, rate, clock, stop, bus_factory)
        self.name = f'bno055:i2c-{bus}@0x{self._address:02x}'
        self._mode = BNO_MODE_NDOF if mode == 'ndof' else BNO_MODE_IMU
        self._sleep = sleep

    def _configure(self, bus: I2CBus) -> None:
        a = self._address
        chip = bus.read_byte_data(a, BNO_REG_CHIP_ID)
        if chip != BNO055_CHIP_ID_VALUE:
            self._sleep(0.65)                        # boot takes up to 650 ms after POR
            chip = bus.read_byte_data(a, BNO_REG_CHIP_ID)
            if chip != BNO055_CHIP_ID_VALUE:
                raise StreamError(f'{self.name}: CHIP_ID is 0x{chip:02x}, expected 0xa0')
        bus.write_byte_data(a, BNO_REG_OPR_MODE, BNO_MODE_CONFIG)
        self._sleep(0.025)                          # any -> CONFIG takes 19 ms
        bus.write_byte_data(a, BNO_REG_PAGE_ID, 0)
        bus.write_byte_data(a, BNO_REG_PWR_MODE, 0x00)   # normal power
        bus.write_byte_data(a, BNO_REG_UNIT_SEL, BNO_UNIT_SEL)
        bus.write_byte_data(a, BNO_REG_OPR_MODE, self._mode)
        self._sleep(0.01)                           # CONFIG -> fusion takes 7 ms

    def _burst(self) -> tuple[int, int]:
        return BNO_REG_ACC_DATA_X_LSB, 32

    def _decode(self, block: bytes, stamp: float) -> ImuReading:
        return decode_bno055(block, stamp)


def make_imu(values: Mapping[str, Any], clock: ClockMap, stop: threading.Event,
             log: Callable[[str], None] = print,
             bus_factory: Callable[[int], I2CBus] = smbus_factory) -> Any:
    """Build and open the configured IMU source.

    Raises:
        SensorError: the backend cannot start (the message names the parameter).
    """
    backend = str(values['backend'])
    rate = float(values['rate'])
    if backend == 'synthetic':
        source: Any = SyntheticImu(timeline_from_params(values), rate, str(values['motion']),
                                   int(values['seed']), clock, stop)
    elif backend == 'file':
        path = str(values['path'])
        if not path:
            folder = Path(str(values.get('data_dir') or '') or sample_data_dir())
            path = str(ensure_samples(folder) / 'imu_trace.csv')
        source = CsvImu(path, bool(values['loop']), bool(values['pace']), clock, stop)
    elif backend == 'mpu6050':
        source = Mpu6050(int(values['i2c_bus']), int(values['address']), rate,
                         int(values['accel_range_g']), int(values['gyro_range_dps']), clock,
                         stop, bus_factory)
    elif backend == 'bno055':
        source = Bno055(int(values['i2c_bus']), int(values['address']), rate,
                        str(values['bno055_mode']), clock, stop, bus_factory)
    elif backend == 'ros':      # fed by the node's subscription to the driver's topic
        source = RosImuSource(str(values['topic']))
    else:
        raise SensorError(f"parameter 'backend': unknown IMU backend {backend!r}")
    try:
        source.open()
    except StreamError as err:
        param = {'file': 'path', 'mpu6050': 'i2c_bus', 'bno055': 'i2c_bus'}.get(backend,
                                                                               'backend')
        raise SensorError(f"parameter '{param}': {err}") from err
    log(f'IMU source: {source.name}')
    return source


def orientation_mode(requested: str, source: Any) -> str:
    """Resolve 'auto': the device's own orientation when it has one, else the filter.

    Raises:
        SensorError: 'device' asked of a source without orientation.
    """
    has = bool(getattr(source, 'has_orientation', False))
    if requested == 'auto':
        return 'device' if has else 'filter'
    if requested == 'device' and not has:
        raise SensorError(f"parameter 'orientation': {source.name} reports no orientation; "
                          "use 'filter' or 'none'")
    return requested
