"""A small camera model for evaluation scenes: a view over real photos, sensor noise, JPEG.

The world is a panorama of photographs; the camera sees a window of it. Rendering a frame:
panorama window x exposure gain (auto-exposure drift and steps, light changes) -> photon shot
noise (Poisson-like, grows with the signal) + read noise -> 8-bit quantisation -> JPEG round trip
(the artefacts of a compressed camera stream). Pure numpy/OpenCV.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class SensorNoise:
    """Noise of a small CMOS sensor in 8-bit units.

    Attributes:
        gain_dn_per_e: digital numbers per electron (higher = darker room, more amplification).
        read_dn: read noise standard deviation (DN).
        jpeg_quality: quality of the JPEG round trip (cv2.imencode).
    """

    gain_dn_per_e: float
    read_dn: float
    jpeg_quality: int


def resize_to_height(img: np.ndarray, height: int) -> np.ndarray:
    """img scaled so that it is `height` rows tall (aspect kept)."""
    w = max(1, round(img.shape[1] * height / img.shape[0]))
    return cv2.resize(img, (w, height), interpolation=cv2.INTER_AREA)


def cutout(img: np.ndarray, side: int, rng: np.random.Generator, feather: float = 0.15
           ) -> tuple[np.ndarray, np.ndarray]:
    """A square crop of a photo scaled to `side` px and a soft elliptical alpha mask.

    Args:
        img: (H, W, 3) uint8 photo.
        side: output side (px).
        rng: picks the crop's centre near the photo's middle.
        feather: width of the soft edge as a fraction of the side.

    Returns:
        (patch (side, side, 3) float32, alpha (side, side, 1) float32 in [0, 1]).
    """
    crop = int(min(img.shape[:2]) * 0.7)
    cy = img.shape[0] // 2 + int(rng.integers(-img.shape[0] // 10, img.shape[0] // 10 + 1))
    cx = img.shape[1] // 2 + int(rng.integers(-img.shape[1] // 10, img.shape[1] // 10 + 1))
    y0 = int(np.clip(cy - crop // 2, 0, img.shape[0] - crop))
    x0 = int(np.clip(cx - crop // 2, 0, img.shape[1] - crop))
    patch = cv2.resize(img[y0:y0 + crop, x0:x0 + crop], (side, side),
                       interpolation=cv2.INTER_AREA).astype(np.float32)
    u = (np.arange(side) + 0.5) / side * 2.0 - 1.0
    r = np.sqrt(u[None, :] ** 2 + u[:, None] ** 2)
    alpha = np.clip((1.0 - r) / (2.0 * feather), 0.0, 1.0)
    return patch, (np.sin(0.5 * np.pi * alpha) ** 2)[..., None].astype(np.float32)


def paste(canvas: np.ndarray, patch: np.ndarray, alpha: np.ndarray, x: int, y: int) -> None:
    """Blend patch into canvas (float32, in place) at (x, y) with its alpha mask."""
    h, w = patch.shape[:2]
    region = canvas[y:y + h, x:x + w]
    region[...] = region * (1.0 - alpha) + patch * alpha


def expose(view: np.ndarray, gain: float, noise: SensorNoise, rng: np.random.Generator
           ) -> np.ndarray:
    """Exposure, shot and read noise, quantisation and a JPEG round trip of one view.

    Args:
        view: (H, W, 3) float32 scene radiance in 8-bit units at unit gain.
        gain: exposure x lighting gain.
        noise: sensor noise settings.
        rng: noise source.

    Returns:
        (H, W, 3) uint8 RGB frame as the robot's camera would deliver it.
    """
    signal = np.clip(view * gain, 0.0, 255.0)
    # Shot noise: electrons are Poisson; in DN its variance is gain * signal.
    sigma = np.sqrt(signal * noise.gain_dn_per_e + noise.read_dn ** 2)
    frame = np.clip(signal + rng.standard_normal(signal.shape, dtype=np.float32) * sigma,
                    0.0, 255.0)
    raw = np.ascontiguousarray(np.rint(frame).astype(np.uint8))
    ok, buf = cv2.imencode('.jpg', cv2.cvtColor(raw, cv2.COLOR_RGB2BGR),
                           [cv2.IMWRITE_JPEG_QUALITY, int(noise.jpeg_quality)])
    if not ok:  # OpenCV without a JPEG codec: deliver the raw frame
        return raw
    return cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
