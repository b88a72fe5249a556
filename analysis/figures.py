"""The figures of a ``repsweep run`` results file (analysis/README.md defines each):

    dynamics        dh2, dyhat2, w and the loss against epochs, measured and the fitted
                    theory (Eq. 7, Eq. 9), one row per architecture x gain (Fig. 2/3, 11)
    final_distance  measured final dh2 against Eq. 10 with averaged rates (Fig. 5)
    depth           fit loss and both fitted rates against the observed stage (Fig. 10)
    phase_diagram   the lazy/rich order parameter and the seed-to-seed spread over
                    gain x target gap (Sec. 4.1, App. A.5-A.6)
    fit_quality     the relative fit loss per architecture x gain

:func:`write_all` writes every figure the file allows (PNG and PDF) and says why it skipped
the others. Names follow NOTES.md: dyhat2 is the *predicted* output difference, never the
target gap."""
import os

import numpy as np

from . import measures
from .results import REF_INPUT_GAP, REF_TARGET_GAP, load, network_trials

FIGURES = ("dynamics", "final_distance", "depth", "phase_diagram", "fit_quality")
DPI = 150  # PNG resolution (analysis figures --dpi); the PDFs are vector graphics
# Okabe & Ito's colour-blind-safe palette, each colour with its own marker
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442",
           "#000000")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
FONT = 8  # the smallest text at the size the figures are drawn (their figsize, in inches)


def _color(k):
    return PALETTE[k % len(PALETTE)]


def _marker(k):
    return MARKERS[k % len(MARKERS)]

LABELS = {
    "dh2": r"$\|dh\|^2=\|h(x_2)-h(x_1)\|^2$ (observed layer)",
    "dyhat2": r"$\|d\hat y\|^2=\|f(x_2)-f(x_1)\|^2$ (predicted output diff.)",
    "w": r"$w$ (output alignment)",
    "loss": "training loss",
}


class Skip(Exception):
    """The file does not hold what a figure needs (the message says what)."""


def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from cycler import cycler
    plt.rcParams.update({
        "font.size": FONT + 1, "axes.titlesize": FONT + 1, "axes.labelsize": FONT + 1,
        "xtick.labelsize": FONT, "ytick.labelsize": FONT, "legend.fontsize": FONT,
        "figure.titlesize": FONT + 2,
        "axes.prop_cycle": cycler(color=PALETTE),
        # no "1e-5" offset text above an axis, where it collided with titles
        "axes.formatter.useoffset": False, "axes.titlepad": 14})
    return plt


def _save(fig, out_dir, name, dpi=None):
    """PNG and PDF of `fig` in out_dir (none if out_dir is None); the figure stays open:
    every fig_* returns it so that a caller can restyle it (close it when done)."""
    if out_dir is None:
        return []
    os.makedirs(out_dir, exist_ok=True)
    paths = [os.path.join(out_dir, f"{name}.{ext}") for ext in ("png", "pdf")]
    for p in paths:
        fig.savefig(p, dpi=dpi or DPI)
    return paths


