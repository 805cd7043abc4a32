#!/usr/bin/env bash
# Builds the x86 development image (docker/dev-x86.Dockerfile) without a Docker engine or an
# image registry: a Debian bookworm minbase root from apt's own mirror (debootstrap, cached in
# .cache/image/), imported into podman as the base, then `podman build --isolation chroot` and
# a smoke run with runc (crun fails here: "cgroups in hybrid mode not supported"). Docker
# format: OCI images drop the Dockerfile's SHELL (pipefail).
# Usage: scripts/image.sh [--run SECONDS]   (--run: also run the nano graph in the image)
# Environment: SAGE_IMAGE_TAG (default sage:dev-x86), SAGE_IMAGE_BASE (sage-base:bookworm).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TAG=${SAGE_IMAGE_TAG:-sage:dev-x86}
BASE=${SAGE_IMAGE_BASE:-sage-base:bookworm}
CACHE=$ROOT/.cache/image
ROOTFS=$CACHE/bookworm-minbase
RUN_S=
[[ ${1:-} == --run ]] && RUN_S=${2:?--run needs seconds}
log() { printf '[image] %s\n' "$*"; }
die() { printf 'ERROR: %s\n' "$*" >&2; exit 1; }

# 1. Tools (Debian packages; root or sudo).
SUDO=; [[ $(id -u) != 0 ]] && SUDO=sudo
need=()
for tool in podman runc debootstrap; do command -v "$tool" >/dev/null || need+=("$tool"); done
if (( ${#need[@]} )); then
  log "apt: installing ${need[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    "${need[@]}" >/dev/null
fi

# 2. podman here refuses setrlimit unless containers get no default ulimits.
CONF=/etc/containers/containers.conf
if ! grep -qs '^ *default_ulimits *= *\[ *\]' "$CONF"; then
  [[ -s $CONF ]] && die "$CONF exists without 'default_ulimits = []' under [containers]: add it"
  log "writing $CONF (default_ulimits = [])"
  printf '[containers]\ndefault_ulimits = []\n' | $SUDO tee "$CONF" >/dev/null
fi

# 3. The base: debootstrap from the Debian mirror apt uses (deb822 or one-line sources).
mirror() {
  local f
  for f in /etc/apt/sources.list.d/*.sources; do
    [[ -f $f ]] || continue
    awk '/^URIs:/ {u=$2} /^Suites:/ && / bookworm( |$)/ {print u; exit}' "$f"
  done
  grep -hs '^deb .* bookworm main' /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
    | awk '{print $2}' || true
}
if [[ ! -f $ROOTFS/.sage_complete ]]; then
  url=$(mirror | sed -n 1p)
  [[ -n $url ]] || die 'no Debian bookworm mirror found in /etc/apt/sources.list*'
  log "debootstrap bookworm minbase from $url"
  rm -rf "$ROOTFS"
  mkdir -p "$CACHE"
  $SUDO debootstrap --variant=minbase bookworm "$ROOTFS" "$url" >"$CACHE/debootstrap.log"
  touch "$ROOTFS/.sage_complete"
fi
if ! podman image exists "$BASE"; then
  log "podman import -> $BASE"
  $SUDO tar -C "$ROOTFS" --exclude=./.sage_complete -c . | podman import - "$BASE" >/dev/null
fi

# 4. The image. The host's local wheel folders (e.g. the CPU torch build) are lent to the
#    build read-only, with the pip settings that point at them, so it resolves like the host.
args=(--isolation chroot --format docker -f "$ROOT/docker/dev-x86.Dockerfile" -t "$TAG"
      --build-arg "BASE=localhost/$BASE")
for dir in /opt/wheels /opt/pypi /opt/pypi-more; do
  [[ -d $dir ]] && args+=(-v "$dir:$dir:ro")
done
# This machine's HTTPS goes through a proxy whose CA only the host's bundle holds.
cert=${PIP_CERT:-$(python3 -m pip config get global.cert 2>/dev/null || true)}
if [[ -n $cert && -f $cert ]]; then
  args+=(-v "$cert:/etc/ssl/sage-host-ca.crt:ro" --build-arg PIP_CERT=/etc/ssl/sage-host-ca.crt)
fi
links=$(python3 -m pip config get global.find-links 2>/dev/null || true)
extra=$(python3 -m pip config get global.extra-index-url 2>/dev/null || true)
[[ -n $links ]] && args+=(--build-arg "PIP_FIND_LINKS=$links")
[[ -n $extra ]] && args+=(--build-arg "PIP_EXTRA_INDEX_URL=$extra")
log "podman build $TAG"
t0=$SECONDS
podman build "${args[@]}" "$ROOT"
log "built $TAG in $((SECONDS - t0)) s; size $(podman image inspect "$TAG" --format '{{.Size}}') B"

# 5. Optional: the nano graph in the image (host network: the graph test reads it from here).
if [[ -n $RUN_S ]]; then
  podman --runtime runc run --rm --network host "$TAG" sage launch nano --duration "$RUN_S"
fi
