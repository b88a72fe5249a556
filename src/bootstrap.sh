#!/usr/bin/env bash
# bootstrap.sh — install what repsweep needs on Debian 12 (only what is missing) and build it
# in build/ (Release). Idempotent: a second run only rebuilds what changed.
#   bash src/bootstrap.sh             build dependencies and Python for analysis/
#   bash src/bootstrap.sh --tests     also the test-only dependencies (python3-torch, oracle;
#                                     slurm-wlm and munge for the one-machine SLURM cluster of
#                                     tests/slurm, whose daemons the tests start and stop)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

pkgs=(cmake make gcc pkg-config libopenblas-pthread-dev libgsl-dev libnetcdf-dev netcdf-bin
      libconfig-dev zlib1g-dev openmpi-bin libopenmpi-dev python3 python3-numpy python3-xarray
      python3-netcdf4 python3-matplotlib python3-scipy)
if [[ "${1:-}" == "--tests" ]]; then
  pkgs+=(python3-pytest python3-torch slurm-wlm munge)
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
