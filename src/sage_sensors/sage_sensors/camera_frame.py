"""What every camera backend returns: one frame stamped at capture (its own module, so the
backends of camera_backends and ros_camera share it without importing each other)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class CameraFrame:
    """One captured frame: stamp (node clock seconds), (H, W, 3) uint8 RGB, and the frame id
    the source gave it ('' = the node's frame_id parameter)."""

    stamp: float
    rgb: np.ndarray
    frame_id: str = ''
