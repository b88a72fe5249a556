"""The numbers of analysis/REPRODUCTION.md, from the results files of the reproduction jobs
(jobs/reproduce-*.cfg, jobs/phase-diagram.cfg), and its figures.

    /usr/bin/python3 -m analysis.reproduction RESULTS_DIR --out analysis/reproduction

RESULTS_DIR holds whichever of these exist (each section is skipped, saying so, when its
file is missing): reproduce-table1.nc, reproduce-precision.nc, reproduce-depth.nc,
reproduce-final-distance.nc, reproduce-final-distance-default.nc, phase-diagram.nc.

Definitions used here and nowhere else (the rest is analysis/README.md's):
- plateau: on the training-loss trajectory, the loss sits near the value it has once the
  output mean is fitted but the two outputs are not yet told apart, L_p = target_gap^2 / 8
  (1/2 mean of (f - y)^2 with f the mean of y). The plateau runs from the first recorded
  epoch with loss < 1.5 L_p to the first with loss < 0.5 L_p (its escape); its length is
  their difference, 0 when the loss passes both at once (no plateau), "not left" when the
  loss never falls below 0.5 L_p. Resolution: the job's trajectory_stride.
- precision: float32 and float64 trials are paired by (arch, gain, gaps, seed); for each
  summary quantity the relative difference |x32 - x64| / |x64|.
"""
import argparse
import os
import sys
import warnings

import numpy as np

from . import measures
from .figures import Skip, _plt
from .results import ResultsFileError, is_network, load, open_results

TABLE1_ORDER = ["default", "convolution", "skip", "shallow", "narrow", "dropout", "linear",
                "relu", "elu", "tanh", "swish", "low_weights", "intermediate_weights",
                "high_weights", "very_high_weights"]
GAIN_SERIES = ["low_weights", "default", "intermediate_weights", "high_weights",
               "very_high_weights"]


def _network(path):
    ds = open_results(path)
    return ds.isel(trial=np.flatnonzero(is_network(ds)))


def _names(ds, var):
    return np.array([v.decode() if isinstance(v, bytes) else str(v) for v in ds[var].values])


def _block_names(ds):
    """Per trial, its block's name, from the `block` variable's attribute block_names
    ("0: authors_gaps (network), 1: text_gaps (network)")."""
    names = {}
    for part in str(ds["block"].attrs.get("block_names", "")).split(","):
        num, _, rest = part.strip().partition(":")
        if num.strip().isdigit():
            names[int(num)] = rest.strip().split(" (")[0]
    return [names.get(int(b), str(int(b))) for b in ds["block"].values]


def _fmt(x, digits=3):
    return "-" if x is None or not np.isfinite(x) else f"{x:.{digits}g}"


def plateau(loss, epochs, target_gap):
    """(start, escape) epochs of the loss plateau, per the module's definition; escape is
    None when the loss never falls below 0.5 L_p, start None when never below 1.5 L_p."""
    lp = target_gap ** 2 / 8
    ok = np.isfinite(loss)
    loss, epochs = loss[ok], epochs[ok]
    below_hi = np.flatnonzero(loss < 1.5 * lp)
    below_lo = np.flatnonzero(loss < 0.5 * lp)
    start = int(epochs[below_hi[0]]) if below_hi.size else None
    escape = int(epochs[below_lo[0]]) if below_lo.size else None
    return start, escape


