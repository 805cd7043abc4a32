"""Camera sources: synthetic, file (loop, pace, vanish, corrupt), auto, device skips."""
import os
from pathlib import Path
import threading

import cv2
import numpy as np
import pytest

from sage_common.health import Health, Level
from sage_common.params import resolve

from sage_sensors.camera_backends import (DeviceCamera, FileCamera, make_camera,
                                          nominal_intrinsics, v4l2_available)
from sage_sensors.camera_params import PARAMS, validate
from sage_sensors.capture import CaptureRunner
from sage_sensors.errors import SensorError, StreamEnded, StreamError
from sage_sensors.pacing import ClockMap


def values(**kw):
    return resolve(PARAMS, kw, validate)


def write_video(path: Path, frames=20, size=(64, 48), fps=50.0) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*'MJPG'), fps, size)
    for i in range(frames):
        img = np.zeros((size[1], size[0], 3), np.uint8)
        img[:, :, 0] = 10 * i          # blue (OpenCV order) encodes the frame index
        img[:, :, 2] = 200             # strong red, to check the BGR -> RGB swap
        writer.write(img)
    writer.release()
    return path


def test_synthetic_frames_are_stamped_on_the_exact_schedule(tmp_path):
    stop = threading.Event()
    cam = make_camera(values(width=64, height=48, fps=100.0, data_dir=str(tmp_path)),
                      ClockMap(), stop)
    frames = [cam.read() for _ in range(6)]
    stamps = np.array([f.stamp for f in frames])
    assert np.allclose(np.diff(stamps), 0.01, atol=1e-6)
    assert frames[0].rgb.shape == (48, 64, 3) and frames[0].rgb.dtype == np.uint8


def test_file_frames_are_rgb_resized_and_loop(tmp_path):
    path = write_video(tmp_path / 'v.avi', frames=5)
    cam = FileCamera(str(path), 32, 24, 30.0, loop=True, pace=False, clock=ClockMap(),
                     stop=threading.Event())
    cam.open()
    frames = [cam.read() for _ in range(12)]
    first = frames[0].rgb
    assert first.shape == (24, 32, 3)
    assert first[..., 0].mean() > 180 and first[..., 2].mean() < 20     # red stays red
    blues = [int(round(f.rgb[..., 2].mean() / 10)) for f in frames]
    assert blues == [0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 0, 1]
    # unpaced: stamps follow the video's own 50 fps
    assert np.allclose(np.diff([f.stamp for f in frames]), 0.02, atol=1e-6)


def test_paced_file_plays_at_its_own_frame_rate_or_the_lower_camera_rate(tmp_path):
    path = write_video(tmp_path / 'v.avi', frames=5, fps=100.0)
    cam = FileCamera(str(path), 64, 48, 240.0, True, True, ClockMap(), threading.Event())
    cam.open()
    stamps = [cam.read().stamp for _ in range(4)]
    assert cam.fps == 100.0 and np.allclose(np.diff(stamps), 0.01, atol=1e-6)
    # A camera rate below the file's own delivers that rate, the video still in real time.
    cam = FileCamera(str(path), 64, 48, 25.0, True, True, ClockMap(), threading.Event())
    cam.open()
    stamps = [cam.read().stamp for _ in range(4)]
    assert cam.rate_hz == 25.0 and np.allclose(np.diff(stamps), 0.04, atol=1e-6)


def test_a_new_rate_re_times_the_synthetic_camera_in_place(tmp_path):
    cam = make_camera(values(width=64, height=48, fps=100.0, data_dir=str(tmp_path)),
                      ClockMap(), threading.Event())
    before = [cam.read().stamp for _ in range(3)]
    assert cam.set_rate(40.0) is True          # applied in place: no reopen needed
    after = [cam.read().stamp for _ in range(4)]
    assert np.allclose(np.diff(before), 0.01, atol=1e-6)
    assert after[0] - before[-1] >= 0.025 - 1e-6     # the new period, not the old one
    assert np.allclose(np.diff(after), 0.025, atol=1e-6) and cam.rate_hz == 40.0


def test_a_new_rate_re_times_a_paced_file_which_keeps_real_time(tmp_path):
    path = write_video(tmp_path / 'v.avi', frames=20, fps=100.0)
    cam = FileCamera(str(path), 64, 48, 240.0, True, True, ClockMap(), threading.Event())
    cam.open()
    frames = [cam.read() for _ in range(3)]
    assert cam.set_rate(25.0) is True and cam.rate_hz == 25.0
    frames += [cam.read() for _ in range(4)]
    stamps = np.array([f.stamp for f in frames])
    index = np.array([int(round(f.rgb[..., 2].mean() / 10)) for f in frames])
    assert np.allclose(np.diff(stamps[:3]), 0.01, atol=1e-6)
    assert np.allclose(np.diff(stamps[3:]), 0.04, atol=1e-6)      # 25 frames/s delivered
    # ... of a video that still plays in real time: frames between two ticks are skipped.
    assert [int(i) % 20 for i in index - index[0]] == [round(t * 100) % 20
                                                       for t in stamps - stamps[0]]
    assert cam.set_rate(240.0) and cam.rate_hz == 100.0            # at most its own rate


