"""Run while a Jetson image builds: the base's onnxruntime has the GPU execution providers
and its OpenCV can open GStreamer pipelines (the CSI camera), after SAGE's pins went in.

A wrong base (or a pin that replaced the base's packages) fails the build, not the robot.
Whether the providers load on the GPU is only known on the Jetson: each encoder's
/diagnostics says (providers = live).
"""
from __future__ import annotations

import sys

import cv2
import onnxruntime

from sage_sensors.opencv_gstreamer import has_gstreamer, missing_gstreamer_message

GPU_PROVIDERS = ('TensorrtExecutionProvider', 'CUDAExecutionProvider')


def main() -> int:
    problems = []
    available = onnxruntime.get_available_providers()
    lacking = [p for p in GPU_PROVIDERS if p not in available]
    if lacking:
        problems.append(f'onnxruntime {onnxruntime.__version__} ({onnxruntime.__file__}) lacks '
                        f'{", ".join(lacking)}: PyPI\'s CPU build replaced the base\'s GPU one?')
    if not has_gstreamer(cv2.getBuildInformation()):
        problems.append(missing_gstreamer_message(cv2.__version__, cv2.__file__))
    for problem in problems:
        print(f'ERROR: {problem}', file=sys.stderr)
    if not problems:
        print(f'onnxruntime {onnxruntime.__version__}: {", ".join(available)}; '
              f'OpenCV {cv2.__version__} with GStreamer')
    return 1 if problems else 0


if __name__ == '__main__':
    sys.exit(main())
