"""``python3 -m analysis summary RESULTS.nc``: a plain-text table per architecture (one row
per gain) of a results file: trials ok / failed, the fitted rates and fit loss (mean ± sd),
and how well the final distance agrees with Eq. 10 (analysis/README.md)."""
import numpy as np

from . import measures
from .results import ResultsFileError, load, network_trials


def _mean_sd(v):
    v = v[np.isfinite(v)]
    if v.size == 0:
        return "-"
    sd = f"{v.std(ddof=1):.2e}" if v.size > 1 else "-"
    return f"{v.mean():.3e} ± {sd}"


def summary_lines(path):
    """The table as a list of lines. Columns per (architecture, gain):
    ran (trials in the file), ok (status 0), failed (status != 0: 1 diverged, 2 fit failed,
    < 0 could not run), conv (final loss < converge_loss), 1/tau_h and 1/tau_y per epoch
    and the relative fit loss as mean ± sd over the trials with a fit, own (the median
    relative error of Eq. 10 with each converged trial's own fitted rates, repsweep's
    dh2_predicted), avg (the same with the rates averaged over the fixed-gap trials, as in
    Fig. 5; measures.final_distance). Raises ValueError naming the file."""
    ds = load(path)
    t = network_trials(ds)
    fd = measures.final_distance(ds)
    by_group = {(g["arch"], g["gain"]): g for g in fd["groups"]}
    total = int(ds.attrs.get("trials_total", -1))
    done = int(ds.attrs.get("trials_done", -1))
    lines = [f"{ds.attrs['path']}: job '{ds.attrs.get('job_name', '?')}', {done} of {total} "
             f"trials in the file ({total - done} not run), {t.sizes['trial']} network "
             f"trials"]
    head = (f"{'arch':<14} {'gain':>6} {'ran':>4} {'ok':>4} {'failed':>6} {'conv':>4}  "
            f"{'1/tau_h':>20}  {'1/tau_y':>20}  {'fit_loss_rel':>20}  {'own':>6} {'avg':>6}")
    lines += [head, "-" * len(head)]
    status = t["status"].values
    conv = t["converged"].values == 1
    for arch, gain, g in measures._groups(t):
        fitted = g & np.isfinite(t["rate_h"].values)
        own = g & conv & np.isfinite(t["dh2_predicted"].values)
        err = measures.median_relative_error(t["dh2_predicted"].values[own],
                                             t["dh2_final"].values[own])
        grp = by_group[(arch, gain)]
        lines.append(
            f"{arch:<14} {gain:>6.3g} {int(g.sum()):>4} {int((g & (status == 0)).sum()):>4} "
            f"{int((g & (status != 0)).sum()):>6} {int((g & conv).sum()):>4}  "
            f"{_mean_sd(t['rate_h'].values[fitted]):>20}  "
            f"{_mean_sd(t['rate_y'].values[fitted]):>20}  "
            f"{_mean_sd(t['fit_loss_rel'].values[fitted]):>20}  "
            f"{err:>6.3f} {grp['median_rel_err']:>6.3f}")
    lines.append(f"own/avg: median |Eq. 10 - measured| / measured final dh2 over converged "
                 f"trials, with each trial's own fitted rates / with the rates averaged "
                 f"per arch x gain over the fixed-gap trials (Fig. 5; all: r = "
                 f"{fd['r']:.3f}, median rel. error {fd['median_rel_err']:.3f}, "
                 f"n = {fd['n_kept']})")
    try:
        th = load(path, theory=True)
        lines.append(f"theory-only trials: {th.sizes['trial']}")
    except ResultsFileError:  # no theory-only block
        pass
    return lines
