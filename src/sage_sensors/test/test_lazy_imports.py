"""Sensor nodes import only what they need (issue 16.2): scipy.signal alone took ~0.6 s of each
sensor node's ~0.9 s import, for one low-pass filter of the synthetic room noise; OpenCV took
0.07-0.28 s of the microphone's."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from scipy.signal import lfilter

from sage_sensors.scene import one_pole_lowpass, room_noise

HEAVY = ('scipy.signal', 'scipy.stats')


def _modules_after(code: str) -> set[str]:
    out = subprocess.run([sys.executable, '-c', code + '\nimport sys\nprint(*sys.modules)'],
                         capture_output=True, text=True, check=True, timeout=120)
    return set(out.stdout.split())


@pytest.mark.parametrize('node', ['camera_node', 'microphone_node', 'imu_node'])
def test_a_sensor_node_module_does_not_import_scipy_signal(node):
    loaded = _modules_after(f'import sage_sensors.{node}')
    assert f'sage_sensors.{node}' in loaded
    assert not loaded & set(HEAVY)


def test_the_microphone_starts_without_opencv():
    # it is built first in the graph (its first window is the first salience); OpenCV's
    # import is the camera's and the vision encoder's, built after it
    assert 'cv2' not in _modules_after('import sage_sensors.microphone_node')
    assert 'cv2' in _modules_after('import sage_sensors.camera_node')


def test_the_synthetic_microphone_track_is_built_without_scipy_signal():
    loaded = _modules_after(
        'from sage_sensors.scene import room_noise\n'
        'assert room_noise(16000, 16000, 1).shape == (16000,)')
    assert not loaded & set(HEAVY)


def test_the_fft_low_pass_equals_the_one_pole_recursion():
    x = np.random.default_rng(7).normal(0.0, 1.0, 40000)
    a = 0.855
    np.testing.assert_allclose(one_pole_lowpass(x, a), lfilter([1.0 - a], [1.0, -a], x),
                               rtol=0, atol=1e-12)


def test_room_noise_keeps_its_level():
    noise = room_noise(32000, 16000, seed=3, level_dbfs=-50.0)
    rms_db = 20 * np.log10(np.sqrt(np.mean(noise.astype(np.float64) ** 2)))
    assert rms_db == pytest.approx(-50.0, abs=0.01)
