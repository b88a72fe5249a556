"""Single-trial files (``repsweep trial --out``): a table and a dynamics-vs-theory figure.

Names follow NOTES.md: ``dh2`` is the squared representational distance at the observed layer,
``dyhat2`` the squared *predicted* output difference (never the target gap), ``w`` the output
alignment."""
import glob
import os

import xarray as xr

from .results import ResultsFileError


def load_trials(directory):
    """Every ``*.nc`` trial file in ``directory`` as a list of xarray Datasets, sorted by
    (arch, gain, seed). Raises ValueError naming a file that is not a repsweep trial file."""
    paths = sorted(glob.glob(os.path.join(directory, "*.nc")))
    if not paths:
        raise ResultsFileError(f"{directory}: no *.nc trial files (expected a directory of "
                               f"`repsweep trial --out` files)")
    trials = []
    for path in paths:
        try:
            ds = xr.open_dataset(path)
        except Exception as exc:  # netCDF4/HDF5 raise several types for a corrupt file
            raise ResultsFileError(f"{path}: not a readable netCDF file ({exc})") from exc
        if "dh2" not in ds or "arch" not in ds.attrs:
            raise ResultsFileError(f"{path}: not a repsweep trial file (no dh2 variable / "
                                   "arch attribute)")
        ds.attrs["path"] = path
        trials.append(ds)
    trials.sort(key=lambda d: (d.attrs["arch"], float(d.attrs["gain"]), int(d.attrs["seed"])))
    return trials


def table(trials):
    """Rows of the per-trial summary as strings."""
    head = (f"{'arch':<10} {'gain':>5} {'seed':>4} {'conv':>4} {'epochs':>6} {'loss_final':>10} "
            f"{'dh2_final':>10} {'dh2_pred':>10} {'pred/meas':>9} {'fit_rel':>8} "
            f"{'rate_h':>9} {'rate_y':>9} {'A_high':>9} {'A_low':>9}")
    rows = [head]
    for d in trials:
        v = {k: float(d[k]) for k in ("loss_final", "dh2_final", "dh2_predicted", "fit_loss_rel",
                                      "rate_h", "rate_y", "A_high", "A_low")}
        rows.append(
            f"{d.attrs['arch']:<10} {float(d.attrs['gain']):>5.2f} {int(d.attrs['seed']):>4} "
            f"{'yes' if int(d['converged']) else 'NO':>4} {int(d['epochs_run']):>6} "
            f"{v['loss_final']:>10.2e} {v['dh2_final']:>10.4g} {v['dh2_predicted']:>10.4g} "
            f"{v['dh2_predicted'] / v['dh2_final']:>9.3f} {v['fit_loss_rel']:>8.2e} "
            f"{v['rate_h']:>9.3g} {v['rate_y']:>9.3g} {v['A_high']:>9.3g} {v['A_low']:>9.3g}")
    return rows


def plot_dynamics(trials, out_dir, stem="trials_dynamics"):
    """dh2, dyhat2 and w against epochs, measured (points) and the fitted theory (lines), one
    row per gain (seed 0 of each gain); writes PNG and PDF and returns their paths."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    first = {}
    for d in trials:
        first.setdefault((d.attrs["arch"], float(d.attrs["gain"])), d)
    keys = sorted(first)
    fig, axes = plt.subplots(len(keys), 3, figsize=(11, 2.3 * len(keys)), squeeze=False,
                             sharex="row")
    labels = {"dh2": r"$\|dh\|^2$ (observed layer)",
              "dyhat2": r"$\|d\hat y\|^2$ (predicted output diff.)",
              "w": r"$w$ (output alignment)"}
    for row, key in enumerate(keys):
        d = first[key]
        epoch = d["epoch"].values
        step = max(1, len(epoch) // 60)
        for col, name in enumerate(("dh2", "dyhat2", "w")):
            ax = axes[row][col]
            ax.plot(epoch[::step], d[name].values[::step], "o", ms=2.5, label="network")
            ax.plot(epoch, d[name + "_theory"].values, "-", lw=1.2, label="theory (fitted)")
            ax.set_title(f"{key[0]} gain {key[1]:g}: {labels[name]}", fontsize=8)
            if row == len(keys) - 1:
                ax.set_xlabel("epoch")
            if row == 0 and col == 0:
                ax.legend(fontsize=7)
    fig.tight_layout()
    paths = []
    for ext in ("png", "pdf"):
        path = os.path.join(out_dir, f"{stem}.{ext}")
        fig.savefig(path, dpi=110)
        paths.append(path)
    plt.close(fig)
    return paths
