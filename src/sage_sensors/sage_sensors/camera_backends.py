"""Camera backends: v4l2 and GStreamer devices (OpenCV), video files, the synthetic scene.

Each source returns CameraFrame(stamp, rgb) with rgb a contiguous (height, width, 3) uint8
array already converted and resized, stamped at capture: right after the device delivered
the frame (grab), or the scheduled time of a paced file/synthetic frame. Pure (no rclpy).
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
import os
from pathlib import Path
import threading
from typing import Any

import cv2
import numpy as np

from sage_sensors.color import fit, to_rgb8
from sage_sensors.errors import SensorError, StreamEnded, StreamError
from sage_sensors.pacing import ClockMap, Pacer
from sage_sensors.samples import (build_object, build_panorama, ensure_samples,
                                  load_image_rgb, sample_data_dir)
from sage_sensors.scene import CameraScene
from sage_sensors.timeline import timeline_from_params

#: Jetson CSI camera (IMX219/IMX477) through Argus; appsink drops old buffers instead of
#: queueing them, so the node always gets the newest frame.
JETSON_CSI_PIPELINE = (
    'nvarguscamerasrc sensor-id={sensor_id} ! '
    'video/x-raw(memory:NVMM), width=(int)1280, height=(int)720, framerate=(fraction){fps}/1 ! '
    'nvvidconv ! video/x-raw, width=(int){width}, height=(int){height}, format=(string)BGRx ! '
    'videoconvert ! video/x-raw, format=(string)BGR ! '
    'appsink drop=true max-buffers=1 sync=false')


@dataclass(frozen=True)
class CameraFrame:
    """One captured frame: stamp (node clock seconds) and (H, W, 3) uint8 RGB."""

    stamp: float
    rgb: np.ndarray


class SyntheticCamera:
    """The sample scene rendered on a fixed schedule; stamp = scheduled capture time."""

    reconnectable = False

    def __init__(self, scene: CameraScene, fps: float, clock: ClockMap,
                 stop: threading.Event) -> None:
        self.name = 'synthetic'
        self._scene = scene
        self._pacer = Pacer(1.0 / fps, stop)
        self._clock = clock
        self._index = 0

    @property
    def dropped(self) -> int:
        return self._pacer.dropped

    def open(self) -> None:
        self._pacer.reset()

    def read(self) -> CameraFrame | None:
        tick = self._pacer.wait()
        if tick is None:
            return None
        stamp = self._clock.to_clock(tick)
        self._index += 1
        return CameraFrame(stamp, self._scene.render(stamp, self._index))

    def close(self) -> None:
        pass


class FileCamera:
    """A video file, looped, paced at its frame rate (or fps) or as fast as possible.

    Paced: stamp = scheduled time of the frame. Fast: stamp = start + media time, so stamps
    still follow the video's own timing.
    """

    reconnectable = False

    def __init__(self, path: str, width: int, height: int, fps: float, loop: bool,
                 pace: bool, clock: ClockMap, stop: threading.Event) -> None:
        self.name = f'file:{path}'
        self._path = path
        self._size = (width, height)
        self._fps_param = fps
        self._loop = loop
        self._pace = pace
        self._clock = clock
        self._stop = stop
        self._cap: cv2.VideoCapture | None = None
        self._pacer: Pacer | None = None
        self._frames_total = 0
        self._pos = 0
        self._media_index = 0
        self._start = 0.0
        self.fps = fps

    @property
    def dropped(self) -> int:
        return self._pacer.dropped if self._pacer is not None else 0

    def _open_capture(self) -> None:
        if not os.access(self._path, os.R_OK):
            raise StreamError(f'video file {self._path} is missing or unreadable')
        cap = cv2.VideoCapture(self._path)
        if not cap.isOpened():
            raise StreamError(f'cannot decode video file {self._path}')
        self._cap = cap
        self._frames_total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        self._pos = 0

    def open(self) -> None:
        self._open_capture()
        assert self._cap is not None
        file_fps = float(self._cap.get(cv2.CAP_PROP_FPS) or 0.0)
        # real time = the file's own frame rate; fps only when the file does not say
        self.fps = file_fps if 0 < file_fps <= 1000 else self._fps_param
        self._pacer = Pacer(1.0 / self.fps if self._pace else 0.0, self._stop)
        self._start = self._clock.now()
        self._media_index = 0

    def read(self) -> CameraFrame | None:
        assert self._pacer is not None
        tick = self._pacer.wait()
        if tick is None or self._cap is None:
            return None
        ok, frame = self._cap.read()
        if not ok:
            if self._frames_total and self._pos < self._frames_total - 1:
                raise StreamError(f'video file {self._path} is corrupt at frame {self._pos}')
            if not self._loop:
                raise StreamEnded(f'end of {self._path}')
            self._cap.release()
            self._open_capture()          # reopening notices a file that vanished
            ok, frame = self._cap.read()
            if not ok:
                raise StreamError(f'video file {self._path} has no readable frame')
        self._pos += 1
        if self._pace:
            stamp = self._clock.to_clock(tick)
        else:
            stamp = self._start + self._media_index / self.fps
        self._media_index += 1
        rgb = fit(to_rgb8(frame, 'bgr8' if frame.ndim == 3 else 'mono8'), *self._size)
        return CameraFrame(stamp, np.ascontiguousarray(rgb))

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


class DeviceCamera:
    """A camera through OpenCV: V4L2 (index or /dev path) or a GStreamer pipeline.

    Stamped right after grab() returns (the frame has arrived), before decoding. Frames the
    device skipped are counted from gaps in the stamps.
    """

    reconnectable = True

    def __init__(self, kind: str, target: str, width: int, height: int, fps: float,
                 clock: ClockMap, pixel_format: str = 'bgr8') -> None:
        self.name = f'{kind}:{target if kind == "v4l2" else "pipeline"}'
        self._kind = kind
        self._target = target
        self._size = (width, height)
        self._fps = fps
        self._clock = clock
        self._format = pixel_format
        self._cap: cv2.VideoCapture | None = None
        self._last: float | None = None
        self.dropped = 0

    def open(self) -> None:
        if self._kind == 'gstreamer':
            cap = cv2.VideoCapture(self._target, cv2.CAP_GSTREAMER)
        else:
            target: Any = int(self._target) if self._target.isdigit() else self._target
            cap = cv2.VideoCapture(target, cv2.CAP_V4L2)
            if cap.isOpened():
                cap.set(cv2.CAP_PROP_FRAME_WIDTH, self._size[0])
                cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self._size[1])
                cap.set(cv2.CAP_PROP_FPS, self._fps)
                cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)     # newest frame, not a backlog
        if not cap.isOpened():
            cap.release()
            what = 'GStreamer pipeline' if self._kind == 'gstreamer' else 'V4L2 device'
            raise StreamError(f'cannot open {what} {self._target!r}')
        self._cap = cap
        self._last = None

    def read(self) -> CameraFrame | None:
        if self._cap is None:
            raise StreamError('device is closed')
        if not self._cap.grab():
            raise StreamError('device stopped delivering frames')
        stamp = self._clock.now()
        ok, frame = self._cap.retrieve()
        if not ok or frame is None:
            raise StreamError('device returned an empty frame')
        if self._last is not None and self._fps > 0:
            missed = int(round((stamp - self._last) * self._fps)) - 1
            if missed > 0:
                self.dropped += missed
        self._last = stamp
        fmt = self._format if frame.ndim == 3 else 'mono8'
        return CameraFrame(stamp, np.ascontiguousarray(fit(to_rgb8(frame, fmt), *self._size)))

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


def build_scene(values: Mapping[str, Any]) -> CameraScene:
    """The synthetic scene at the configured size, from the sample folder or built in memory."""
    folder = _data_dir(values)
    try:
        panorama = load_image_rgb(folder / 'panorama.png')
        obj = load_image_rgb(folder / 'object.png', alpha=True)
    except SensorError:      # no samples installed: the same photos, straight from skimage
        panorama, obj = build_panorama(), build_object()
    return CameraScene(panorama, obj, int(values['width']), int(values['height']),
                       timeline_from_params(values), int(values['seed']),
                       float(values['noise']), float(values['pan_px']))


def _data_dir(values: Mapping[str, Any]) -> Path:
    return Path(str(values.get('data_dir') or '') or sample_data_dir())


def v4l2_available(device: str) -> bool:
    """True when the V4L2 device node for an index or path exists."""
    path = f'/dev/video{device}' if device.isdigit() else device
    return os.path.exists(path)


def make_camera(values: Mapping[str, Any], clock: ClockMap, stop: threading.Event,
                log: Callable[[str], None] = print) -> Any:
    """Build and open the configured camera source.

    'auto' tries the V4L2 device, then the file at path, then the synthetic scene, and logs
    which it chose.

    Raises:
        SensorError: the chosen backend cannot start (message names the parameter).
    """
    backend = str(values['backend'])
    w, h, fps = int(values['width']), int(values['height']), float(values['fps'])
    path, device = str(values['path']), str(values['device'])
    if backend == 'auto':
        if v4l2_available(device):
            backend = 'v4l2'
        elif path and os.access(path, os.R_OK):
            backend = 'file'
        else:
            backend = 'synthetic'
        log(f"backend 'auto' chose '{backend}'")
    if backend == 'synthetic':
        source: Any = SyntheticCamera(build_scene(values), fps, clock, stop)
    elif backend == 'file':
        if not path:      # the embedded sample scene video
            path = str(ensure_samples(_data_dir(values)) / 'scene.avi')
        source = FileCamera(path, w, h, fps, bool(values['loop']), bool(values['pace']),
                            clock, stop)
    elif backend == 'v4l2':
        source = DeviceCamera('v4l2', device, w, h, fps, clock, str(values['pixel_format']))
    elif backend == 'gstreamer':
        pipeline = str(values['pipeline']) or JETSON_CSI_PIPELINE
        pipeline = pipeline.format(width=w, height=h, fps=int(round(fps)),
                                   sensor_id=device if device.isdigit() else 0)
        source = DeviceCamera('gstreamer', pipeline, w, h, fps, clock)
    else:
        raise SensorError(f"parameter 'backend': unknown camera backend {backend!r}")
    try:
        source.open()
    except StreamError as err:
        param = {'file': 'path', 'v4l2': 'device', 'gstreamer': 'pipeline'}.get(backend,
                                                                               'backend')
        raise SensorError(f"parameter '{param}': {err}") from err
    return source


def nominal_intrinsics(width: int, height: int, hfov_deg: float) -> list[float]:
    """Row-major 3x3 K of an ideal pinhole with the given horizontal field of view.

    fx = fy = (width / 2) / tan(hfov / 2), principal point at the image centre. Used for
    CameraInfo until a calibration exists (distortion is reported as zero, plumb_bob).
    """
    f = (width / 2.0) / float(np.tan(np.radians(hfov_deg) / 2.0))
    return [f, 0.0, width / 2.0, 0.0, f, height / 2.0, 0.0, 0.0, 1.0]
