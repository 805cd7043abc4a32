#!/usr/bin/env bash
# The README's test command: installs what is missing (PostgreSQL included), starts a
# throwaway PostgreSQL on loopback for the store tests, runs the C++ and Python test suites.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
bash scripts/install.sh --with-postgres
VENV=${SAGE_VENV:-$ROOT/.venv}

# In CI (CI=true) the PostgreSQL store tests and the CUDA compile check must run: a server
# that cannot start, or a missing nvcc, fails the run instead of skipping.
REQUIRE=0
[[ ${CI:-} == true || ${CI:-} == 1 ]] && REQUIRE=1
if url=$(bash scripts/pg_test_server.sh); then
  export SAGE_TEST_PG_URL=$url
  echo "[test] PostgreSQL test server: $url"
elif (( REQUIRE )); then
  echo "[test] ERROR: could not start PostgreSQL; the PostgreSQL store tests cannot run" >&2
  exit 1
else
  echo "[test] WARNING: could not start PostgreSQL; PostgreSQL store tests will skip"
fi
export SAGE_REQUIRE_PG=$REQUIRE

# Each pytest worker has its own block of DDS domains (root conftest.py); where a run's
# per-test domains start inside it differs between runs.
export SAGE_TEST_DOMAIN_SEED=${SAGE_TEST_DOMAIN_SEED:-$RANDOM}
# Three workers, one test file at a time each (module fixtures are made once); files go out
# heaviest first (conftest.py, test_weights.json), so all end together. Many graph tests wait
# on the graph more than they compute (with two, a quarter of the cores' time was idle), so a
# third fills the cores: the parallel stage took 615 s at 517d800, 718 s with two at 4c6ecc5
# (the same parallel tests). The tests whose verdict depends on the graph keeping up (live vs
# offline decisions) run alone below.
WORKERS=${SAGE_TEST_WORKERS:-3}
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
export HF_HUB_OFFLINE=1
# The suite starts hundreds of Python processes (nodes, CLI commands, workers), each importing
# the sage packages: with bytecode writes off (some images set this) every one compiles them
# from source again. Written once into src/**/__pycache__ (git-ignored), they load compiled.
unset PYTHONDONTWRITEBYTECODE

# Each stage's header says when it began (seconds since this script started).
stage() { echo "[test] [${SECONDS} s] $*"; }

status=0
if [[ -f src/sage_cuda_mailbox/scripts/ctest.sh ]]; then
  stage "C++ tests (ctest)"
  bash src/sage_cuda_mailbox/scripts/ctest.sh "$VENV" || status=1
fi
if [[ -f src/sage_cuda_mailbox/scripts/check_nvcc.sh ]]; then
  SAGE_REQUIRE_NVCC=$REQUIRE bash src/sage_cuda_mailbox/scripts/check_nvcc.sh || status=1
fi
stage "lint (ruff check src: the rules in pyproject.toml)"
"$VENV/bin/ruff" check src || status=1
stage "types (mypy: sage_common and the *_core modules; files and settings in pyproject.toml)"
"$VENV/bin/mypy" || status=1
stage "import contract (lint-imports: layers, no cycles; pyproject.toml)"
"$VENV/bin/lint-imports" --no-cache || status=1
stage "compatibility: Python 3.10 code, Jetson image pins resolve (check_compat.sh)"
bash scripts/check_compat.sh "$VENV" || status=1
stage "Dockerfile lint (hadolint; inline ignores give their reason)"
"$VENV/bin/hadolint" docker/*.Dockerfile || status=1
stage "Python tests (pytest)"
# The JUnit XML (test-artifacts/) is what scripts/test_weights.py reads to refresh the order.
mkdir -p test-artifacts
"$VENV/bin/python" -m pytest src -n "$WORKERS" --dist loadfile --no-loadscope-reorder \
  -m 'not alone' --junitxml=test-artifacts/junit.xml "$@" || status=$?
# Tests that compare two graphs' timing-dependent decisions (which frames a lagging encoder
# drops, which IMU samples SNARC has heard when a frame arrives) measure the graphs, not the
# file that happens to run beside them: they run last, one at a time (exit 5: none selected).
stage "Python tests that need the cores to themselves (pytest -m alone)"
# Only the files that mark tests alone are collected (collecting all of src costs ~9 s); with
# arguments, pytest gets them as given.
rc=0
if (( $# )); then
  alone=(src)
else
  mapfile -t alone < <(grep -rlE --include='test_*.py' 'pytest\.mark\.alone' src | sort)
fi
(( ${#alone[@]} )) && { "$VENV/bin/python" -m pytest "${alone[@]}" -p no:xdist -m alone "$@" || rc=$?; }
(( rc == 0 || rc == 5 )) || status=$rc
stage "done (exit $status)"
exit $status