def table1_section(path, out):
    ds = _network(path)
    arch, block = _names(ds, "arch"), np.array(_block_names(ds))
    conv, loss = ds["converged"].values, ds["loss_final"].values
    rel, status = ds["fit_loss_rel"].values, ds["status"].values
    rh, ry = ds["rate_h"].values, ds["rate_y"].values
    print("\n## Claim 0/1: Table 1 at both gap sets (converged within 6000 epochs; fit)")
    print("| arch | gain | lr | block | converged | final loss (median) | fit_loss_rel median "
          "[min, max] | 1/tau_h mean (sd) | 1/tau_y mean (sd) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for a in TABLE1_ORDER:
        for b in sorted(set(block)):
            m = (arch == a) & (block == b)
            if not m.any():
                continue
            ok = m & (status == 0)
            g = float(ds["gain"].values[m][0])
            lr = float(ds["lr"].values[m][0])
            print(f"| {a} | {g:g} | {lr:g} | {b} | {int(conv[m].sum())}/{int(m.sum())} | "
                  f"{_fmt(np.median(loss[m]))} | {_fmt(np.median(rel[ok]) if ok.any() else np.nan)}"
                  f" [{_fmt(np.min(rel[ok]) if ok.any() else np.nan)}, "
                  f"{_fmt(np.max(rel[ok]) if ok.any() else np.nan)}] | "
                  f"{_fmt(np.mean(rh[ok]) if ok.any() else np.nan)} "
                  f"({_fmt(np.std(rh[ok], ddof=1) if ok.sum() > 1 else np.nan, 2)}) | "
                  f"{_fmt(np.mean(ry[ok]) if ok.any() else np.nan)} "
                  f"({_fmt(np.std(ry[ok], ddof=1) if ok.sum() > 1 else np.nan, 2)}) |")
    for b in sorted(set(block)):
        m = block == b
        print(f"{b}: {int(conv[m].sum())} of {int(m.sum())} trials converged (final loss < "
              f"1e-3); median fit_loss_rel {_fmt(np.nanmedian(rel[m & (status == 0)]))}")
    _plot_gaps(arch, block, loss, rel, status, out)
    if "loss_traj" not in ds:
        print("(no trajectories: plateau section skipped)")
        return
    print("\n## Claim 2: plateau length against the gain (default net; authors' gaps)")
    print("| arch | gain | lr | plateau start..escape (epochs), per seed | length in epochs "
          "(median) | length x lr (median) | fit_loss_rel median |")
    print("|---|---|---|---|---|---|---|")
    epochs = ds["epoch"].values
    series = []
    for a in GAIN_SERIES:
        m = np.flatnonzero((arch == a) & (block == "authors_gaps"))
        if not m.size:
            continue
        spans, lengths = [], []
        for i in m:
            tg = float(ds["target_gap"].values[i])
            start, escape = plateau(ds["loss_traj"].values[i], epochs, tg)
            spans.append(f"{start}..{escape if escape is not None else 'not left'}")
            if start is not None and escape is not None:
                lengths.append(escape - start)
        g, lr = float(ds["gain"].values[m[0]]), float(ds["lr"].values[m[0]])
        med = float(np.median(lengths)) if lengths else np.nan
        series.append((g, med, med * lr))
        print(f"| {a} | {g:g} | {lr:g} | {', '.join(spans)} | {_fmt(med)} | {_fmt(med * lr)} | "
              f"{_fmt(np.nanmedian(rel[m]))} |")
    _plot_plateau(ds, arch, block, epochs, out)


def _plot_plateau(ds, arch, block, epochs, out):
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    cmap = plt.get_cmap("viridis")
    for k, a in enumerate(GAIN_SERIES):
        m = np.flatnonzero((arch == a) & (block == "authors_gaps"))
        if not m.size:
            continue
        i = m[0]
        g, lr = float(ds["gain"].values[i]), float(ds["lr"].values[i])
        c = cmap(k / max(1, len(GAIN_SERIES) - 1))
        lab = f"gain {g:g} (lr {lr:g})"
        axes[0].semilogy(epochs, ds["loss_traj"].values[i], color=c, label=lab)
        axes[0].semilogy(epochs, ds["loss_theory_traj"].values[i], color=c, ls="--", lw=0.8)
        axes[1].semilogy(epochs, ds["dh2_traj"].values[i], color=c, label=lab)
        axes[1].semilogy(epochs, ds["dh2_theory_traj"].values[i], color=c, ls="--", lw=0.8)
    tg = float(ds["target_gap"].values[0])
    axes[0].axhline(tg ** 2 / 8, color="grey", lw=0.6, ls=":")
    # the plateau and its escape; far below, the loss is rounding-dominated
    axes[0].set_ylim(1e-8, 2)
    for ax in axes:
        ax.set_xlim(0, 3000)
    axes[0].set(xlabel="epoch", ylabel="training loss",
                title="loss (solid) and Eq. 9 with fitted rates (dashed); dotted: plateau level")
    axes[1].set(xlabel="epoch", ylabel=r"$\|dh\|^2$ (observed layer)",
                title=r"$\|dh\|^2$ (solid) and the fitted ODE (dashed)")
    axes[0].legend(fontsize=7)
    fig.suptitle("default net (20 x 500) at Table 1's five gains, seed 0, gaps (1, 0.707)",
                 fontsize=9)
    fig.tight_layout()
    _save(fig, out, "plateau")


def _plot_gaps(arch, block, loss, rel, status, out):
    """Claim 0: final loss and relative fit loss per architecture at the two gap sets."""
    plt = _plt()
    archs = [a for a in TABLE1_ORDER if (arch == a).any()]
    blocks = sorted(set(block))
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    for k, b in enumerate(blocks):
        for i, a in enumerate(archs):
            m = (arch == a) & (block == b)
            x = np.full(m.sum(), i + (k - 0.5) * 0.3)
            lab = b if i == 0 else None
            axes[0].semilogy(x, np.maximum(loss[m], 1e-32), "o", ms=3, color=f"C{k}",
                             label=lab)
            ok = m & (status == 0)
            axes[1].semilogy(np.full(ok.sum(), i + (k - 0.5) * 0.3), rel[ok], "o", ms=3,
                             color=f"C{k}", label=lab)
    axes[0].axhline(1e-3, color="grey", ls=":", lw=0.8)
    axes[0].set(ylabel="final training loss (epoch 6000)",
                title="converged iff below the dotted line (1e-3)")
    axes[1].set(ylabel="relative fit loss (Eq. 49)", title="how well two rates describe the run")
    for ax in axes:
        ax.set_xticks(range(len(archs)))
        ax.set_xticklabels(archs, rotation=60, ha="right", fontsize=7)
        ax.legend(fontsize=7)
    fig.suptitle("Table 1 at the authors' gaps (1, 0.707) and the text's (0.5, 1): every seed",
                 fontsize=9)
    fig.tight_layout()
    _save(fig, out, "table1_gaps")


def _plot_precision(d64, d32, i64, i32, out):
    """Claim 6: float32 against float64, paired trials."""
    plt = _plt()
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.8))
    arch = _names(d64, "arch")[i64]
    for ax, q, lab in zip(axes, ["dh2_final", "rate_h", "rate_y"],
                          [r"final $\|dh\|^2$", r"$1/\tau_h$", r"$1/\tau_y$"]):
        x, y = d64[q].values[i64], d32[q].values[i32]
        for k, a in enumerate(TABLE1_ORDER):
            m = arch == a
            if m.any():
                ax.loglog(x[m], y[m], "o", ms=3, color=f"C{k % 10}",
                          marker="os^"[k // 10], label=a if q == "dh2_final" else None)
        lim = [np.nanmin([x, y]) * 0.7, np.nanmax([x, y]) * 1.4]
        ax.plot(lim, lim, "k--", lw=0.7)
        ax.set(xlabel=f"{lab}, float64", ylabel=f"{lab}, float32")
    axes[0].legend(fontsize=5, ncol=2)
    fig.suptitle("float32 vs float64, the same trials (authors' gaps, 3 seeds per architecture)",
                 fontsize=9)
    fig.tight_layout()
    _save(fig, out, "precision")


def _save(fig, out, name):
    """PNG only, at a lower dpi than figures._save: these are committed with the page."""
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, f"{name}.png")
    fig.savefig(path, dpi=80)
    print(f"wrote {path}")
    _plt().close(fig)


def precision_section(path64, path32, out):
    d64, d32 = _network(path64), _network(path32)

    def key(ds):
        a = _names(ds, "arch")
        return {(a[i], float(ds["gain"].values[i]), float(ds["input_gap"].values[i]),
                 float(ds["target_gap"].values[i]), int(ds["seed"].values[i])): i
                for i in range(ds.sizes["trial"])}

    k64, k32 = key(d64), key(d32)
    pairs = sorted(set(k64) & set(k32))
    print(f"\n## Claim 6: float32 against float64 ({len(pairs)} paired trials)")
    qs = ["loss_final", "dh2_final", "dyhat2_final", "rate_h", "rate_y", "fit_loss_rel",
          "dh2_predicted"]
    print("| arch | converged 64/32 | " + " | ".join(f"rel. diff {q}" for q in qs) + " |")
    print("|---|---|" + "---|" * len(qs))
    by_arch = {}
    for p in pairs:
        by_arch.setdefault(p[0], []).append(p)
    allrel = {q: [] for q in qs}
    for a in TABLE1_ORDER:
        if a not in by_arch:
            continue
        ps = by_arch[a]
        i64 = [k64[p] for p in ps]
        i32 = [k32[p] for p in ps]
        c64 = int(d64["converged"].values[i64].sum())
        c32 = int(d32["converged"].values[i32].sum())
        cells = []
        for q in qs:
            x, y = d64[q].values[i64].astype(float), d32[q].values[i32].astype(float)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                r = np.abs(y - x) / np.abs(x)
            allrel[q] += r[np.isfinite(r)].tolist()
            cells.append(_fmt(np.nanmax(r) if np.isfinite(r).any() else np.nan, 2))
        print(f"| {a} | {c64}/{c32} of {len(ps)} | " + " | ".join(cells) + " |")
    print("(cells: the largest relative difference over the seeds)")
    for q in qs:
        v = np.array(allrel[q])
        if v.size:
            print(f"{q}: median rel. diff {_fmt(np.median(v), 2)}, max {_fmt(np.max(v), 2)} "
                  f"over {v.size} pairs")
    t64 = np.nansum([d64["train_seconds"].values[k64[p]] for p in pairs])
    t32 = np.nansum([d32["train_seconds"].values[k32[p]] for p in pairs])
    print(f"training time of the {len(pairs)} paired trials: float64 {t64:.4g} s, "
          f"float32 {t32:.4g} s")
    _plot_precision(d64, d32, [k64[p] for p in pairs], [k32[p] for p in pairs], out)


def depth_section(path, out):
    from .figures import fig_depth
    ds = load(path)
    rows = measures.depth(ds)
    print("\n## Claim 4: depth (per stage: median fit_loss_rel, 1/tau_h, 1/tau_y)")
    for r in rows:
        print(f"{r['arch']} gain {r['gain']:g}: {r['n']} trials, observed stage {r['observed']}")
        print("| stage | fit_loss_rel | 1/tau_h | 1/tau_y |")
        print("|---|---|---|---|")
        for s in range(len(r["stage"])):
            print(f"| {int(r['stage'][s])} | {_fmt(r['stage_fit_loss_rel_median'][s])} | "
                  f"{_fmt(r['stage_rate_h_median'][s])} | {_fmt(r['stage_rate_y_median'][s])} |")
    try:
        fig_depth(ds, out)
    except Skip as exc:
        print(f"no figure: {exc}")


def final_distance_section(path, out, stem):
    from .figures import fig_final_distance
    ds = load(path)
    res = measures.final_distance(ds)
    print(f"\n## Claim 3: final distance vs Eq. 10 ({os.path.basename(path)})")
    print(f"all kept trials: Pearson r {_fmt(res['r'])}, median relative error "
          f"{_fmt(res['median_rel_err'])}, n = {res['n_kept']}; left out: "
          f"{res['n_not_converged']} not converged, {res['n_failed']} failed, "
          f"{res['n_no_rates']} without rates")
    for g in res["groups"]:
        print(f"  {g['arch']} gain {g['gain']:g}: {g['n_calib']} calibration trials, "
              f"1/tau_h {_fmt(g['rate_h'])}, 1/tau_y {_fmt(g['rate_y'])}; compared "
              f"{g['n_compared']}, kept {g['n_kept']}, r {_fmt(g['r'])}, median rel. error "
              f"{_fmt(g['median_rel_err'])}")
    tmp = os.path.join(out, "_tmp")
    try:
        fig_final_distance(ds, tmp)
    except Skip as exc:
        print(f"no figure: {exc}")
        return
    for ext in ("png", "pdf"):
        src = os.path.join(tmp, f"fig_final_distance.{ext}")
        if os.path.exists(src):
            os.replace(src, os.path.join(out, f"{stem}.{ext}"))
    for f in os.listdir(tmp):
        os.remove(os.path.join(tmp, f))
    os.rmdir(tmp)
    print(f"wrote {os.path.join(out, stem + '.png')}")


def phase_section(path, out):
    from .figures import fig_phase_diagram
    ds = load(path)
    ph = measures.phase(ds)
    print("\n## Claim 5: lazy vs rich (narrow net; q = A_high / final dh2, spread = sd/mean)")
    gains = ph["gain"].values
    print("| target gap | " + " | ".join(f"gain {g:g}: q, spread, conv" for g in gains) + " |")
    print("|---|" + "---|" * len(gains))
    for tg in ph["target_gap"].values:
        cells = []
        for g in gains:
            c = ph.sel(gain=g, target_gap=tg).isel(arch=0, input_gap=0)
            cells.append(f"{_fmt(float(c['q_median']), 2)}, {_fmt(float(c['spread']), 2)}, "
                         f"{int(c['n_converged'])}/{int(c['n_ran'])}")
        print(f"| {tg:.3g} | " + " | ".join(cells) + " |")
    try:
        fig_phase_diagram(ds, out)
    except Skip as exc:
        print(f"no figure: {exc}")


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python3 -m analysis.reproduction",
                                 description=__doc__.split("\n")[0])
    ap.add_argument("results_dir")
    ap.add_argument("--out", default="analysis/reproduction")
    args = ap.parse_args(argv)
    d, out = args.results_dir, args.out
    os.makedirs(out, exist_ok=True)

    def have(name):
        p = os.path.join(d, name)
        if not os.path.exists(p):
            print(f"\n(skipped: {p} not found)")
        return p if os.path.exists(p) else None

    try:
        if (p := have("reproduce-table1.nc")):
            table1_section(p, out)
        if (p := have("reproduce-final-distance.nc")):
            final_distance_section(p, out, "final_distance_narrow_shallow")
        if (p := have("reproduce-final-distance-default.nc")):
            final_distance_section(p, out, "final_distance_default")
        if (p := have("reproduce-depth.nc")):
            depth_section(p, out)
        if (p := have("phase-diagram.nc")):
            phase_section(p, out)
        p64, p32 = have("reproduce-table1.nc"), have("reproduce-precision.nc")
        if p64 and p32:
            precision_section(p64, p32, out)
    except ResultsFileError as exc:
        print(f"analysis.reproduction: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
