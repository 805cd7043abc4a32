#!/usr/bin/env bash
# Build sage_cuda_mailbox (library, C++ tests, Python module) and make
# `import sage_cuda_mailbox` work in VENV (symlink VENV/.../site-packages/sage_cuda_mailbox ->
# src/sage_cuda_mailbox/sage_cuda_mailbox). Idempotent: a second run with unchanged sources
# only checks the import.
#
#   src/sage_cuda_mailbox/scripts/build.sh VENV
#
# Environment: SAGE_MAILBOX_CUDA=AUTO|ON|OFF (nvcc for the .cu sources; default AUTO),
#              SAGE_MAILBOX_BUILD_DIR (default <repo>/build/sage_cuda_mailbox),
#              SAGE_MAILBOX_JOBS (default: number of cores).
set -euo pipefail
VENV=${1:?usage: build.sh VENV}
VENV=$(cd "$VENV" && pwd)
PKG=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ROOT=$(cd "$PKG/../.." && pwd)
BUILD=${SAGE_MAILBOX_BUILD_DIR:-$ROOT/build/sage_cuda_mailbox}
PY=$VENV/bin/python
CUDA=${SAGE_MAILBOX_CUDA:-AUTO}
JOBS=${SAGE_MAILBOX_JOBS:-$(nproc)}

pybind11_dir=$("$PY" -m pybind11 --cmakedir)
site=$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
link=$site/sage_cuda_mailbox

# Fingerprint of everything that affects the build.
sum=$( { cd "$PKG" && find CMakeLists.txt include src test/cpp scripts/build.sh -type f \
           -not -name '*.pyc' | LC_ALL=C sort | xargs sha256sum;
         echo "$PY $CUDA $pybind11_dir"; } | sha256sum | cut -d' ' -f1)
stamp=$BUILD/.sage_sources.sha
module=$(ls "$PKG"/sage_cuda_mailbox/_mailbox*.so 2>/dev/null | head -n1 || true)
if [[ -f $stamp && $(cat "$stamp") == "$sum" && -n $module && -L $link ]] \
   && (cd / && "$PY" -c 'import sage_cuda_mailbox' 2>/dev/null); then
  echo "sage_cuda_mailbox: up to date"
  exit 0
fi

mkdir -p "$BUILD"
cmake -S "$PKG" -B "$BUILD" -G 'Unix Makefiles' \
  -DCMAKE_BUILD_TYPE=Release \
  -DSAGE_MAILBOX_USE_AMENT=OFF \
  -DSAGE_MAILBOX_CUDA="$CUDA" \
  -DSAGE_MAILBOX_PYTHON=ON \
  -DSAGE_MAILBOX_PYTHON_INPLACE=ON \
  -DBUILD_TESTING=ON \
  -DPython3_EXECUTABLE="$PY" -DPython_EXECUTABLE="$PY" \
  -Dpybind11_DIR="$pybind11_dir" >"$BUILD/configure.log" 2>&1 \
  || { tail -40 "$BUILD/configure.log"; echo "sage_cuda_mailbox: configure failed" >&2; exit 1; }
nice -n 5 cmake --build "$BUILD" -j"$JOBS" >"$BUILD/build.log" 2>&1 \
  || { grep -E 'error|Error' -A3 "$BUILD/build.log" | head -60; \
       echo "sage_cuda_mailbox: build failed (log: $BUILD/build.log)" >&2; exit 1; }

# The compiled module sits next to the facade (POST_BUILD copy); a symlink in the venv's
# site-packages makes the package importable, like an editable install of this one package.
if [[ -e $link && ! -L $link ]]; then
  echo "sage_cuda_mailbox: replacing the installed copy $link with a link to the sources"
  rm -rf "$link"
fi
ln -sfn "$PKG/sage_cuda_mailbox" "$link"
rm -f "$site/sage_cuda_mailbox.pth"  # left by earlier versions of this script
(cd / && "$PY" -c 'import sage_cuda_mailbox as m; print("sage_cuda_mailbox: import ok, cuda:",
  m.cuda_available(), "| device code built:", m.cuda_device_code_built())')
echo "$sum" >"$stamp"
grep -E 'sage_cuda_mailbox: (CUDA|Python|rclcpp)' "$BUILD/configure.log" | sed 's/^-- //'
echo "sage_cuda_mailbox: built in $BUILD"
