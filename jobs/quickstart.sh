#!/usr/bin/env bash
# quickstart.sh — the README's main job: install what is missing, build, run the sweeps
# jobs/quickstart.cfg (the narrow net over five gains x three target gaps, lazy vs rich, plus a
# small theory-only block) and jobs/quickstart-depth.cfg (two gains with every layer fitted)
# on all local cores with MPI, and make every figure and the summary table (analysis/README.md
# defines them):
#   results/quickstart.nc, results/quickstart-depth.nc   the sweeps' results (repsweep run)
#   results/summary.txt                                  `analysis summary` of quickstart.nc
#   results/fig_dynamics.png/.pdf        dh2, dyhat2, w, loss against epochs vs the fitted theory
#   results/fig_final_distance.png/.pdf  final dh2 against Eq. 10 with averaged rates (Fig. 5)
#   results/fig_phase_diagram.png/.pdf   lazy/rich order parameter over gain x target gap
#   results/fig_fit_quality.png/.pdf     relative fit loss per gain
#   results/fig_depth.png/.pdf           fit loss and rates against the observed stage (Fig. 10)
# Rerunning resumes (finished trials are kept); delete results/ to start over.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$root/src/bootstrap.sh"
out=${1:-$root/results}
mkdir -p "$out"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
# one BLAS thread per rank (what `run` uses by default); without this OpenBLAS starts a thread
# per core in every rank when it loads, before `--threads` can say otherwise
export OPENBLAS_NUM_THREADS=1

# rank 0 schedules and writes; one worker rank per core
ranks=$(( $(nproc) + 1 ))
for job in quickstart quickstart-depth; do
  mpirun -n "$ranks" "$root/build/repsweep" run "$root/jobs/$job.cfg" \
    --out "$out/$job.nc" --progress 5
done

cd "$root"
/usr/bin/python3 -m analysis summary "$out/quickstart.nc" | tee "$out/summary.txt"
/usr/bin/python3 -m analysis figures "$out/quickstart.nc" --out "$out" \
  --only dynamics final_distance phase_diagram fit_quality
/usr/bin/python3 -m analysis figures "$out/quickstart-depth.nc" --out "$out" --only depth
