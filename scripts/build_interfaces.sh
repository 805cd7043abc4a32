#!/usr/bin/env bash
# Build src/sage_interfaces into the venv with plain cmake (no colcon on PyPI).
# Works around the packaging defects of the ROS 2 PyPI wheels listed in DESIGN.md.
set -euo pipefail
VENV=${1:?usage: build_interfaces.sh VENV}
VENV=$(cd "$VENV" && pwd)
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY=$VENV/bin/python
BUILD=$ROOT/build/sage_interfaces

py_inc=$($PY -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
np_inc=$($PY -c 'import numpy; print(numpy.get_include())')
# The wheels' *Export.cmake files name the wheel builder's Python and NumPy include folders.
# (grep finds nothing once they are fixed: not an error.)
{ grep -rlZ --include='*Export.cmake' '/opt/python/cp311-cp311' "$VENV/share" 2>/dev/null || true; } \
  | xargs -0 -r sed -i \
      -e "s#/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include#$np_inc#g" \
      -e "s#/opt/python/cp311-cp311/include/python3.11#$py_inc#g"

# Rebuild only when an interface file changed since the last install (keeps reinstalls fast).
stamp=$VENV/.sage_interfaces.sha
sum=$(cd "$ROOT/src/sage_interfaces" && cat CMakeLists.txt package.xml msg/*.msg srv/*.srv action/*.action | sha256sum | cut -d' ' -f1)
if [[ -f $stamp && $(cat "$stamp") == "$sum" ]] && $PY -c 'import sage_interfaces.msg' 2>/dev/null; then
  echo "sage_interfaces: up to date"
  exit 0
fi

mkdir -p "$ROOT/build"
export AMENT_PREFIX_PATH=$VENV
export PATH=$VENV/bin:$PATH
cmake -S "$ROOT/src/sage_interfaces" -B "$BUILD" -G 'Unix Makefiles' \
  -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF \
  -DCMAKE_PREFIX_PATH="$VENV" -DCMAKE_INSTALL_PREFIX="$VENV" \
  -DPython3_EXECUTABLE="$PY" -DPYTHON_EXECUTABLE="$PY" >"$BUILD.configure.log" 2>&1 \
  || { mkdir -p "$(dirname "$BUILD")"; tail -40 "$BUILD.configure.log"; exit 1; }
cmake --build "$BUILD" -j"$(nproc)" >"$BUILD.build.log" 2>&1 || { tail -40 "$BUILD.build.log"; exit 1; }
cmake --install "$BUILD" >"$BUILD.install.log" 2>&1 || { tail -40 "$BUILD.install.log"; exit 1; }
echo "$sum" >"$stamp"
echo "sage_interfaces: built and installed into $VENV"
