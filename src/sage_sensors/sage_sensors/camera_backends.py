"""Camera backends: v4l2 and GStreamer devices (OpenCV), video files, the synthetic scene, and
the robot's own camera driver topic (`ros`, in ros_camera).

Each source returns CameraFrame(stamp, rgb) with rgb a contiguous (height, width, 3) uint8
array already converted and resized, stamped at capture: right after the device delivered
the frame (grab), or the scheduled time of a paced file/synthetic frame. Pure (no rclpy).

The frame rate can change while a source runs (`set_rate`, from any thread): synthetic and
paced file sources re-time their schedule (a file keeps playing in real time and skips frames
below its own rate); a V4L2 device is asked for the new rate at its next read and frames it
delivers faster are dropped (Decimator). A GStreamer pipeline's rate is fixed when it starts:
a lower rate is decimated, a higher one returns False, asking the caller to restart capture
(close, open) so the pipeline is rebuilt at the new rate.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
import os
from pathlib import Path
import threading
from typing import Any

import cv2
import numpy as np

from sage_sensors.camera_frame import CameraFrame
from sage_sensors.color import fit, to_rgb8
from sage_sensors.errors import SensorError, StreamEnded, StreamError
from sage_sensors.opencv_gstreamer import has_gstreamer, missing_gstreamer_message
from sage_sensors.pacing import ClockMap, Decimator, Pacer
from sage_sensors.ros_camera import RosImageSource
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

#: Media positions are sums of tick intervals times the frame rate: a frame due at 3.0 may
#: add up to 2.9999999, which must still count as frame 3.
_FRAME_EPS = 1e-6


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
        self.rate_hz = fps

    @property
    def dropped(self) -> int:
        return self._pacer.dropped

    def set_rate(self, fps: float) -> bool:
        """Re-time the schedule (applied in place)."""
        self._pacer.set_period(1.0 / fps)
        self.rate_hz = fps
        return True

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
    """A video file, looped, paced in real time or played as fast as possible.

    Paced: the video plays in real time at its own frame rate (fps when the file does not
    say), delivering min(fps, that rate) frames per second; below it, frames are skipped by
    media time so the scene keeps real time. stamp = scheduled time of the frame.
    Fast (pace=false): every frame, stamp = start + media time, so stamps still follow the
    video's own timing; the rate has no effect.
    """

    reconnectable = False

    def __init__(self, path: str, width: int, height: int, fps: float, loop: bool,
                 pace: bool, clock: ClockMap, stop: threading.Event) -> None:
        self.name = f'file:{path}'
        self._path = path
        self._size = (width, height)
        self._requested = fps
        self._loop = loop
        self._pace = pace
        self._clock = clock
        self._stop = stop
        self._cap: cv2.VideoCapture | None = None
        self._pacer: Pacer | None = None
        self._rate_lock = threading.Lock()   # set_rate comes from another thread
        self._frames_total = 0
        self._pos = 0            # frames read since the file was (re)opened
        self._media_index = 0    # frames read since open(), across loops
        self._due = 0.0          # media position (frames) the current tick shows
        self._last_tick: float | None = None
        self._start = 0.0
        self.fps = fps           # the video's own rate once opened

    @property
    def dropped(self) -> int:
        return self._pacer.dropped if self._pacer is not None else 0

    @property
    def rate_hz(self) -> float:
        """Frames delivered per second when paced."""
        return min(self._requested, self.fps)

    def set_rate(self, fps: float) -> bool:
        """Re-time the delivery schedule (applied in place)."""
        with self._rate_lock:
            self._requested = fps
            if self._pacer is not None and self._pace:
                self._pacer.set_period(1.0 / self.rate_hz)
        return True

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
        with self._rate_lock:
            # real time = the file's own frame rate; fps only when the file does not say
            self.fps = file_fps if 0 < file_fps <= 1000 else self._requested
            self._pacer = Pacer(1.0 / self.rate_hz if self._pace else 0.0, self._stop)
        self._start = self._clock.now()
        self._media_index = 0
        self._due = 0.0
        self._last_tick = None

    def read(self) -> CameraFrame | None:
        assert self._pacer is not None
        tick = self._pacer.wait()
        if tick is None or self._cap is None:
            return None
        if self._pace:
            # Media time follows the wall clock; the frames between two slower ticks are
            # skipped (grab only, no colour conversion).
            if self._last_tick is not None:
                self._due += (tick - self._last_tick) * self.fps
            self._last_tick = tick
            while self._media_index < int(self._due + _FRAME_EPS):
                self._advance(decode=False)
            stamp = self._clock.to_clock(tick)
        else:
            stamp = self._start + self._media_index / self.fps
        frame = self._advance(decode=True)
        rgb = fit(to_rgb8(frame, 'bgr8' if frame.ndim == 3 else 'mono8'), *self._size)
        return CameraFrame(stamp, np.ascontiguousarray(rgb))

    def _advance(self, decode: bool) -> Any:
        """Step one frame, starting again at the end; the decoded frame when asked."""
        assert self._cap is not None
        ok, frame = self._cap.read() if decode else (self._cap.grab(), None)
        if not ok:
            if self._frames_total and self._pos < self._frames_total - 1:
                raise StreamError(f'video file {self._path} is corrupt at frame {self._pos}')
            if not self._loop:
                raise StreamEnded(f'end of {self._path}')
            self._cap.release()
            self._open_capture()          # reopening notices a file that vanished
            ok, frame = self._cap.read() if decode else (self._cap.grab(), None)
            if not ok:
                raise StreamError(f'video file {self._path} has no readable frame')
        self._pos += 1
        self._media_index += 1
        return frame

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


class DeviceCamera:
    """A camera through OpenCV: V4L2 (index or /dev path) or a GStreamer pipeline.

    Stamped right after grab() returns (the frame has arrived), before decoding. Frames the
    device skipped are counted from gaps in the stamps. A new rate is applied by the capture
    thread at its next read (an OpenCV capture must not be used from two threads): V4L2 is
    asked for it (CAP_PROP_FPS) without reopening; frames a device delivers faster than asked
    (it refused, or cannot go that slow) are dropped on schedule by a Decimator. A GStreamer
    pipeline runs at the rate it was built with (`{fps}` in the template): lower rates are
    decimated, a higher one makes set_rate return False so the caller restarts capture.
    """

    reconnectable = True

    def __init__(self, kind: str, target: str, width: int, height: int, fps: float,
                 clock: ClockMap, pixel_format: str = 'bgr8', sensor_id: str = '0') -> None:
        self.name = f'{kind}:{target if kind == "v4l2" else "pipeline"}'
        self._kind = kind
        self._target = target      # device, or the pipeline template for gstreamer
        self._sensor_id = sensor_id
        self._size = (width, height)
        self._requested = fps
        self._device_fps = fps     # what the device delivers (its own rate when it says)
        self._pending: float | None = None
        self._rate_lock = threading.Lock()
        self._decimator = Decimator()
        self._clock = clock
        self._format = pixel_format
        self._cap: cv2.VideoCapture | None = None
        self._last: float | None = None
        self.dropped = 0
        self.rate_hz = fps

    def pipeline(self) -> str:
        """The GStreamer pipeline for the current rate."""
        w, h = self._size
        return self._target.format(width=w, height=h, fps=int(round(self._requested)),
                                   sensor_id=self._sensor_id)

    def set_rate(self, fps: float) -> bool:
        """Ask for a new rate; False when only a restart can give it (a faster pipeline)."""
        with self._rate_lock:
            if (self._kind == 'gstreamer' and '{fps}' in self._target
                    and fps > self._device_fps):
                self._requested, self._pending = fps, None
                return False
            self._pending = fps
        return True

    def open(self) -> None:
        with self._rate_lock:
            self._pending = None
        if self._kind == 'gstreamer':
            if not has_gstreamer(cv2.getBuildInformation()):
                raise StreamError(missing_gstreamer_message(cv2.__version__, cv2.__file__))
            cap = cv2.VideoCapture(self.pipeline(), cv2.CAP_GSTREAMER)
        else:
            target: Any = int(self._target) if self._target.isdigit() else self._target
            cap = cv2.VideoCapture(target, cv2.CAP_V4L2)
            if cap.isOpened():
                cap.set(cv2.CAP_PROP_FRAME_WIDTH, self._size[0])
                cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self._size[1])
                cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)     # newest frame, not a backlog
        if not cap.isOpened():
            cap.release()
            what = 'GStreamer pipeline' if self._kind == 'gstreamer' else 'V4L2 device'
            raise StreamError(f'cannot open {what} {self._target!r}')
        self._cap = cap
        self._apply_rate(self._requested, opened=True)

    def _apply_rate(self, fps: float, opened: bool = False) -> None:
        """Ask the device for fps and decimate what it delivers beyond it (capture thread)."""
        assert self._cap is not None
        self._requested = fps
        if self._kind == 'v4l2':
            self._cap.set(cv2.CAP_PROP_FPS, fps)    # the driver may refuse while streaming
            self._device_fps = float(self._cap.get(cv2.CAP_PROP_FPS) or 0.0) or fps
        elif opened:      # a pipeline runs at the rate it was built with
            said = 0.0 if '{fps}' in self._target else float(
                self._cap.get(cv2.CAP_PROP_FPS) or 0.0)
            self._device_fps = said or fps
        self._decimator.set_period(1.0 / fps, 1.0 / self._device_fps)
        self.rate_hz = min(fps, self._device_fps)
        self._last = None           # gaps are counted at the new rate from here

    def read(self) -> CameraFrame | None:
        if self._cap is None:
            raise StreamError('device is closed')
        with self._rate_lock:
            pending, self._pending = self._pending, None
        if pending is not None:
            self._apply_rate(pending)
        if not self._cap.grab():
            raise StreamError('device stopped delivering frames')
        stamp = self._clock.now()
        if self._last is not None:
            missed = int(round((stamp - self._last) * self._device_fps)) - 1
            if missed > 0:
                self.dropped += missed
        self._last = stamp
        if not self._decimator.keep(stamp):
            return None             # above the asked rate: not decoded, not published
        ok, frame = self._cap.retrieve()
        if not ok or frame is None:
            raise StreamError('device returned an empty frame')
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
        source = DeviceCamera('gstreamer', pipeline, w, h, fps, clock,
                              sensor_id=device if device.isdigit() else '0')
    elif backend == 'ros':      # fed by the node's subscription to the driver's topic
        source = RosImageSource(str(values['topic']), w, h, fps)
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
