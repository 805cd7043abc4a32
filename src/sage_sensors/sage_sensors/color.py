"""Pixel format conversion to rgb8 (the only encoding the camera node publishes).

OpenCV captures BGR; UVC webcams deliver YUYV (YUY2) when asked for raw frames; GStreamer
appsinks hand BGR/BGRx/GRAY8. Every one of them is turned into a contiguous (H, W, 3) uint8 RGB
array here. YUV uses ITU-R BT.601 "studio swing" (Y in 16..235, Cb/Cr in 16..240), which is what
V4L2 means by V4L2_COLORSPACE_SMPTE170M, the default for YUYV webcams.
"""
from __future__ import annotations

import cv2
import numpy as np

#: Input formats to_rgb8 understands (names follow sensor_msgs/image_encodings where one exists).
FORMATS = ('rgb8', 'bgr8', 'rgba8', 'bgra8', 'mono8', 'mono16', 'yuyv', 'uyvy', 'nv12')


def to_rgb8(frame: np.ndarray, fmt: str) -> np.ndarray:
    """Convert one frame to a contiguous (H, W, 3) uint8 RGB array.

    Args:
        frame: the captured buffer. Shapes: rgb8/bgr8 (H, W, 3); rgba8/bgra8 (H, W, 4);
            mono8/mono16 (H, W) or (H, W, 1); yuyv/uyvy (H, W, 2) or (H, 2W) bytes;
            nv12 (3H/2, W).
        fmt: one of FORMATS.

    Returns:
        (H, W, 3) uint8 RGB.

    Raises:
        ValueError: unknown format or a shape that does not fit it.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown pixel format {fmt!r} (known: {', '.join(FORMATS)})")
    if fmt == 'mono16':
        frame = (np.asarray(frame, dtype=np.uint16) >> 8).astype(np.uint8)
        fmt = 'mono8'
    frame = np.asarray(frame)
    if frame.dtype != np.uint8:
        raise ValueError(f'{fmt}: expected uint8 data, got {frame.dtype}')
    if fmt in ('mono8',) and frame.ndim == 3 and frame.shape[2] == 1:
        frame = frame[:, :, 0]
    if fmt in ('yuyv', 'uyvy') and frame.ndim == 2:
        if frame.shape[1] % 4:
            raise ValueError(f'{fmt}: row of {frame.shape[1]} bytes is not whole pixel pairs')
        frame = frame.reshape(frame.shape[0], frame.shape[1] // 2, 2)
    expected = {'rgb8': 3, 'bgr8': 3, 'rgba8': 4, 'bgra8': 4, 'mono8': 0, 'yuyv': 2,
                'uyvy': 2, 'nv12': 0}[fmt]
    channels = frame.shape[2] if frame.ndim == 3 else 0
    if channels != expected:
        raise ValueError(f'{fmt}: frame of shape {frame.shape} does not match the format')
    if fmt == 'nv12' and frame.shape[0] % 3:
        raise ValueError(f'nv12: height {frame.shape[0]} is not 3/2 of an image height')
    code = {'bgr8': cv2.COLOR_BGR2RGB, 'rgba8': cv2.COLOR_RGBA2RGB,
            'bgra8': cv2.COLOR_BGRA2RGB, 'mono8': cv2.COLOR_GRAY2RGB,
            'yuyv': cv2.COLOR_YUV2RGB_YUYV, 'uyvy': cv2.COLOR_YUV2RGB_UYVY,
            'nv12': cv2.COLOR_YUV2RGB_NV12}.get(fmt)
    if code is None:
        return np.ascontiguousarray(frame)
    return cv2.cvtColor(np.ascontiguousarray(frame), code)


def yuv_to_rgb_bt601(y: float, u: float, v: float) -> tuple[int, int, int]:
    """Reference BT.601 studio-swing YCbCr -> RGB for one pixel (the formula of the standard).

    R = 1.164 (Y - 16) + 1.596 (Cr - 128)
    G = 1.164 (Y - 16) - 0.392 (Cb - 128) - 0.813 (Cr - 128)
    B = 1.164 (Y - 16) + 2.017 (Cb - 128)
    """
    c, d, e = y - 16.0, u - 128.0, v - 128.0
    rgb = (1.164 * c + 1.596 * e, 1.164 * c - 0.392 * d - 0.813 * e, 1.164 * c + 2.017 * d)
    return tuple(int(min(255, max(0, round(x)))) for x in rgb)  # type: ignore[return-value]


def fit(frame: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resize an (H, W, C) frame to (height, width, C) unless it already has that size.

    INTER_AREA for shrinking (no aliasing), INTER_LINEAR for enlarging.
    """
    h, w = frame.shape[:2]
    if (w, h) == (width, height):
        return frame
    interp = cv2.INTER_AREA if w * h > width * height else cv2.INTER_LINEAR
    return cv2.resize(frame, (width, height), interpolation=interp)
