"""The numbers behind the figures, from the labelled Dataset of :func:`analysis.load`:
the final-distance comparison (Fig. 5), the lazy/rich phase diagram, the depth study
(Fig. 10) and the fit quality per architecture and gain. Plotting lives in figures.py;
analysis/README.md states every definition and rule used here.

Grouping: the paper fixes one gain per architecture (Table 1); a job may vary it, and the
fitted rates depend on it (they are per epoch and include the learning rate, which a job
sets per gain), so the "architecture" of the paper's protocols is here a pair
(architecture, gain)."""
import warnings

import numpy as np
import xarray as xr

from .results import (REF_INPUT_GAP, REF_TARGET_GAP, ResultsFileError, network_trials,
                      unstack)
from .theory import fixed_point, median_relative_error, order_parameter, pearson_r

# The authors' rule for the trials whose rates are averaged (NOTES.md): final loss < 1e-2.
RATE_FIT_LOSS = 1e-2
CALIBRATION_RULE = (f"rates averaged over the trials at the reference gaps with status ok, "
                    f"both rates fitted and final loss < {RATE_FIT_LOSS:g}")
EXCLUSION_RULE = ("compared: trials that converged (final loss < the job's converge_loss, "
                  "variable `converged`); diverged or not run = failed")

STATUS_OK, STATUS_DIVERGED, STATUS_FIT_FAILED = 0, 1, 2

# A fitted rate at or below this sits at the fit's floor (1e-12 per epoch, fit.h).
RATE_FLOOR_MAX = 1e-11
# The top of the fit's starting scan (10^log10_rate_max, fit.h): a rate above it was not
# bounded by the data (repsweep trial's rate_*_determination says `unbounded_above`).
RATE_SCAN_MAX = 1e2
# Spread bands (quartiles) are drawn only over at least this many seeds.
SPREAD_MIN_SEEDS = 5


def rates_undetermined(t):
    """Per trial of a flat trial Dataset: True where a fitted rate is not determined by the
    data. With the fit diagnostics in the file (``rates_determined``, once the record
    schema carries them), that; otherwise the proxy the record allows: a rate at its floor
    (``fit_rate_at_floor``) or above the fit's scan range (RATE_SCAN_MAX), where repsweep's
    determination is `at_floor` / `unbounded_above`. (It misses the `unbounded_below` and
    `uncertain` cases, which need the diagnostics.)"""
    if "rates_determined" in t:
        return t["rates_determined"].values != 1
    rh, ry = t["rate_h"].values, t["rate_y"].values
    with np.errstate(invalid="ignore"):
        return (t["fit_rate_at_floor"].values == 1) | (rh > RATE_SCAN_MAX) | (ry > RATE_SCAN_MAX)


def curve_r2(t):
    """Per trial of a flat trial Dataset with trajectories and theory curves: the R^2 of the
    fitted theory for dh2, dyhat2 and w (1 - RSS / the curve's sum of squares about its
    mean, over the recorded epochs), as a dict of arrays (NaN without curves). repsweep
    computes the same over every epoch (r2_* in `repsweep trial --json`); the file's
    trajectories are every record.trajectory_stride-th epoch, so the values differ a little."""
    out = {}
    for name in ("dh2", "dyhat2", "w"):
        if f"{name}_traj" not in t or f"{name}_theory_traj" not in t:
            out[name] = np.full(t.sizes["trial"], np.nan)
            continue
        d = t[f"{name}_traj"].values
        m = t[f"{name}_theory_traj"].values
        with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            ok = np.isfinite(d) & np.isfinite(m)
            dd = np.where(ok, d, np.nan)
            ss = np.nansum((dd - np.nanmean(dd, axis=1, keepdims=True)) ** 2, axis=1)
            rss = np.nansum(np.where(ok, (d - m) ** 2, np.nan), axis=1)
            out[name] = np.where((ss > 0) & ok.any(axis=1), 1 - rss / ss, np.nan)
    return out


POOR_R2 = 0.5  # a curve the fitted theory explains less than half of


