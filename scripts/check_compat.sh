#!/usr/bin/env bash
# Compatibility checks CI runs (scripts/test.sh): the Python code is valid on Python 3.10
# (Humble on the Orin: vermin, plus ruff's py310 target in pyproject.toml), and each Jetson
# image's pins resolve for its platform and Python (scripts/check_image_pins.py).
# Usage: scripts/check_compat.sh [VENV]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
VENV=${1:-${SAGE_VENV:-$ROOT/.venv}}
cd "$ROOT"
status=0
echo '[compat] Python 3.10 syntax and standard library (vermin)'
# --eval-annotations: annotations count too (most modules use `from __future__ import
# annotations`, but typing.get_type_hints would evaluate them on 3.10).
"$VENV/bin/vermin" -q -t=3.10- --no-tips --violations --eval-annotations src/*/sage* || status=1
echo '[compat] image pins resolve for their platform and Python'
"$VENV/bin/python" scripts/check_image_pins.py || status=1
exit $status
