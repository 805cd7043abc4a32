"""Whether this OpenCV can open GStreamer pipelines (the Jetson CSI path needs it).

pip's opencv-python wheels are built without GStreamer: cv2.VideoCapture(pipeline,
CAP_GSTREAMER) then just fails to open, which hides the cause. The gstreamer backend asks
first and names it.
"""
from __future__ import annotations

import re

# The 'Video I/O' section of cv2.getBuildInformation() has a line 'GStreamer: YES (1.20.3)'
# or 'GStreamer: NO'.
_GSTREAMER_LINE = re.compile(r'^\s*GStreamer:\s*(\S+)', re.MULTILINE)


def has_gstreamer(build_information: str) -> bool:
    """True when the build information says OpenCV's video I/O was built with GStreamer."""
    match = _GSTREAMER_LINE.search(build_information)
    return match is not None and match.group(1).upper() == 'YES'


def missing_gstreamer_message(cv2_version: str, cv2_path: str) -> str:
    """The error a gstreamer camera gives on an OpenCV without GStreamer: cause and fix."""
    return (f'OpenCV {cv2_version} ({cv2_path}) was built without GStreamer '
            "(cv2.getBuildInformation() says 'GStreamer: NO'), so it cannot open a GStreamer "
            'or Jetson CSI pipeline. Use an OpenCV built with GStreamer: the Jetson images '
            "take the base image's (docker/README.md); elsewhere apt's python3-opencv, "
            'with opencv-python / opencv-python-headless uninstalled (the PyPI wheels have no '
            'GStreamer).')
