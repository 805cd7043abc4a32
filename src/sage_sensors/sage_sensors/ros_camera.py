"""The camera's `ros` backend: frames from the robot's own camera driver topic.

The node's subscription hands each sensor_msgs/Image or CompressedImage to `RosImageSource.push`
(its fields, no rclpy here); the capture thread reads the newest one, converts it to rgb8 at
the configured size and paces it to `fps` by its stamp, like any other backend. The stamp is
the driver's (header.stamp, its capture time), and so is the frame id.

Encodings are the names of sensor_msgs/image_encodings: rgb8, bgr8, rgba8, bgra8, mono8, mono16,
yuv422_yuy2 (bytes Y0 U Y1 V: what usb_cam's `yuyv` publishes), yuv422 (bytes
U Y0 V Y1: UYVY, which image_encodings calls YUV422), plus the aliases yuyv and uyvy.
CompressedImage carries JPEG or PNG (image_transport's `compressed`, realsense's
`.../compressed`): decoded with OpenCV.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
import threading
from typing import Any

import cv2
import numpy as np

from sage_sensors.camera_frame import CameraFrame
from sage_sensors.color import fit, to_rgb8
from sage_sensors.errors import StreamError
from sage_sensors.pacing import Decimator

#: sensor_msgs/image_encodings name -> (color.to_rgb8 format, bytes per pixel).
ENCODINGS: dict[str, tuple[str, int]] = {
    'rgb8': ('rgb8', 3), 'bgr8': ('bgr8', 3), 'rgba8': ('rgba8', 4), 'bgra8': ('bgra8', 4),
    'mono8': ('mono8', 1), '8uc1': ('mono8', 1), '8uc3': ('bgr8', 3), 'mono16': ('mono16', 2),
    '16uc1': ('mono16', 2), 'yuv422_yuy2': ('yuyv', 2), 'yuyv': ('yuyv', 2),
    'yuv422': ('uyvy', 2), 'uyvy': ('uyvy', 2),
}
#: How long read() waits for a message before handing the capture thread None.
READ_TIMEOUT_S = 0.1


@dataclass(frozen=True)
class RawImage:
    """The fields of a sensor_msgs/Image or CompressedImage the conversion needs."""

    stamp: float
    frame_id: str
    encoding: str          # Image.encoding, or CompressedImage.format
    data: bytes
    width: int = 0
    height: int = 0
    step: int = 0
    is_bigendian: bool = False
    compressed: bool = False


def image_to_rgb(height: int, width: int, encoding: str, step: int, data: bytes,
                 is_bigendian: bool = False) -> np.ndarray:
    """A sensor_msgs/Image payload as (height, width, 3) uint8 RGB.

    Rows may be padded (step > width x bytes per pixel); mono16 follows is_bigendian.

    Raises:
        StreamError: an encoding not handled, or a size that does not fit the data.
    """
    enc = encoding.lower()
    if enc not in ENCODINGS:
        raise StreamError(f'image encoding {encoding!r} is not handled (handled: '
                          f"{', '.join(sorted(ENCODINGS))})")
    fmt, bpp = ENCODINGS[enc]
    row = width * bpp
    step = step or row
    if height <= 0 or width <= 0 or step < row or len(data) < step * (height - 1) + row:
        raise StreamError(f'{encoding} image {width}x{height} (step {step}) does not fit '
                          f'{len(data)} bytes')
    if bpp == 2 and fmt in ('yuyv', 'uyvy') and width % 2:
        raise StreamError(f'{encoding} image width {width} is odd: YUV 4:2:2 pairs pixels')
    buf = np.frombuffer(data, np.uint8, count=step * (height - 1) + row)
    rows = np.lib.stride_tricks.as_strided(buf, (height, row), (step, 1))
    if fmt == 'mono16':
        pix = np.ascontiguousarray(rows).view('>u2' if is_bigendian else '<u2')
        return to_rgb8(pix.astype(np.uint16), 'mono16')
    if fmt == 'mono8':
        return to_rgb8(np.ascontiguousarray(rows), 'mono8')
    shaped = np.ascontiguousarray(rows).reshape(height, width, bpp)
    try:
        return to_rgb8(shaped, fmt)
    except ValueError as err:
        raise StreamError(str(err)) from err


def compressed_to_rgb(fmt: str, data: bytes) -> np.ndarray:
    """A sensor_msgs/CompressedImage payload (JPEG or PNG) as (H, W, 3) uint8 RGB.

    Raises:
        StreamError: a depth stream (compressedDepth), another codec, or undecodable bytes.
    """
    text = fmt.lower()
    if 'compresseddepth' in text:
        raise StreamError(f'compressed format {fmt!r} is a depth stream, not a colour image')
    if text and 'jpeg' not in text and 'jpg' not in text and 'png' not in text:
        raise StreamError(f'compressed format {fmt!r} is neither JPEG nor PNG')
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise StreamError(f'cannot decode a {fmt or "compressed"} image of {len(data)} bytes')
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def scale_intrinsics(k: list[float], p: list[float], sx: float, sy: float
                     ) -> tuple[list[float], list[float]]:
    """CameraInfo K (3x3) and P (3x4), row-major, for an image resized by (sx, sy)."""
    k2, p2 = list(k), list(p)
    for m, cols in ((k2, 3), (p2, 4)):
        for c in range(cols):
            m[c] *= sx
            m[cols + c] *= sy
    return k2, p2


def _ignore(message: str) -> None:
    del message


class RosImageSource:
    """Frames pushed from a driver topic; the newest unread one is kept (a mailbox of one).

    push() runs in the subscription callback: it only stores the message. read() (the capture
    thread) waits for one, converts and resizes it, and keeps the frames that fall on the `fps`
    schedule by their stamps. A message replaced before it was read counts in `dropped`; one
    that cannot be converted is told to `on_bad` and skipped (the stream goes on).
    """

    reconnectable = False

    def __init__(self, topic: str, width: int, height: int, fps: float) -> None:
        self.name = f'ros:{topic}'
        self._size = (width, height)
        self._cond = threading.Condition()
        self._pending: RawImage | None = None
        self._closed = False
        self._decimator = Decimator()
        self._requested = fps
        self._source_period = 0.0
        self._last_stamp: float | None = None
        self.rate_hz = fps
        self.dropped = 0
        self.bad = 0
        #: told about each message that cannot be used (the node reports it on /diagnostics)
        self.on_bad: Callable[[str], None] = _ignore
        self.source_size: tuple[int, int] | None = None   # the driver's (width, height)

    def open(self) -> None:
        with self._cond:
            self._closed = False

    def set_rate(self, fps: float) -> bool:
        """Keep at most fps frames per second (applied in place)."""
        with self._cond:
            self._requested = fps
            self._decimator.set_period(1.0 / fps, self._source_period)
            self.rate_hz = fps
        return True

    def push(self, image: RawImage) -> None:
        """Hand over one driver message (subscription callback; never blocks)."""
        with self._cond:
            if self._pending is not None:
                self.dropped += 1
            self._pending = image
            self._cond.notify()

    def read(self) -> CameraFrame | None:
        with self._cond:
            if self._pending is None:
                self._cond.wait(READ_TIMEOUT_S)
            image, self._pending = self._pending, None
            if image is None or self._closed:
                return None
            self._learn_period(image.stamp)
            keep = self._decimator.keep(image.stamp)
        if not keep:
            return None
        try:
            rgb = self._convert(image)
        except StreamError as err:      # one bad message: reported, the stream goes on
            self.bad += 1
            self.on_bad(f'{self.name}: {err}')
            return None
        self.source_size = (rgb.shape[1], rgb.shape[0])
        return CameraFrame(image.stamp, np.ascontiguousarray(fit(rgb, *self._size)),
                           image.frame_id)

    def _learn_period(self, stamp: float) -> None:
        """The driver's interval sets the decimator's slack (caller holds the lock)."""
        last, self._last_stamp = self._last_stamp, stamp
        if last is None or not 0.0 < stamp - last < 1.0:
            return
        interval = stamp - last
        if self._source_period == 0.0 or abs(interval - self._source_period) > \
                0.5 * self._source_period:
            self._source_period = interval
            self._decimator.set_period(1.0 / self._requested, interval)

    @staticmethod
    def _convert(image: RawImage) -> np.ndarray:
        if image.compressed:
            return compressed_to_rgb(image.encoding, image.data)
        return image_to_rgb(image.height, image.width, image.encoding, image.step, image.data,
                            image.is_bigendian)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._pending = None
            self._cond.notify()


def raw_image(msg: Any, compressed: bool, stamp: float) -> RawImage:
    """The RawImage of a sensor_msgs/Image or CompressedImage message (duck-typed)."""
    if compressed:
        return RawImage(stamp, str(msg.header.frame_id), str(msg.format), bytes(msg.data),
                        compressed=True)
    return RawImage(stamp, str(msg.header.frame_id), str(msg.encoding), bytes(msg.data),
                    int(msg.width), int(msg.height), int(msg.step), bool(msg.is_bigendian))
