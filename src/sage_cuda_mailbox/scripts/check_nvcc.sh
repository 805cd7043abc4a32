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
exit $status
