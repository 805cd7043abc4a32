"""The synthetic scene: photos, the appearing cup, the sound track, the IMU motion."""
import numpy as np
import pytest

from sage_sensors.imu_core import STANDARD_GRAVITY
from sage_sensors.samples import build_object, build_panorama
from sage_sensors.scene import (CameraScene, clap, imu_motion, render_audio_track,
                                room_noise)
from sage_sensors.timeline import Timeline


@pytest.fixture(scope='module')
def scene():
    return CameraScene(build_panorama(), build_object(), 640, 480, Timeline(), seed=3)


def test_frames_have_the_output_size_and_are_deterministic(scene):
    a, b = scene.render(3.0, 1), scene.render(3.0, 1)
    assert a.shape == (480, 640, 3) and a.dtype == np.uint8 and a.flags['C_CONTIGUOUS']
    assert np.array_equal(a, b)
    again = CameraScene(build_panorama(), build_object(), 640, 480, Timeline(), seed=3)
    assert np.array_equal(again.render(3.0, 1), a)


def test_the_cup_appears_only_during_its_event():
    still = CameraScene(build_panorama(), build_object(), 640, 480, Timeline(), noise=0.0,
                        pan_px=0.0)
    x, y = still._obj_xy
    h, w = still._obj_rgb.shape[:2]
    before = still.render(5.9)[y:y + h, x:x + w].astype(int)
    during = still.render(6.1)[y:y + h, x:x + w].astype(int)
    after = still.render(10.1)[y:y + h, x:x + w].astype(int)
    assert still.object_visible(6.1) and not still.object_visible(5.9)
    assert np.abs(during - before).mean() > 30          # a large visible change
    assert np.array_equal(after, before)                # gone again at 10 s


def test_the_view_pans_slowly_and_loops_with_the_period(scene):
    assert scene.offset(0.0) == scene.offset(20.0)
    assert scene.offset(5.0) != scene.offset(15.0)
    assert abs(scene.offset(1 / 30) - scene.offset(0.0)) <= 2       # pixels per frame


def test_small_outputs_render_too():
    small = CameraScene(build_panorama(), build_object(), 64, 48, Timeline(), noise=0.0)
    assert small.render(7.0).shape == (48, 64, 3)


def test_the_sound_track_is_quiet_with_a_loud_clap_and_speech():
    rate = 16000
    phrase = 0.5 * np.sin(2 * np.pi * 220 * np.arange(rate) / rate).astype(np.float32)
    track = render_audio_track(Timeline(), rate, seed=1, phrase=phrase)
    assert len(track) == 20 * rate

    def db(seg):
        return 20 * np.log10(np.sqrt(np.mean(seg ** 2)) + 1e-12)
    assert db(track[: 8 * rate]) == pytest.approx(-50, abs=1.5)       # room noise
    assert np.max(np.abs(track[9 * rate: 9 * rate + 800])) > 0.8      # the clap
    assert db(track[12 * rate: 13 * rate]) > -12                      # the phrase
    assert np.max(np.abs(track[17 * rate:])) < 0.05


def test_noise_and_clap_are_deterministic_from_the_seed():
    assert np.array_equal(room_noise(1000, 16000, 5), room_noise(1000, 16000, 5))
    assert not np.array_equal(room_noise(1000, 16000, 5), room_noise(1000, 16000, 6))
    assert np.max(np.abs(clap(16000, 0))) == pytest.approx(0.9)


def test_imu_is_still_except_for_the_scripted_shake():
    tl = Timeline()
    t = np.arange(0, 20, 0.005)
    accel, gyro = imu_motion(t, tl, 'scene')
    still = (t < 15.0) | (t > 16.5)
    assert np.allclose(accel[still], [0, 0, STANDARD_GRAVITY])
    assert np.allclose(gyro[still], 0.0)
    shaking = (t > 15.5) & (t < 16.0)
    assert np.max(np.abs(accel[shaking, 0])) > 3.0 and np.max(np.abs(gyro[shaking])) > 1.0


def test_rotate_and_shake_motions():
    t = np.arange(0, 1, 0.005)
    _, gyro = imu_motion(t, Timeline(), 'rotate')
    assert np.allclose(gyro[:, 2], 0.5)
    accel, _ = imu_motion(t, Timeline(), 'shake')
    assert np.std(accel[:, 0]) > 2.0
    with pytest.raises(ValueError):
        imu_motion(t, Timeline(), 'tumble')
