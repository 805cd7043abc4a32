#!/usr/bin/env bash
# The embedded sample scene (photos from scikit-image, espeak-ng speech, an IMU trace) that the
# default run and the tests use. Deterministic from its seed; a second run does nothing.
set -euo pipefail
"$1/bin/python" -m sage_sensors.make_samples
