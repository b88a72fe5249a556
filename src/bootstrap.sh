#!/usr/bin/env bash
# bootstrap.sh — install what repsweep needs on Debian 12 (only what is missing) and build it
# in build/ (Release). Idempotent: a second run only rebuilds what changed.
#   bash src/bootstrap.sh             build dependencies and Python for analysis/
#   bash src/bootstrap.sh --tests     also the test-only dependencies (python3-torch, oracle;
#                                     slurm-wlm and munge for the SLURM clusters of tests/slurm,
#                                     whose daemons the tests start and stop; iproute2 for the
#                                     three-node one's network namespaces)
#   bash src/bootstrap.sh --ci-portability   only install what CI's extra builds need (clang,
#                                     BLIS, the aarch64 cross toolchain, qemu-user and arm64
#                                     OpenBLAS/GSL/libconfig/zlib; .ci/portability) and stop
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

pkgs=(cmake make gcc pkg-config libopenblas-pthread-dev libgsl-dev libnetcdf-dev netcdf-bin
      libconfig-dev zlib1g-dev openmpi-bin libopenmpi-dev python3 python3-numpy python3-xarray
      python3-netcdf4 python3-matplotlib python3-scipy)
if [[ "${1:-}" == "--tests" ]]; then
  pkgs+=(python3-pytest python3-torch slurm-wlm munge iproute2 udunits-bin nco cdo)
fi
if [[ "${1:-}" == "--ci-portability" ]]; then
  # amd64: clang with its OpenMP, BLIS, help2man; arm64 (multiarch) only Multi-Arch: same
  # packages: Debian 12's libgsl-dev, libnetcdf-dev and libopenmpi-dev for arm64 would
  # replace the amd64 ones, so the cross build uses the arm64 runtime libgsl27 instead and
  # leaves netCDF and MPI out (.ci/cross-aarch64). apt-get --no-remove: never remove anything.
  pkgs=(clang libomp-dev libblis-dev help2man file gcc-aarch64-linux-gnu libc6-dev-arm64-cross
        qemu-user)
  arm64=(libopenblas-pthread-dev:arm64 libgsl27:arm64 libconfig-dev:arm64 zlib1g-dev:arm64
         libgomp1:arm64 libc6:arm64)
  sudo_cmd=()
  [[ $(id -u) -eq 0 ]] || sudo_cmd=(sudo)
  dpkg --print-foreign-architectures | grep -qx arm64 || "${sudo_cmd[@]}" dpkg --add-architecture arm64
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends \
    --no-remove -o DPkg::Lock::Timeout=600 "${pkgs[@]}" "${arm64[@]}" >/dev/null
  echo "bootstrap: CI portability packages installed" >&2
  exit 0
fi

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "bootstrap: installing ${missing[*]}" >&2
  sudo_cmd=()
  [[ $(id -u) -eq 0 ]] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
fi

cmake -S "$root" -B "$root/build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$root/build" -j"$(nproc)" 2>&1 | grep -Ev '^\[ *[0-9]+%\]|^Consolidate|^$' >&2 || true
test -x "$root/build/repsweep" || { echo "bootstrap: build failed" >&2; exit 1; }
echo "bootstrap: built $root/build/repsweep" >&2
