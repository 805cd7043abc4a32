#!/usr/bin/env bash
# The C++/CUDA mailbox: library, C++ tests and Python module (skips itself when up to date).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
bash "$ROOT/src/sage_cuda_mailbox/scripts/build.sh" "$1"
