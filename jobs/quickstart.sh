#!/usr/bin/env bash
# quickstart.sh — the README's main job: install what is missing, build, run the sweep
# jobs/quickstart.cfg (the narrow net over five gains x three seeds, lazy vs rich, plus a small
# theory-only block) on all local cores with MPI, and make its figures.
#   results/quickstart.nc                      the sweep's results (repsweep run)
#   results/sweep_final_distance.png/.pdf      final dh2 against gain: measured vs Eq. 10
#   results/trials/trials_dynamics.png/.pdf    dh2, dyhat2, w against epochs vs the fitted ODE
# Rerunning resumes (finished trials are kept); delete results/ to start over.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$root/src/bootstrap.sh"
out=${1:-$root/results}
mkdir -p "$out/trials"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1

# rank 0 schedules and writes; one worker rank per core
ranks=$(( $(nproc) + 1 ))
mpirun -n "$ranks" "$root/build/repsweep" run "$root/jobs/quickstart.cfg" \
  --out "$out/quickstart.nc" --progress 5

# Per-trial files with the fitted theory's curves, for the dynamics figure (the same trials:
# a trial depends only on its coordinates, so these equal the sweep's).
run_one() { # gain lr seed
  "$root/build/repsweep" trial --arch narrow --gain "$1" --lr "$2" --seed "$3" --epochs 6000 \
    --out "$out/trials/narrow_gain$1_seed$3.nc" --json > /dev/null
}
export -f run_one
export root out
for gl in 0.8:0.02 1.05:0.005 1.2:0.0025 1.4:0.001 1.6:0.0003; do
  echo "${gl%%:*} ${gl##*:} 0"
done | xargs -P "$(nproc)" -n 3 bash -c 'run_one "$@"' _

cd "$root"
/usr/bin/python3 -m analysis sweep "$out/quickstart.nc" --out "$out"
/usr/bin/python3 -m analysis trials "$out/trials" --out "$out/trials"
