#!/usr/bin/env bash
# Message packages SAGE reads from robot drivers that PyPI has no wheel of (src/compat: the
# audio_common_msgs of the microphone's audio_common backend), built into the venv with plain
# cmake as scripts/build_interfaces.sh builds sage_interfaces (whose step has fixed the wheels'
# Export.cmake files by now). colcon ignores src/compat: a robot uses its own packages.
# Skips a package whose files are unchanged since its last build.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
VENV=$(cd "${1:?usage: 05-compat-msgs.sh VENV}" && pwd)
PY=$VENV/bin/python
export AMENT_PREFIX_PATH=$VENV
export PATH=$VENV/bin:$PATH
for pkg in "$ROOT"/src/compat/*/; do
  name=$(basename "$pkg")
  build=$ROOT/build/compat/$name
  stamp=$VENV/.sage_compat_$name.sha
  sum=$(cd "$pkg" && cat CMakeLists.txt package.xml msg/*.msg | sha256sum | cut -d' ' -f1)
  if [[ -f $stamp && $(cat "$stamp") == "$sum" ]] && $PY -c "import $name.msg" 2>/dev/null; then
    echo "$name: up to date"
    continue
  fi
  mkdir -p "$build"
  cmake -S "$pkg" -B "$build" -G 'Unix Makefiles' \
    -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF \
    -DCMAKE_PREFIX_PATH="$VENV" -DCMAKE_INSTALL_PREFIX="$VENV" \
    -DPython3_EXECUTABLE="$PY" -DPYTHON_EXECUTABLE="$PY" >"$build.configure.log" 2>&1 \
    || { tail -40 "$build.configure.log"; exit 1; }
  cmake --build "$build" -j"$(nproc)" >"$build.build.log" 2>&1 || { tail -40 "$build.build.log"; exit 1; }
  cmake --install "$build" >"$build.install.log" 2>&1 || { tail -40 "$build.install.log"; exit 1; }
  echo "$sum" >"$stamp"
  echo "$name: built and installed into $VENV"
done