def test_file_without_loop_ends(tmp_path):
    cam = FileCamera(str(write_video(tmp_path / 'v.avi', frames=2)), 64, 48, 30.0, False,
                     False, ClockMap(), threading.Event())
    cam.open()
    cam.read()
    cam.read()
    with pytest.raises(StreamEnded):
        cam.read()


def test_a_vanished_file_falls_back_to_synthetic_with_an_error(tmp_path):
    path = write_video(tmp_path / 'v.avi', frames=3)
    stop, health = threading.Event(), Health()
    cfg = values(backend='file', path=str(path), width=64, height=48, pace=False,
                 data_dir=str(tmp_path))
    cam = make_camera(cfg, ClockMap(), stop)
    os.remove(path)
    got = []

    def emit(frame):
        got.append(frame)
        if len(got) >= 6:
            stop.set()
    runner = CaptureRunner(cam, emit, health, stop,
                           fallback=lambda: make_camera(dict(cfg, backend='synthetic',
                                                             fps=200.0), ClockMap(), stop))
    runner.start()
    runner._thread.join(10)
    assert len(got) >= 6 and runner.source.name == 'synthetic'
    snap = health.snapshot()
    assert snap.level == Level.ERROR and 'missing' in snap.message


def test_a_corrupt_video_mid_stream_raises_a_stream_error(tmp_path):
    path = write_video(tmp_path / 'v.avi', frames=20)
    data = bytearray(path.read_bytes())
    n = len(data)
    data[n // 3: 2 * n // 3] = b'\xff' * (2 * n // 3 - n // 3)   # garbage in the middle
    path.write_bytes(bytes(data))
    cam = FileCamera(str(path), 64, 48, 30.0, True, False, ClockMap(), threading.Event())
    cam.open()
    good = 0
    with pytest.raises(StreamError, match='corrupt'):
        for _ in range(40):
            cam.read()
            good += 1
    assert 0 < good < 20


def test_a_truncated_video_is_refused_at_start_naming_the_parameter(tmp_path):
    path = write_video(tmp_path / 'v.avi', frames=20)
    path.write_bytes(path.read_bytes()[:2000])
    with pytest.raises(SensorError, match="'path'"):
        make_camera(values(backend='file', path=str(path)), ClockMap(), threading.Event())


def test_auto_without_device_or_file_chooses_synthetic_and_says_so(tmp_path):
    logs = []
    cam = make_camera(values(backend='auto', device='/dev/video99', width=64, height=48,
                             data_dir=str(tmp_path)), ClockMap(), threading.Event(),
                      logs.append)
    assert cam.name == 'synthetic' and "chose 'synthetic'" in logs[0]
    video = write_video(tmp_path / 'v.avi')
    cam = make_camera(values(backend='auto', device='/dev/video99', path=str(video)),
                      ClockMap(), threading.Event(), logs.append)
    assert cam.name.startswith('file:') and "chose 'file'" in logs[1]


def test_bad_parameters_fail_at_start_naming_the_parameter(tmp_path):
    with pytest.raises(Exception, match="'fps'"):
        values(fps=-30.0)
    with pytest.raises(Exception, match="'backend'"):
        values(backend='kinect')
    with pytest.raises(Exception, match="'path'"):
        values(backend='file', path=str(tmp_path / 'missing.avi'))
    with pytest.raises(SensorError, match="'pipeline'"):
        make_camera(values(backend='gstreamer', pipeline='videotestsrc ! appsink'),
                    ClockMap(), threading.Event())


def test_nominal_intrinsics_match_the_field_of_view():
    k = nominal_intrinsics(640, 480, 90.0)
    assert k[0] == pytest.approx(320.0) and k[2] == 320.0 and k[5] == 240.0


@pytest.mark.skipif(not v4l2_available('0'), reason='no V4L2 camera at /dev/video0')
def test_a_real_v4l2_camera_delivers_rgb_frames():
    cam = DeviceCamera('v4l2', '0', 640, 480, 30.0, ClockMap())
    cam.open()
    try:
        frame = cam.read()
        assert frame.rgb.shape == (480, 640, 3)
    finally:
        cam.close()
