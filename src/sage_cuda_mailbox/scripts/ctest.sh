#!/usr/bin/env bash
# Run the C++ tests (ctest) of an existing build. Extra arguments go to ctest
# (e.g. -L stress, -LE stress).
set -euo pipefail
PKG=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ROOT=$(cd "$PKG/../.." && pwd)
BUILD=${SAGE_MAILBOX_BUILD_DIR:-$ROOT/build/sage_cuda_mailbox}
if [[ ! -f $BUILD/CTestTestfile.cmake ]]; then
  echo "no build in $BUILD: run src/sage_cuda_mailbox/scripts/build.sh VENV first" >&2
  exit 1
fi
cd "$BUILD"
exec ctest --output-on-failure "$@"