def _wide(values, span=30.0):
    """True when the finite values are >= 0 (up to rounding: the theory's loss, a sum of
    squares evaluated as a difference, can come out at -1e-17) and the positive ones span
    more than `span`: such a quantity is shown on a log axis."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    pos = v[v > 0]
    return bool(pos.size and (v >= -1e-12 * pos.max()).all() and pos.max() / pos.min() > span)


def _gaps(input_gap, target_gap):
    return f"gaps |x2-x1| {input_gap:.3g}, |y2-y1| {target_gap:.3g}"


# --- 1. dynamics vs theory ---

def _trial_flags(t, i):
    """What a reader must know before trusting trial i's curves: not converged, fit failed,
    a rate not determined by the data (measures.rates_undetermined)."""
    flags = []
    if int(t["converged"].values[i]) != 1:
        flags.append("NOT converged")
    if int(t["status"].values[i]) == measures.STATUS_FIT_FAILED:
        flags.append("fit FAILED")
    elif measures.rates_undetermined(t.isel(trial=[i]))[0]:
        flags.append("rate NOT determined")
    r2 = measures.curve_r2(t.isel(trial=[i]))
    worst = min(r2, key=lambda k: r2[k][0] if np.isfinite(r2[k][0]) else np.inf)
    if r2[worst][0] < measures.POOR_R2:  # the worst curve only: the label must stay short
        flags.append(f"poor fit: R² {worst} {r2[worst][0]:.2g}")
    return flags


def _dynamics_trial(t, g, at_ref):
    """Index of the trial shown for a group: at the reference gaps if the group has any,
    the first seed with finite theory curves (else the first with a trajectory)."""
    cand = np.flatnonzero(g & at_ref) if (g & at_ref).any() else np.flatnonzero(g)
    has_traj = np.isfinite(t["dh2_traj"].values[cand, 0])
    if "dh2_theory_traj" in t:
        fitted = np.isfinite(t["dh2_theory_traj"].values[cand, 0]) & has_traj
        if fitted.any():
            return cand[np.flatnonzero(fitted)[0]]
    return cand[np.flatnonzero(has_traj)[0]] if has_traj.any() else None


def fig_dynamics(ds, out_dir=None, max_points=60, dpi=None):
    """One row per (architecture, gain) — seed as said in the row — and columns dh2,
    dyhat2, w, loss against epochs: the measured values (points, at most `max_points` per
    panel) and the fitted theory (lines: Eq. 7 with the trial's fitted rates from its
    measured epoch-0 state; the loss by Eq. 9 with its fitted 1/tau_ybar)."""
    if "epoch" not in ds.dims or "dh2_traj" not in ds:
        raise Skip("no trajectories (the job did not set record.trajectory_stride)")
    t = network_trials(ds)
    at_ref = measures._close(t["input_gap"].values, REF_INPUT_GAP) & \
        measures._close(t["target_gap"].values, REF_TARGET_GAP)
    rows = []
    for arch, gain, g in measures._groups(t):
        i = _dynamics_trial(t, g, at_ref)
        if i is not None:
            rows.append((arch, gain, i))
    if not rows:
        raise Skip("no trial with a recorded trajectory")
    has_theory = "dh2_theory_traj" in t
    plt = _plt()
    fig, axes = plt.subplots(len(rows), 4, figsize=(12, 2.0 * len(rows) + 0.6), squeeze=False)
    epoch = t["epoch"].values
    for r, (arch, gain, i) in enumerate(rows):
        trial = t.isel(trial=i)
        valid = np.isfinite(trial["dh2_traj"].values)
        ep = epoch[valid]
        step = max(1, len(ep) // max_points)
        for c, name in enumerate(("dh2", "dyhat2", "w", "loss")):
            ax = axes[r][c]
            meas = trial[f"{name}_traj"].values[valid]
            th = trial[f"{name}_theory_traj"].values[valid] if has_theory else None
            show = th is not None and np.isfinite(th).any()
            log = name != "w" and _wide(np.concatenate([meas, th if show else []]))
            if log:  # zeros (a loss of exactly 0) have no place on a log axis
                ax.set_yscale("log")
                meas = np.where(meas > 0, meas, np.nan)
                th = np.where(th > 0, th, np.nan) if show else th
            ax.plot(ep[::step], meas[::step], "o", ms=2.5, color="C0", label="network")
            if show:
                label = "theory, Eq. 9" if name == "loss" else "theory, Eq. 7 (fitted rates)"
                ax.plot(ep, th, "-", lw=1.3, color="C1", label=label)
            if r == 0:
                ax.set_title(LABELS[name], fontsize=9)
            if r == len(rows) - 1:
                ax.set_xlabel("epoch")
            ax.tick_params(labelsize=FONT)
        if r == 0:
            axes[0][3].legend(fontsize=FONT)
        flags = _trial_flags(t, i)
        axes[r][0].set_ylabel(f"{arch}\ngain {gain:g}, seed {int(trial['seed'])}"
                              + "".join(f"\n{f}" for f in flags), fontsize=FONT,
                              color="#D55E00" if flags else "black")
    note = "" if has_theory else " (no theory curves in this file: written by an older repsweep)"
    fig.suptitle(f"dynamics vs the fitted theory — {ds.attrs.get('job_name', '')}, "
                 f"{_gaps(float(t['input_gap'][rows[0][2]]), float(t['target_gap'][rows[0][2]]))}"
                 f"{note}", fontsize=10)
    fig.tight_layout()
    return fig, _save(fig, out_dir, "fig_dynamics", dpi), []


# --- 2. final distance vs Eq. 10 ---

def fig_final_distance(ds, out_dir=None, dpi=None):
    """Measured final dh2 (y) against Eq. 10 with the rates averaged per (architecture,
    gain) over the fixed-gap trials (x), the identity line, Pearson r and the median
    relative error (measures.final_distance has the rules)."""
    fd = measures.final_distance(ds)
    tr = fd["trials"]
    if fd["n_kept"] == 0:
        raise Skip(f"no converged trial with averaged rates to compare ({fd['n_failed']} "
                   f"failed, {fd['n_not_converged']} not converged, {fd['n_no_rates']} "
                   "in groups without fixed-gap calibration trials)")
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.6, 6.4))
    kept = tr["kept"]
    for k, grp in enumerate(gr for gr in fd["groups"] if gr["n_kept"]):
        m = kept & (tr["arch"] == grp["arch"]) & (tr["gain"] == grp["gain"])
        tag = " (in-sample)" if grp["in_sample"] else ""
        ax.scatter(tr["predicted"][m], tr["measured"][m], s=22, color=_color(k),
                   marker=_marker(k), edgecolor="black", linewidth=0.4,
                   label=f"{grp['arch']} gain {grp['gain']:g}{tag}: n={grp['n_kept']}")
    both = np.concatenate([tr["predicted"][kept], tr["measured"][kept]])
    lo, hi = np.nanmin(both), np.nanmax(both)
    log = bool(_wide(both, span=10.0) and (both > 0).all())
    if log:
        ax.set_xscale("log")
        ax.set_yscale("log")
        lo, hi = lo / 1.5, hi * 1.5
    else:
        pad = 0.05 * (hi - lo if hi > lo else 1.0)
        lo, hi = lo - pad, hi + pad
    ax.plot([lo, hi], [lo, hi], "k--", lw=1, label="identity")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_xlabel(r"predicted final $\|dh\|^2$, Eq. 10 with averaged rates")
    ax.set_ylabel(r"measured final $\|dh\|^2$ (observed layer)")
    cs = measures.correlation_stats(tr["predicted"][kept], tr["measured"][kept], log)
    left = fd["n_failed"] + fd["n_not_converged"] + fd["n_no_rates"] + fd["n_not_finite"]
    ci = lambda v: f"[{v[0]:.2f}, {v[1]:.2f}]"
    stats = (f"Pearson r{' (log10 values)' if log else ''} = {cs['r']:.3f} {ci(cs['r_ci'])}, "
             f"Spearman = {cs['rho']:.3f} {ci(cs['rho_ci'])}, median rel. error = "
             f"{cs['median_rel_err']:.3f} {ci(cs['median_rel_err_ci'])} (n = {cs['n']}; "
             "bootstrap 95 % CIs)")
    t = network_trials(ds)
    undet = int((measures.rates_undetermined(t) & (t["status"].values == measures.STATUS_OK)).sum())
    rule = (f"left out {left}: {fd['n_not_converged']} not converged (final loss >= "
            f"converge_loss), {fd['n_failed']} failed, {fd['n_no_rates']} without fixed-gap "
            f"rates; {undet} fitted trials with a rate not determined by the data (at its "
            "floor or above the fit's range) are in the file")
    import textwrap
    fig.text(0.02, 0.01, textwrap.fill(stats, 110) + "\n" + textwrap.fill(rule, 110),
             fontsize=FONT, va="bottom")
    ax.set_title("final distance vs theory (Fig. 5): rates fitted at gaps "
                 f"({fd['ref'][0]:.3g}, {fd['ref'][1]:.3g}),\naveraged (mean) per arch x gain",
                 fontsize=FONT + 1)
    ax.legend(fontsize=FONT, loc="lower right")
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    lines = [f"final distance: {stats}; {rule}"]
    for grp in fd["groups"]:
        lines.append(
            f"  {grp['arch']} gain {grp['gain']:g}: {grp['n_calib']} calibration trials, "
            f"1/tau_h {grp['rate_h']:.4g}, 1/tau_y {grp['rate_y']:.4g}; compared "
            f"{grp['n_compared']}{' (in-sample)' if grp['in_sample'] else ''}, kept "
            f"{grp['n_kept']}, r {grp['r']:.3f}, median rel. error {grp['median_rel_err']:.3f}")
    return fig, _save(fig, out_dir, "fig_final_distance", dpi), lines


# --- 3. depth ---

def fig_depth(ds, out_dir=None, dpi=None):
    """Relative fit loss, 1/tau_h and 1/tau_y fitted with dh2 at each stage against the
    stage: median over the trials (line) and the interquartile range (band), one colour
    per (architecture, gain); the dashed line marks the observed (middle) layer."""
    if "stage" not in ds.dims:
        raise Skip("no per-stage results (the job did not set record.all_layers = true)")
    rows = measures.depth(ds)
    if not rows:
        raise Skip("no trial with status ok and per-stage results")
    plt = _plt()
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.4))
    names = (("stage_fit_loss_rel", "relative fit loss (Eq. 49)"),
             ("stage_rate_h", r"encoder rate $1/\tau_h$ per epoch"),
             ("stage_rate_y", r"decoder rate $1/\tau_y$ per epoch"))
    n_floor = 0
    for k, row in enumerate(rows):
        c = _color(k)
        band = row["n"] >= measures.SPREAD_MIN_SEEDS
        for ax, (name, label) in zip(axes, names):
            x = row["stage"]
            med, q25, q75 = (np.array(row[f"{name}_{q}"], dtype=float)
                             for q in ("median", "q25", "q75"))
            if name != "stage_fit_loss_rel":  # a rate at its floor is not a measurement
                n_floor += int(np.sum(row[f"{name}_n_floor"]))
                for v in (med, q25, q75):
                    v[v <= measures.RATE_FLOOR_MAX] = np.nan
            ax.plot(x, med, "-", marker=_marker(k), ms=4, color=c,
                    label=f"{row['arch']} gain {row['gain']:g} (n={row['n']})")
            if band:
                ax.fill_between(x, q25, q75, color=c, alpha=0.2)
            if row["observed"] >= 0:
                ax.axvline(row["observed"], color=c, ls="--", lw=0.8)
            ax.set_yscale("log")
            ax.set_xlabel("stage of the observed layer H (0 = nearest the input)")
            ax.set_title(label, fontsize=9)
    axes[0].legend(fontsize=FONT)
    gaps = {row["gaps"] for row in rows}
    fig.suptitle("depth (Fig. 10): the theory fitted with H at each stage — median over seeds"
                 f" (band: interquartile range, only with >= {measures.SPREAD_MIN_SEEDS} seeds);"
                 f" dashed: the default observed layer\n{n_floor} fitted rates at the floor "
                 "(1e-12, not determined by the data) are not drawn; a median at the floor is "
                 "a gap in the line"
                 + ("" if gaps == {"reference"} else " (all gaps pooled where no reference"
                    " gaps)"), fontsize=FONT + 1)
    fig.tight_layout()
    lines = []
    for row in rows:
        loss = row["stage_fit_loss_rel_median"]
        best = int(np.nanargmin(loss)) if np.isfinite(loss).any() else -1
        lines.append(f"depth: {row['arch']} gain {row['gain']:g}: {row['n']} trials, "
                     f"smallest median fit loss at stage {best}, observed stage "
                     f"{row['observed']}")
    return fig, _save(fig, out_dir, "fig_depth", dpi), lines


# --- 4. phase diagram ---

def _tick(v):
    return v if isinstance(v, str) else f"{v:.3g}"


def _heatmap(ax, values, xs, ys, note, cmap, norm, fmt):
    plt = _plt()
    m = np.ma.masked_invalid(values)
    cm = plt.get_cmap(cmap).copy()
    cm.set_bad("0.85")
    im = ax.imshow(m, origin="lower", aspect="auto", cmap=cm, norm=norm)
    ax.set_xticks(range(len(xs)), [_tick(x) for x in xs], fontsize=FONT)
    ax.set_yticks(range(len(ys)), [_tick(y) for y in ys], fontsize=FONT)
    from matplotlib import patheffects
    halo = [patheffects.withStroke(linewidth=2, foreground="white")]
    for (j, i), v in np.ndenumerate(values):
        text = fmt(v) if np.isfinite(v) else ""
        ax.text(i, j, text + note[j][i], ha="center", va="center", fontsize=FONT,
                path_effects=halo)
    return im


def fig_phase_diagram(ds, out_dir=None, dpi=None):
    """Per architecture (and input gap where varied), over gain x target gap: (a) the
    median over seeds of q = clip(A_high / dh2_final, 0, 1) (1 lazy, 0 rich), (b) the
    seed-to-seed spread sd/mean of the final dh2, (c) q of every trial against gain.
    Cells: value and converged/ran seeds; grey = no converged trial. Needs >= 2 gains."""
    from matplotlib.colors import LogNorm, Normalize

    ph = measures.phase(ds)
    panels = []
    for arch in ph["arch"].values:
        for gx in ph["input_gap"].values:
            cell = ph.sel(arch=arch, input_gap=gx)
            ran = cell["n_ran"].values > 0
            gains = ran.any(axis=1)
            if gains.sum() >= 2:
                panels.append((arch, gx, cell.isel(gain=np.flatnonzero(gains),
                                                   target_gap=np.flatnonzero(ran.any(axis=0)))))
    if not panels:
        raise Skip("needs at least two gains of one architecture")
    plt = _plt()
    fig, axes = plt.subplots(len(panels), 3, figsize=(14, 3.6 * len(panels) + 0.5),
                             squeeze=False)
    for r, (arch, gx, cell) in enumerate(panels):
        gains, tgaps = cell["gain"].values, cell["target_gap"].values
        note = [[f"\n{int(cell['n_converged'][i, j])}/{int(cell['n_ran'][i, j])}"
                 if cell["n_ran"][i, j] else "" for i in range(len(gains))]
                for j in range(len(tgaps))]
        ax = axes[r][0]
        im = _heatmap(ax, cell["q_median"].values.T, gains, tgaps, note, "cividis",
                      Normalize(0, 1), lambda v: f"{v:.2f}")
        fig.colorbar(im, ax=ax, label="q (median over seeds)")
        ax.set_title(f"{arch}, |x2-x1| = {gx:.3g}: order parameter q = A_high / final "
                     r"$\|dh\|^2$" "\n(1 lazy, 0 rich; cell: q, converged/ran seeds)",
                     fontsize=8)
        ax = axes[r][1]
        sp = cell["spread"].values.T
        pos = sp[np.isfinite(sp) & (sp > 0)]
        norm = LogNorm(pos.min(), pos.max()) if pos.size and pos.max() > pos.min() else None
        im = _heatmap(ax, np.where(sp > 0, sp, np.nan) if norm else sp, gains, tgaps, note,
                      "viridis", norm, lambda v: f"{v:.2g}")
        fig.colorbar(im, ax=ax, label="sd / mean of final ||dh||² over seeds")
        ax.set_title("seed-to-seed spread of the final distance\n(Eq. 48: vanishes as "
                     "gain -> 0)", fontsize=8)
        for ax in axes[r][:2]:
            ax.set_xlabel("initial weight gain")
            ax.set_ylabel("target gap |y2-y1| (data)")
        ax = axes[r][2]
        q = cell["q"].transpose("gain", "target_gap", "sample").values
        for j, tg in enumerate(tgaps):
            xs = np.repeat(gains, q.shape[2])
            ys = q[:, j, :].ravel()
            ok = np.isfinite(ys)
            ax.plot(xs[ok] * (1 + 0.01 * (j - len(tgaps) / 2)), ys[ok], _marker(j), ms=4,
                    color=_color(j), label=f"|y2-y1| = {tg:.3g}")
        ax.set_ylim(-0.05, 1.05)
        ax.set_xlabel("initial weight gain")
        ax.set_ylabel("q per converged seed")
        ax.set_title("q of every converged trial", fontsize=8)
        ax.legend(fontsize=FONT)
    fig.tight_layout()
    lines = []
    for arch, gx, cell in panels:
        for tg in cell["target_gap"].values:
            c = cell.sel(target_gap=tg)
            vals = ", ".join(f"{g:g}: {q:.2f}" if np.isfinite(q) else f"{g:g}: -"
                             for g, q in zip(c["gain"].values, c["q_median"].values))
            lines.append(f"phase: {arch} |x2-x1| {gx:.3g} |y2-y1| {tg:.3g}: median q by "
                         f"gain {vals}")
    return fig, _save(fig, out_dir, "fig_phase_diagram", dpi), lines


# --- 5. fit quality ---

def fig_fit_quality(ds, out_dir=None, dpi=None):
    """(a) Median relative fit loss per architecture x gain (log colour; cell: median and
    fitted/ran trials), (b) every trial's relative fit loss against gain, coloured by
    architecture (or, for a single architecture, by target gap)."""
    from matplotlib.colors import LogNorm

    rows = measures.fit_quality(ds)
    if not any(r["n_fit"] for r in rows):
        raise Skip("no trial with a fit")
    archs = sorted({r["arch"] for r in rows})
    gains = sorted({r["gain"] for r in rows})
    grid = np.full((len(archs), len(gains)), np.nan)
    note = [["" for _ in gains] for _ in archs]
    for r in rows:
        i, j = archs.index(r["arch"]), gains.index(r["gain"])
        grid[i, j] = r["median"]
        note[i][j] = f"\n{r['n_fit']}/{r['n_ran']}"
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(12, 1.0 + 0.45 * max(len(archs), 6)))
    pos = grid[np.isfinite(grid) & (grid > 0)]
    norm = LogNorm(pos.min(), pos.max()) if pos.size and pos.max() > pos.min() else None
    im = _heatmap(axes[0], grid, gains, archs, note, "magma_r", norm, lambda v: f"{v:.1e}")
    axes[0].set_yticks(range(len(archs)), archs, fontsize=FONT)
    fig.colorbar(im, ax=axes[0], label="median relative fit loss")
    axes[0].set_xlabel("initial weight gain")
    axes[0].set_title("where the theory fits: median relative fit loss (Eq. 49 residual / "
                      "sum of squares)\ncell: median, fitted/ran trials", fontsize=8)
    ax = axes[1]
    t = network_trials(ds)
    rel = t["fit_loss_rel"].values
    if len(archs) > 1:
        key, fmt = t["arch"].values.astype(str), str
    else:
        key, fmt = t["target_gap"].values, lambda v: f"|y2-y1| = {v:.3g}"
    undet = measures.rates_undetermined(t)
    for k, v in enumerate(sorted(set(key.tolist()))):
        m = (key == v) & np.isfinite(rel)
        if m.any():
            ax.plot(t["gain"].values[m & ~undet], rel[m & ~undet], _marker(k), ms=4,
                    color=_color(k), label=fmt(v))
            ax.plot(t["gain"].values[m & undet], rel[m & undet], _marker(k), ms=6,
                    mfc="none", color=_color(k))
    ax.plot([], [], "o", mfc="none", color="black", ms=6,
            label=f"open: a rate not determined ({int((undet & np.isfinite(rel)).sum())})")
    ax.set_yscale("log")
    ax.set_xlabel("initial weight gain")
    ax.set_ylabel("relative fit loss per trial")
    ax.set_title("every fitted trial", fontsize=FONT)
    ax.legend(fontsize=FONT, loc="upper left", bbox_to_anchor=(1.01, 1))  # off the data
    fig.tight_layout()
    lines = [f"fit quality: {r['arch']} gain {r['gain']:g}: median relative fit loss "
             f"{r['median']:.3g} over {r['n_fit']} of {r['n_ran']} trials "
             f"({r['n_fit_failed']} fits failed, {r['n_at_floor']} with a rate at its floor)"
             for r in rows]
    return fig, _save(fig, out_dir, "fig_fit_quality", dpi), lines


MAKERS = {"dynamics": fig_dynamics, "final_distance": fig_final_distance, "depth": fig_depth,
          "phase_diagram": fig_phase_diagram, "fit_quality": fig_fit_quality}


def write_all(path, out_dir, only=None, dpi=None):
    """Write every figure of FIGURES (or those in `only`) that the results file allows,
    PNGs at `dpi` (default DPI). Returns a list of (name, paths, stdout lines, skip reason
    or None). Raises ValueError naming the file if it is not a readable results file with
    network trials. Each fig_* function returns (Figure, paths, lines): call one directly
    (out_dir None: nothing written) to restyle its Figure."""
    ds = load(path)
    out = []
    plt = _plt()
    for name in FIGURES:
        if only and name not in only:
            continue
        try:
            fig, paths, lines = MAKERS[name](ds, out_dir, dpi=dpi)
            plt.close(fig)
            out.append((name, paths, lines, None))
        except Skip as exc:
            out.append((name, [], [], str(exc)))
    return out
