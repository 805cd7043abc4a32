"""IMU sources: MPU-6050 and BNO055 register traffic on a fake bus, CSV, synthetic."""
import glob
import math
import struct
import threading

import numpy as np
import pytest

from sage_common.health import Health
from sage_common.params import resolve

from sage_sensors.capture import CaptureRunner
from sage_sensors.errors import SensorError, StreamError
from sage_sensors.imu_backends import (Bno055, CsvImu, Mpu6050, make_imu, orientation_mode)
from sage_sensors.imu_core import STANDARD_GRAVITY, ImuProcessor
from sage_sensors.imu_params import PARAMS, validate
from sage_sensors.pacing import ClockMap


def values(**kw):
    return resolve(PARAMS, kw, validate)


class FakeBus:
    """Registers of one chip; records writes; can fail reads."""

    def __init__(self, regs, burst):
        self.regs = dict(regs)
        self.burst = burst
        self.writes = []
        self.fail_reads = 0
        self.closed = False

    def read_byte_data(self, addr, reg):
        return self.regs.get(reg, 0)

    def write_byte_data(self, addr, reg, value):
        self.writes.append((addr, reg, value))
        self.regs[reg] = value

    def read_i2c_block_data(self, addr, reg, length):
        if self.fail_reads:
            self.fail_reads -= 1
            raise OSError(121, 'Remote I/O error')
        assert len(self.burst) == length
        return list(self.burst)

    def close(self):
        self.closed = True


def test_mpu6050_is_configured_and_read_in_si_units():
    burst = struct.pack('>7h', 0, 0, 8192, 0, 0, 0, 6550)     # 1 g on z at 4 g; 100 dps
    bus = FakeBus({0x75: 0x68}, burst)
    src = Mpu6050(1, 0, 200.0, 4, 500, ClockMap(), threading.Event(), lambda n: bus)
    src.open()
    assert bus.writes == [(0x68, 0x6B, 0x01), (0x68, 0x1A, 2), (0x68, 0x19, 4),
                          (0x68, 0x1C, 0x08), (0x68, 0x1B, 0x08)]
    r = src.read()
    assert r.accel.tolist() == pytest.approx([0, 0, STANDARD_GRAVITY])
    assert r.gyro[2] == pytest.approx(math.radians(100.0))
    assert r.temperature == pytest.approx(36.53)


def test_a_wrong_chip_is_refused():
    bus = FakeBus({0x75: 0x71}, b'')         # an MPU-9250 answers 0x71
    src = Mpu6050(1, 0, 200.0, 4, 500, ClockMap(), threading.Event(), lambda n: bus)
    with pytest.raises(StreamError, match='WHO_AM_I'):
        src.open()


def test_bno055_is_put_in_fusion_mode_with_si_units_and_gives_orientation():
    burst = struct.pack('<16h', 0, 0, 981, 0, 0, 0, 0, 0, 16, 0, 0, 0, 16384, 0, 0, 0)
    bus = FakeBus({0x00: 0xA0}, burst)
    src = Bno055(1, 0, 100.0, 'ndof', ClockMap(), threading.Event(), lambda n: bus,
                 sleep=lambda s: None)
    src.open()
    assert bus.writes[0] == (0x28, 0x3D, 0x00)                 # CONFIG mode first
    assert (0x28, 0x3B, 0x00) in bus.writes                    # UNIT_SEL: m/s^2, dps
    assert bus.writes[-1] == (0x28, 0x3D, 0x0C)                # NDOF last
    r = src.read()
    assert r.accel[2] == pytest.approx(9.81) and r.gyro[2] == pytest.approx(math.radians(1))
    assert r.orientation.tolist() == [0, 0, 0, 1]
    assert orientation_mode('auto', src) == 'device'


def test_i2c_errors_reconnect_the_device():
    burst = struct.pack('>7h', 0, 0, 8192, 0, 0, 0, 0)
    bus = FakeBus({0x75: 0x68}, burst)
    stop, health, got = threading.Event(), Health(), []
    src = Mpu6050(1, 0, 200.0, 4, 500, ClockMap(), stop, lambda n: bus)
    src.open()
    bus.fail_reads = 1

    def emit(r):
        got.append(r)
        if len(got) == 3:
            stop.set()
    runner = CaptureRunner(src, emit, health, stop, backoff_s=(0.01, 0.05))
    runner.start()
    runner._thread.join(5)
    assert len(got) == 3 and health.counters['reconnects'] == 1


def test_csv_trace_plays_at_its_own_rate_and_nan_rows_are_flagged(tmp_path):
    path = tmp_path / 'trace.csv'
    rows = ['t,ax,ay,az,gx,gy,gz'] + [f'{i * 0.01:.2f},0,0,9.8,0,0,0.1' for i in range(5)]
    rows[3] = '0.02,nan,0,9.8,0,0,0.1'
    path.write_text('\n'.join(rows) + '\n')
    src = CsvImu(str(path), loop=True, pace=False, clock=ClockMap(), stop=threading.Event())
    src.open()
    assert src.rate == pytest.approx(100.0)
    readings = [src.read() for _ in range(7)]
    assert np.allclose(np.diff([r.stamp for r in readings]), 0.01, atol=1e-6)
    proc = ImuProcessor('filter', 0.0, 0.0)
    results = [proc.process(r) for r in readings]
    assert [out is None for out, _ in results] == [False, False, True, False, False, False,
                                                   False]
    assert 'NaN' in results[2][1]


def test_csv_with_missing_columns_is_refused_naming_the_path(tmp_path):
    path = tmp_path / 'bad.csv'
    path.write_text('t,ax,ay\n0,1,2\n0.1,1,2\n')
    with pytest.raises(SensorError, match="'path'.*gx"):
        make_imu(values(backend='file', path=str(path)), ClockMap(), threading.Event())


def test_synthetic_imu_is_still_then_shaken_at_the_scripted_time():
    for scene_t, shaking in ((10.0, False), (15.75, True)):
        base = 20.0 * 90_000_000 + scene_t
        src = make_imu(values(backend='synthetic', rate=500.0),
                       ClockMap(clock=lambda b=base: b),
                       threading.Event())
        readings = [src.read() for _ in range(25)]
        spread = np.std([r.accel[0] for r in readings])
        assert (spread > 1.0) == shaking
        assert np.allclose(np.diff([r.stamp for r in readings]), 0.002, atol=1e-6)


def test_parameters_are_checked_against_the_chips():
    with pytest.raises(Exception, match="'accel_range_g'"):
        values(backend='mpu6050', accel_range_g=3)
    with pytest.raises(Exception, match="'orientation'"):
        values(backend='mpu6050', orientation='device')
    with pytest.raises(Exception, match="'rate'"):
        values(rate=-200.0)
    with pytest.raises(SensorError, match="'i2c_bus'"):
        make_imu(values(backend='bno055', i2c_bus=250), ClockMap(), threading.Event())


@pytest.mark.skipif(not glob.glob('/dev/i2c-*'), reason='no I2C bus on this machine')
def test_a_real_mpu6050_answers_if_present():
    src = Mpu6050(int(glob.glob('/dev/i2c-*')[0].rsplit('-', 1)[1]), 0, 100.0, 4, 500,
                  ClockMap(), threading.Event())
    try:
        src.open()
    except StreamError as err:
        pytest.skip(f'no MPU-6050 on the bus: {err}')
    try:
        assert np.linalg.norm(src.read().accel) == pytest.approx(STANDARD_GRAVITY, rel=0.2)
    finally:
        src.close()
