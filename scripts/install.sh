#!/usr/bin/env bash
# Installs everything SAGE needs into .venv, idempotently (a second run with nothing changed
# takes seconds). Usage: scripts/install.sh [--with-postgres]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
VENV=${SAGE_VENV:-$ROOT/.venv}
PY=${PYTHON:-python3}
WITH_PG=0
[[ ${1:-} == --with-postgres ]] && WITH_PG=1
log() { printf '[install] %s\n' "$*"; }

# 1. Debian packages: espeak-ng (sample speech), PortAudio (microphone backend), cmake and g++
#    (sage_interfaces, the mailbox), googletest (mailbox C++ tests), PostgreSQL (store tests),
#    systemd (systemd-analyze verify of the service unit), iproute2 (network namespace test),
#    chromium (the live view's browser test, headless), graphviz (the README's graph picture),
#    openttd-opensfx and sound-theme-freedesktop (recordings for sage_eval's busy rooms, 10 MB).
apt_pkgs=(espeak-ng libportaudio2 libsndfile1 cmake g++ make sox libgtest-dev googletest
          systemd iproute2 chromium graphviz openttd-opensfx sound-theme-freedesktop)
(( WITH_PG )) && apt_pkgs+=(postgresql)
missing=()
for p in "${apt_pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if (( ${#missing[@]} )); then
  log "apt: installing ${missing[*]}"
  SUDO=; [[ $(id -u) != 0 ]] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
fi

# 2. The venv.
if [[ ! -x $VENV/bin/python ]]; then
  "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
    || { echo "ERROR: Python >= 3.10 needed ($PY is $("$PY" -V))"; exit 1; }
  log "creating $VENV"
  "$PY" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check -q)
# Hide pip's notes about index folders this machine's pip.conf names but does not have.
pip_install() { "${PIP[@]}" install "$@" 2> >(grep -v 'is ignored: it is neither' >&2); }

# 3. Python packages, pinned by constraints.txt; skipped when nothing changed.
req_sum=$(cat "$ROOT"/requirements/*.txt "$ROOT/constraints.txt" | sha256sum | cut -d' ' -f1)
req_stamp=$VENV/.sage_requirements.sha
if [[ ! -f $req_stamp || $(cat "$req_stamp") != "$req_sum" ]]; then
  log 'pip: ROS 2 wheels'
  pip_install -c "$ROOT/constraints.txt" -r "$ROOT/requirements/ros.txt"
  log 'pip: torch (CPU build) before anything that depends on it'
  pip_install -r "$ROOT/requirements/torch.txt"
  log 'pip: runtime, ML and tooling packages'
  pip_install -c "$ROOT/constraints.txt" -r "$ROOT/requirements/main.txt"
  log 'pip: data-only wheels, without their dependencies'
  pip_install --no-deps -c "$ROOT/constraints.txt" -r "$ROOT/requirements/nodeps.txt"
  echo "$req_sum" >"$req_stamp"
else
  log 'pip: requirements up to date'
fi

# 4. sage_interfaces (rosidl, plain cmake) into the venv.
bash "$ROOT/scripts/build_interfaces.sh" "$VENV"

# 5. The SAGE Python packages, editable.
proj_sum=$(cat "$ROOT/pyproject.toml" | sha256sum | cut -d' ' -f1)
proj_stamp=$VENV/.sage_project.sha
if [[ ! -f $proj_stamp || $(cat "$proj_stamp") != "$proj_sum" ]] \
    || ! "$VENV/bin/python" -c 'import sage.cli' 2>/dev/null; then
  log 'pip: SAGE packages (editable)'
  pip_install --no-deps --no-build-isolation -e "$ROOT"
  echo "$proj_sum" >"$proj_stamp"
fi

# 6. Package-specific build and data steps (each skips itself when up to date).
for step in "$ROOT"/scripts/install.d/*.sh; do
  [[ -e $step ]] || continue
  log "step $(basename "$step")"
  bash "$step" "$VENV"
done
log "done: $VENV"
