#!/usr/bin/env bash
# Compile every .cu source of sage_cuda_mailbox with nvcc -c (no GPU needed: compile only).
# Usage: check_nvcc.sh [--require]
# Without nvcc it exits 0 with a message (the CPU build does not need CUDA), unless --require
# (or SAGE_REQUIRE_NVCC=1) asks for the compile: then a missing nvcc fails loudly (exit 1).
set -euo pipefail
REQUIRE=${SAGE_REQUIRE_NVCC:-0}
[[ ${1:-} == --require ]] && REQUIRE=1
PKG=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
NVCC=${NVCC:-$(command -v nvcc || true)}
if [[ -z $NVCC && -x /usr/local/cuda/bin/nvcc ]]; then
  NVCC=/usr/local/cuda/bin/nvcc
fi
if [[ -z $NVCC ]]; then
  if [[ $REQUIRE == 1 ]]; then
    echo "check_nvcc: ERROR: asked to compile the CUDA sources but nvcc was not found" \
         "(PATH, /usr/local/cuda/bin, or NVCC=...)" >&2
    exit 1
  fi
  echo "check_nvcc: nvcc not found; CUDA sources not compiled (the CPU build does not need them)"
  exit 0
fi
ncu=$(find "$PKG/src" "$PKG/test" -name '*.cu' | wc -l)
if [[ $ncu == 0 ]]; then
  echo "check_nvcc: ERROR: no .cu sources found under $PKG: nothing was compiled" >&2
  exit 1
fi
# Jetson Orin is sm_87; Jetson Thor (CUDA 13) is sm_110. Use what this nvcc knows.
archs=(87)
if "$NVCC" --list-gpu-arch 2>/dev/null | grep -qx 'compute_110'; then
  archs+=(110)
fi
gencode=()
for a in "${archs[@]}"; do
  gencode+=("-gencode=arch=compute_$a,code=sm_$a")
done
# A compile is a function of the sources, the headers, this script and the nvcc: when none has
# changed since the last run that compiled everything cleanly, it is not repeated (a fresh
# clone always compiles; SAGE_NVCC_FORCE=1 compiles anyway).
ROOT=$(cd "$PKG/../.." && pwd)
STAMP=${SAGE_NVCC_STAMP:-$ROOT/build/sage_cuda_mailbox/nvcc-check.stamp}
digest=$( { "$NVCC" --version; printf '%s\n' "${archs[@]}"; cat "${BASH_SOURCE[0]}";
            find "$PKG/src" "$PKG/test" "$PKG/include" -type f \
              \( -name '*.cu' -o -name '*.cuh' -o -name '*.h' -o -name '*.hpp' -o -name '*.cpp' \) \
              -print0 | sort -z | xargs -0 sha256sum; } | sha256sum | cut -d' ' -f1)
if [[ ${SAGE_NVCC_FORCE:-0} != 1 && -f $STAMP && $(cat "$STAMP") == "$digest" ]]; then
  echo "check_nvcc: ok   $ncu .cu sources unchanged since they last compiled cleanly" \
       "(same sources, headers and nvcc: $STAMP)"
  exit 0
fi
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
status=0
while IFS= read -r -d '' cu; do
  rel=${cu#"$PKG"/}
  if "$NVCC" -std=c++17 "${gencode[@]}" -Xcompiler -Wall -I"$PKG/include" -I"$PKG/test/cpp" \
       -c "$cu" -o "$out/$(basename "$cu").o"; then
    echo "check_nvcc: ok   $rel (sm_${archs[*]})"
  else
    echo "check_nvcc: FAIL $rel" >&2
    status=1
  fi
done < <(find "$PKG/src" "$PKG/test" -name '*.cu' -print0 | sort -z)
"$NVCC" --version | tail -n1
if [[ $status == 0 ]]; then
  mkdir -p "$(dirname "$STAMP")" && echo "$digest" > "$STAMP"
else
  rm -f "$STAMP"
fi
exit $status
