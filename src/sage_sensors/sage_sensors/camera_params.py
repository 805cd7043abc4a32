"""Camera node parameters (pure: the launcher checks profile values with these specs)."""
from __future__ import annotations

from collections.abc import Mapping
import os
from typing import Any

from sage_common import mailbox_params
from sage_common.params import ParamSpec

from sage_sensors.color import FORMATS
from sage_sensors.driver_watch import DRIVER_PARAMS
from sage_sensors.source_params import SOURCE_PARAMS
from sage_sensors.timeline import TIMELINE_PARAMS, timeline_from_params

BACKENDS = ('v4l2', 'gstreamer', 'file', 'synthetic', 'auto', 'ros')
#: How the ros backend takes the driver's topic: by its type on the graph, or as told.
TRANSPORTS = ('auto', 'raw', 'compressed')

PARAMS: tuple[ParamSpec, ...] = (
    ParamSpec('backend', 'synthetic', 'where frames come from; auto = V4L2 device, else the '
              'file at path, else synthetic; ros = the robot\'s camera driver topic (topic)',
              choices=BACKENDS, read_only=True),
    ParamSpec('topic', '/camera/image_raw', 'ros backend: the driver\'s sensor_msgs/Image '
              '(rgb8, bgr8, rgba8, bgra8, mono8, mono16, yuv422_yuy2/yuyv, yuv422/uyvy) or '
              'CompressedImage (JPEG, PNG) topic', read_only=True),
    ParamSpec('info_topic', '/camera/camera_info', 'ros backend: the driver\'s CameraInfo, '
              'passed on (scaled to width x height) with each frame; empty or silent = the '
              'nominal intrinsics (hfov_deg)', read_only=True),
    ParamSpec('transport', 'auto', 'ros backend: raw = sensor_msgs/Image, compressed = '
              'CompressedImage, auto = the type the topic has on the graph (a name ending in '
              '/compressed: compressed)', choices=TRANSPORTS, read_only=True),
    ParamSpec('device', '0', 'V4L2 device index or path (v4l2); CSI sensor-id (gstreamer)',
              read_only=True),
    ParamSpec('pipeline', '', 'GStreamer pipeline ending in an appsink; empty = Jetson CSI '
              '(nvarguscamerasrc); {width} {height} {fps} {sensor_id} are filled in',
              read_only=True),
    ParamSpec('path', '', 'video file for the file backend (empty = the sample scene video)',
              read_only=True),
    ParamSpec('width', 640, 'published image width (frames are resized to it)',
              min_value=16, max_value=4096, read_only=True),
    ParamSpec('height', 480, 'published image height', min_value=16, max_value=4096,
              read_only=True),
    ParamSpec('fps', 30.0, 'frames per second, changeable at run time. synthetic: re-timed '
              'in place; file: plays in real time, delivering at most its own rate and '
              'skipping frames below it (fps is its rate if it does not say; pace=false '
              'ignores fps); v4l2: asked of the device without reopening, faster frames are '
              'dropped; gstreamer: lower rates drop frames, a rate above the one the pipeline '
              'was built with restarts capture', min_value=0.1, max_value=240.0),
    ParamSpec('pixel_format', 'bgr8', 'what the V4L2 device delivers through OpenCV',
              choices=FORMATS, read_only=True),
    ParamSpec('frame_id', 'camera_optical_frame', 'header.frame_id of image and camera_info',
              read_only=True),
    ParamSpec('loop', True, 'file backend: start again at the end', read_only=True),
    ParamSpec('pace', True, 'file backend: real time (true) or as fast as possible (false)',
              read_only=True),
    ParamSpec('seed', 0, 'seed of the synthetic sensor noise', min_value=0,
              max_value=2**31 - 1, read_only=True),
    ParamSpec('noise', 2.0, 'synthetic sensor noise (grey levels, std)', min_value=0.0,
              max_value=64.0, read_only=True),
    ParamSpec('pan_px', 200.0, 'synthetic camera pan, peak to peak, in pixels at 480 rows',
              min_value=0.0, max_value=2000.0, read_only=True),
    ParamSpec('hfov_deg', 62.2, 'horizontal field of view for the nominal CameraInfo '
              '(62.2 = IMX219 / Raspberry Pi camera v2)', min_value=1.0, max_value=179.0,
              read_only=True),
) + SOURCE_PARAMS + DRIVER_PARAMS + TIMELINE_PARAMS + mailbox_params.WRITER_PARAMS


def validate(values: Mapping[str, Any]) -> list[str]:
    """Cross-field rules: a readable file, a workable schedule."""
    errors = []
    path = str(values.get('path', ''))
    if values.get('backend') == 'file' and path and not os.access(path, os.R_OK):
        errors.append(f"parameter 'path': video file {path!r} is missing or unreadable")
    if values.get('backend') == 'gstreamer' and values.get('pipeline') and \
            'appsink' not in str(values['pipeline']):
        errors.append("parameter 'pipeline': must end in an appsink")
    if values.get('backend') == 'ros' and not str(values.get('topic', '')):
        errors.append("parameter 'topic': the ros backend needs the driver's image topic")
    errors.extend(timeline_from_params(values).problems())
    return errors