def bootstrap_ci(stat, *samples, n_boot=2000, level=0.95, seed=0):
    """Percentile bootstrap confidence interval of stat(*samples) over the trials (the
    samples are paired, resampled together); (nan, nan) for fewer than 3 trials. Seeded:
    the same data give the same interval."""
    arrays = [np.asarray(a, dtype=float) for a in samples]
    n = arrays[0].size
    if n < 3:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    vals = []
    for _ in range(n_boot):
        idx = rng.integers(0, n, n)
        v = stat(*[a[idx] for a in arrays])
        if np.isfinite(v):
            vals.append(v)
    if not vals:
        return float("nan"), float("nan")
    lo, hi = np.quantile(vals, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def spearman_r(x, y):
    """Spearman's rank correlation (Pearson's r of the ranks, ties averaged)."""
    from scipy.stats import rankdata
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.size < 2:
        return float("nan")
    return pearson_r(rankdata(x), rankdata(y))


def correlation_stats(predicted, measured, log):
    """The headline numbers of a predicted-vs-measured comparison, each with a bootstrap
    95 % CI: Pearson r (of log10 values when ``log``: what a log-log plot shows), Spearman
    rho, the median relative error; and n."""
    p, m = np.asarray(predicted, dtype=float), np.asarray(measured, dtype=float)
    if log:
        ok = (p > 0) & (m > 0)
        pr = lambda a, b: pearson_r(np.log10(a), np.log10(b))
    else:
        ok = np.isfinite(p) & np.isfinite(m)
        pr = pearson_r
    p, m = p[ok], m[ok]
    return dict(n=int(p.size), log=bool(log),
                r=pr(p, m), r_ci=bootstrap_ci(pr, p, m),
                rho=spearman_r(p, m), rho_ci=bootstrap_ci(spearman_r, p, m),
                median_rel_err=median_relative_error(p, m),
                median_rel_err_ci=bootstrap_ci(median_relative_error, p, m))


def _close(a, b):
    return np.isclose(np.asarray(a, dtype=float), b, rtol=1e-9, atol=1e-12)


def _groups(t):
    """Sorted unique (arch, gain) pairs of a flat trial Dataset and, per pair, a mask."""
    arch = t["arch"].values.astype(str)
    gain = t["gain"].values.astype(float)
    keys = sorted(set(zip(arch.tolist(), gain.tolist())))
    return [(a, g, (arch == a) & (gain == g)) for a, g in keys]


def final_distance(ds, ref_input_gap=REF_INPUT_GAP, ref_target_gap=REF_TARGET_GAP):
    """Fig. 5's comparison: measured final dh2 against Eq. 10 with averaged rates.

    Per (architecture, gain): the *calibration* trials are those at the reference gaps
    (input ``ref_input_gap``, target ``ref_target_gap``) with status ok, finite fitted
    rates and final loss < RATE_FIT_LOSS (the authors' rule); 1/tau_h and 1/tau_y are each
    averaged over them (arithmetic mean). The *compared* trials are the group's trials at
    other gaps, or, if the group has none, the calibration-gap trials themselves (then the
    comparison is in-sample; ``in_sample`` says so). Each compared trial's prediction is
    Eq. 10 with the averaged rates and its own gaps and measured epoch-0 dh2 and dyhat2.
    A compared trial is kept iff it converged (``converged`` = final loss < the job's
    converge_loss, 1e-3 by default, the authors' threshold) and its group has calibration
    trials; otherwise it is counted as failed (diverged / could not run), not converged, or
    without rates.

    Returns a dict: ``trials`` (per compared trial: arch, gain, input_gap, target_gap,
    seed, measured, predicted, kept, reason), ``groups`` (per group: arch, gain, n_calib,
    rate_h, rate_y, rate_h_sd, rate_y_sd, in_sample, n_compared, n_kept, n_failed,
    n_not_converged, n_no_rates, r, median_rel_err), and over all kept trials ``r``
    (Pearson, of predicted vs measured, linear values), ``median_rel_err``
    (median |predicted - measured| / measured), ``n_kept``, ``n_failed``,
    ``n_not_converged``, ``n_no_rates``."""
    t = network_trials(ds)
    status = t["status"].values
    conv = t["converged"].values == 1
    at_ref = _close(t["input_gap"].values, ref_input_gap) & \
        _close(t["target_gap"].values, ref_target_gap)
    rate_h, rate_y = t["rate_h"].values, t["rate_y"].values
    calib_ok = at_ref & (status == STATUS_OK) & np.isfinite(rate_h) & np.isfinite(rate_y) & \
        (t["loss_final"].values < RATE_FIT_LOSS)
    rows = {k: [] for k in ("arch", "gain", "input_gap", "target_gap", "seed", "measured",
                            "predicted", "kept", "reason")}
    groups = []
    for arch, gain, g in _groups(t):
        calib = g & calib_ok
        n_calib = int(calib.sum())
        rh = float(rate_h[calib].mean()) if n_calib else np.nan
        ry = float(rate_y[calib].mean()) if n_calib else np.nan
        other = g & ~at_ref
        in_sample = not other.any()
        compared = np.flatnonzero(g & at_ref if in_sample else other)
        _, _, pred = fixed_point(rh, ry, t["input_gap"].values[compared],
                                 t["target_gap"].values[compared],
                                 t["dh2_initial"].values[compared],
                                 t["dyhat2_initial"].values[compared])
        meas = t["dh2_final"].values[compared]
        failed = (status[compared] == STATUS_DIVERGED) | (status[compared] < 0)
        reason = np.where(failed, "failed",
                          np.where(~conv[compared], "not converged",
                                   "no rates" if n_calib == 0 else ""))
        reason = np.where((reason == "") & ~(np.isfinite(meas) & np.isfinite(pred)),
                          "not finite", reason)
        kept = reason == ""
        for name, col in (("arch", t["arch"].values), ("gain", t["gain"].values),
                          ("input_gap", t["input_gap"].values),
                          ("target_gap", t["target_gap"].values), ("seed", t["seed"].values)):
            rows[name].extend(np.asarray(col)[compared].tolist())
        rows["measured"].extend(meas.tolist())
        rows["predicted"].extend(pred.tolist())
        rows["kept"].extend(kept.tolist())
        rows["reason"].extend(reason.tolist())
        groups.append(dict(
            arch=arch, gain=gain, n_calib=n_calib, rate_h=rh, rate_y=ry,
            rate_h_sd=float(rate_h[calib].std(ddof=1)) if n_calib > 1 else np.nan,
            rate_y_sd=float(rate_y[calib].std(ddof=1)) if n_calib > 1 else np.nan,
            in_sample=in_sample, n_compared=len(compared), n_kept=int(kept.sum()),
            n_failed=int((reason == "failed").sum()),
            n_not_converged=int((reason == "not converged").sum()),
            n_no_rates=int((reason == "no rates").sum()),
            r=pearson_r(pred[kept], meas[kept]),
            median_rel_err=median_relative_error(pred[kept], meas[kept])))
    trials = {k: np.asarray(v) for k, v in rows.items()}
    kept = trials["kept"].astype(bool) if len(trials["kept"]) else np.zeros(0, bool)
    trials["kept"] = kept
    return dict(
        trials=trials, groups=groups,
        r=pearson_r(trials["predicted"][kept], trials["measured"][kept]),
        median_rel_err=median_relative_error(trials["predicted"][kept],
                                             trials["measured"][kept]),
        n_kept=int(kept.sum()),
        n_failed=int((trials["reason"] == "failed").sum()),
        n_not_converged=int((trials["reason"] == "not converged").sum()),
        n_no_rates=int((trials["reason"] == "no rates").sum()),
        n_not_finite=int((trials["reason"] == "not finite").sum()),
        ref=(ref_input_gap, ref_target_gap))


def _samples(ds):
    """The N-D Dataset with its repetitions (seed, and block if present) as ``sample``."""
    if "block" in ds.dims:
        return ds.stack(sample=("block", "seed"))
    return ds.rename({"seed": "sample"})


def phase(ds):
    """The lazy/rich phase diagram over (arch, input_gap, gain, target_gap).

    Per trial, ``q`` = clip(A_high / dh2_final, 0, 1) (theory.order_parameter: the
    initialisation's share of the final distance; 1 lazy, 0 rich), for trials that
    converged and have a fit (finite A_high; A_high is Eq. 11 with the trial's own fitted
    rates and measured epoch-0 values). Per cell over seeds: ``q_median``, ``n_q`` (trials
    used); ``spread`` = sd / mean of the final dh2 over the converged seeds (ddof 1, needs
    2; Eq. 48 predicts it vanishes as gain -> 0), ``n_converged``, ``n_ran``,
    ``dh2_final_median``. Returns an xarray Dataset, plus the per-trial ``q`` (with
    ``sample``)."""
    if "trial" in ds.dims:  # load()'s flat form: this needs the grid's axes
        ds = unstack(ds)
    s = _samples(ds)
    conv = (s["converged"] == 1) & s["ran"]
    q = order_parameter(s["dh2_final"].values, s["A_high"].values)
    q = s["dh2_final"].copy(data=q).where(conv & np.isfinite(s["A_high"]))
    d = s["dh2_final"].where(conv)
    n_conv = conv.sum("sample")
    mean = d.mean("sample")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # cells with < 2 seeds: NaN
        spread = (d.std("sample", ddof=1) / mean).where(n_conv >= 2)
    out = xr.Dataset({
        "q": q, "q_median": q.median("sample"), "n_q": q.notnull().sum("sample"),
        "spread": spread, "n_converged": n_conv, "n_ran": s["ran"].sum("sample"),
        "dh2_final_median": d.median("sample")})
    return out.transpose("arch", "input_gap", "gain", "target_gap", ...)


def depth(ds, ref_input_gap=REF_INPUT_GAP, ref_target_gap=REF_TARGET_GAP):
    """The depth study (Fig. 10) per (architecture, gain): over the trials with status ok
    (trained and fitted) at the reference gaps (all the group's trials if it has none
    there), per stage the median and the 25 % / 75 % quantiles of ``stage_fit_loss_rel``,
    ``stage_rate_h`` and ``stage_rate_y`` (NaN-ignoring: a stage whose fit failed is left
    out), and the number of trials. ``observed`` is the observed layer's stage: the stage
    whose final dh2 equals the summary's dh2_final in every used trial (-1 if none).
    Returns a list of dicts (arch, gain, stage, n, gaps, observed, and per quantity
    ``<name>_median``, ``<name>_q25``, ``<name>_q75``; per stage, ``stage_rate_h_n_floor``
    and ``stage_rate_y_n_floor`` count the trials whose rate sits at its floor, <=
    RATE_FLOOR_MAX: not a measurement, which a figure must not draw as one). ValueError if the file has no
    per-stage results (record.all_layers was off)."""
    if "stage" not in ds.dims:
        raise ResultsFileError(f"{ds.attrs.get('path', '?')}: no per-stage results "
                         "(the job did not set record.all_layers = true)")
    t = network_trials(ds)
    at_ref = _close(t["input_gap"].values, ref_input_gap) & \
        _close(t["target_gap"].values, ref_target_gap)
    ok = t["status"].values == STATUS_OK
    out = []
    for arch, gain, g in _groups(t):
        use = g & ok & (at_ref if (g & at_ref & ok).any() else True)
        if not use.any():
            continue
        sub = t.isel(trial=np.flatnonzero(use))
        stage_final = sub["stage_dh2_final"].values
        equal = (stage_final == sub["dh2_final"].values[:, None]).all(axis=0)
        row = dict(arch=arch, gain=gain, stage=sub["stage"].values, n=int(use.sum()),
                   gaps="reference" if (g & at_ref & ok).any() else "all",
                   observed=int(np.flatnonzero(equal)[0]) if equal.any() else -1)
        for name in ("stage_rate_h", "stage_rate_y"):  # added: not part of the quantiles
            row[f"{name}_n_floor"] = (sub[name].values <= RATE_FLOOR_MAX).sum(axis=0)
        for name in ("stage_fit_loss_rel", "stage_rate_h", "stage_rate_y"):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # a stage with no fit: NaN
                q25, med, q75 = np.nanquantile(sub[name].values, [0.25, 0.5, 0.75], axis=0)
            row[f"{name}_median"], row[f"{name}_q25"], row[f"{name}_q75"] = med, q25, q75
        out.append(row)
    return out


def fit_quality(ds):
    """Per (architecture, gain): trials that ran, trials with a fit (finite
    fit_loss_rel), the median and the quartiles of the relative fit loss (Eq. 49 sum of
    squared residuals / sum of squares of the three curves), fits that failed (status 2)
    and fits with a rate at its floor. Returns a list of dicts plus the per-trial values
    under ``trials``."""
    t = network_trials(ds)
    rel = t["fit_loss_rel"].values
    rows = []
    for arch, gain, g in _groups(t):
        v = rel[g & np.isfinite(rel)]
        rows.append(dict(
            arch=arch, gain=gain, n_ran=int(g.sum()), n_fit=int(v.size),
            median=float(np.median(v)) if v.size else np.nan,
            q25=float(np.quantile(v, 0.25)) if v.size else np.nan,
            q75=float(np.quantile(v, 0.75)) if v.size else np.nan,
            n_fit_failed=int((g & (t["status"].values == STATUS_FIT_FAILED)).sum()),
            n_at_floor=int((g & (t["fit_rate_at_floor"].values == 1)).sum()),
            values=v))
    return rows
