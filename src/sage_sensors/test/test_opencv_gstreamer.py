"""The gstreamer camera names a missing GStreamer in OpenCV instead of 'cannot open'."""
import threading

import cv2
import pytest

from sage_common.params import resolve

from sage_sensors.camera_backends import make_camera
from sage_sensors.camera_params import PARAMS, validate
from sage_sensors.errors import SensorError
from sage_sensors.opencv_gstreamer import has_gstreamer
from sage_sensors.pacing import ClockMap

WITHOUT = """Video I/O:
    FFMPEG:                      YES
      avcodec:                   YES (62.28.101)
    GStreamer:                   NO
    v4l/v4l2:                    YES (linux/videodev2.h)
"""
WITH = WITHOUT.replace('GStreamer:                   NO',
                       'GStreamer:                   YES (1.20.3)')


def test_build_information_is_read_for_gstreamer():
    assert not has_gstreamer(WITHOUT)
    assert has_gstreamer(WITH)
    assert not has_gstreamer('Video I/O:\n    FFMPEG: YES\n')   # no line at all: not built in


def test_the_gstreamer_backend_names_what_is_missing_and_the_fix():
    values = resolve(PARAMS, {'backend': 'gstreamer'}, validate)   # the Jetson CSI pipeline
    with pytest.raises(SensorError) as caught:
        make_camera(values, ClockMap(), threading.Event())
    message = str(caught.value)
    assert "parameter 'pipeline'" in message
    if has_gstreamer(cv2.getBuildInformation()):
        # An OpenCV with GStreamer gets as far as the pipeline (no Argus camera here).
        assert 'cannot open GStreamer pipeline' in message
    else:
        assert 'built without GStreamer' in message and cv2.__version__ in message
        assert 'python3-opencv' in message and 'opencv-python' in message
