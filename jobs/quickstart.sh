#!/usr/bin/env bash
# quickstart.sh — the main job for now: install what is missing, build, and run a small set of
# trials of the narrow net (20 x 50, leaky ReLU; an epoch costs ~0.05 ms) across initial gains,
# three seeds each, on all local cores, at the authors' gaps (input 1, target sqrt(0.5)).
# Each trial writes a netCDF file to results/quickstart/ (or $1); then analysis/ prints a table
# and plots measured vs fitted-theory curves. (`repsweep run jobs/quickstart.cfg`, the MPI
# sweep, replaces this script when it lands.)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$root/src/bootstrap.sh"
out=${1:-$root/results/quickstart}
mkdir -p "$out"

run_one() { # gain lr seed
  "$root/build/repsweep" trial --arch narrow --gain "$1" --lr "$2" --seed "$3" --epochs 6000 \
    --out "$out/narrow_gain$1_seed$3.nc" --json > "$out/narrow_gain$1_seed$3.json"
  echo "quickstart: gain $1 seed $3 done" >&2
}
export -f run_one
export root out
# Learning rates per gain from NOTES.md's measurements of the narrow net: the lr shrinks as
# the gain grows so that gradient descent stays smooth.
for gl in 0.8:0.02 1.05:0.005 1.2:0.0025 1.4:0.001 1.6:0.0003; do
  for seed in 0 1 2; do
    echo "${gl%%:*} ${gl##*:} $seed"
  done
done | xargs -P "$(nproc)" -n 3 bash -c 'run_one "$@"' _

cd "$root" && /usr/bin/python3 -m analysis trials "$out" --out "$out"
