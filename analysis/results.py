"""Results files of ``repsweep run JOB --out FILE.nc``: labelled N-D arrays, a per-architecture
x gain table and the lazy/rich figure (final distance against gain).

The file holds one entry per finished trial along dimension ``trial`` (with ``stage`` and
``epoch`` when the job recorded all layers / trajectories); :func:`load` turns it into arrays
over the grid's axes. Names follow NOTES.md: ``dh2`` = ||dh||² = ||h(x2)-h(x1)||² at the
observed layer, ``dyhat2`` the squared *predicted* output difference, ``target_gap`` the data's
|y2-y1| (never the prediction)."""
import os

import numpy as np
import xarray as xr

NETWORK_AXES = ["arch", "gain", "input_gap", "target_gap", "seed"]
THEORY_AXES = ["rate_h", "rate_y", "dh2_initial", "dyhat2_initial", "w_initial", "input_gap",
               "target_gap"]
# per-trial identity variables that are not axes once unstacked
_IDENTITY = ["block", "arch", "gain", "seed"]
CONVERGE_LOSS = 1e-3  # the authors' threshold (repsweep's default converge_loss)
# The authors' fixed gaps (NOTES.md: their code's dx2 = 1, dy2 = 0.5): the "reference" gaps
# at which the final-distance study fits the rates it averages.
REF_INPUT_GAP = 1.0
REF_TARGET_GAP = float(np.sqrt(0.5))


class ResultsFileError(ValueError):
    """A file that is not a readable repsweep results (or trial) file; the message names
    it. ``python3 -m analysis`` prints it and exits with status 2."""


def open_results(path):
    """The raw results file, loaded into memory, dimension ``trial``. Raises ValueError
    (ResultsFileError) naming the file when it is not a readable repsweep run results file."""
    path = os.fspath(path)
    try:
        with xr.open_dataset(path) as ds:
            ds = ds.load()
    except Exception as exc:  # netCDF4/HDF5 raise several types for a corrupt file
        raise ResultsFileError(f"{path}: not a readable netCDF file ({exc})") from exc
    missing = [v for v in ["trial", "block", "status"] + NETWORK_AXES if v not in ds.variables]
    if missing or "job_name" not in ds.attrs or "arch_names" not in ds.attrs:
        raise ResultsFileError(f"{path}: not a `repsweep run` results file (missing "
                         f"{', '.join(missing) or 'the job_name or arch_names attribute'})")
    ds.attrs["path"] = path
    return _arch_names(ds)


def _arch_names(ds):
    """The file's ``arch`` is an index into the global ``arch_names`` (its CF flag table;
    missing for theory-only trials): replace it by the names, "" for theory-only trials."""
    if ds["arch"].dtype.kind in "US":
        return ds
    names = np.array(str(ds.attrs["arch_names"]).split(",") + [""])
    index = ds["arch"].values
    index = np.where(np.isfinite(index), index, -1).astype(int)
    attrs = {k: v for k, v in ds["arch"].attrs.items() if k in ("long_name",)}
    return ds.assign_coords(arch=("trial", names[index], attrs))


def is_network(ds):
    """Per trial of a flat results Dataset: True for network trials (theory-only trials
    have no architecture)."""
    return ds["arch"].values != ""


def _unstack(flat, axes, path):
    """Index the trials by `axes` and unstack them into dimensions; combinations not in
    the file become NaN. The grid index stays as variable ``grid_index``."""
    flat = flat.assign(grid_index=("trial", flat["trial"].values.astype(float)))
    flat = flat.drop_vars("trial")
    keys = list(zip(*(flat[a].values.tolist() for a in axes)))
    if len(set(keys)) != len(keys):
        # the same coordinates in two blocks: keep the blocks apart
        axes = ["block"] + axes
    else:
        flat = flat.drop_vars([v for v in _IDENTITY if v in flat.variables and v not in axes])
    # integers become floats first: a combination not in the file is NaN
    ints = [v for v in flat.data_vars if flat[v].dtype.kind in "iub" and v not in axes]
    flat = flat.assign({v: flat[v].astype(float) for v in ints})
    try:
        return flat.set_index(trial=axes).unstack("trial")
    except ValueError as exc:
        raise ResultsFileError(f"{path}: cannot index the trials by {axes} ({exc})") from exc


def load(path, theory=False):
    """Open a ``repsweep run`` results file as a labelled xarray Dataset.

    Returns, for ``theory=False`` (default), the network trials with dimensions
    ``(arch, gain, input_gap, target_gap, seed)``, plus ``stage`` when the job recorded all
    layers (``stage_rate_h``, ``stage_dh2_final``, ...) and ``epoch`` when it recorded
    trajectories (``dh2_traj``, ...; ``epoch`` holds the recorded epoch indices). Each axis
    holds the values present in the file; a combination with no trial in the file (not yet
    run, or not in the job's grid at all) is NaN (integer variables such as ``status`` and
    ``converged`` become floats for that) and ``ran`` (bool) is False there, so a partial
    file of an interrupted run loads the same way. If two blocks share coordinates,
    ``block`` is a leading dimension. ``grid_index`` is each trial's index in the job's grid.
    The attributes ``trials_total`` and ``trials_done`` say how much of the job had run.

    With ``theory=True`` returns the theory-only trials instead, with dimensions
    ``(rate_h, rate_y, dh2_initial, dyhat2_initial, w_initial, input_gap, target_gap)``
    (their given rates and initial state; a w_0 derived from the target gap makes that cross
    sparse: NaN off its diagonal); their results are ``dh2_final`` etc. (the ODE's)
    and ``A_high``, ``A_low``, ``dh2_predicted`` (Eq. 10-11).

    The file's global attributes (job_name, job_text, ...) are kept, plus ``path``.
    Raises ValueError naming the file for a non-repsweep or corrupt netCDF file, or when it
    holds no trial of the requested kind."""
    ds = open_results(path)
    path = ds.attrs["path"]
    net = is_network(ds)
    flat = ds.isel(trial=np.flatnonzero(~net if theory else net))
    if flat.sizes["trial"] == 0:
        kind = "theory-only" if theory else "network"
        raise ResultsFileError(f"{path}: no {kind} trials in this file")
    if theory:
        flat = flat.drop_vars([v for v in flat.data_vars
                               if "stage" in flat[v].dims or "epoch" in flat[v].dims])
        flat = flat.drop_vars([d for d in ("stage", "epoch") if d in flat.variables])
    out = _unstack(flat, THEORY_AXES if theory else NETWORK_AXES, path)
    out["ran"] = out["grid_index"].notnull()
    out["ran"].attrs["long_name"] = "a trial at these coordinates is in the file"
    out.attrs = dict(ds.attrs)
    return out


def network_trials(ds):
    """The trials that ran, from the N-D Dataset of :func:`load`, as one dimension
    ``trial`` (ordered by the grid axes), with ``arch``, ``gain``, ``input_gap``,
    ``target_gap``, ``seed`` (and ``block``) as per-trial coordinates; per-stage and
    per-epoch variables become (trial, stage) and (trial, epoch)."""
    dims = [d for d in ["block"] + NETWORK_AXES if d in ds.dims]
    flat = ds.stack(trial=dims).reset_index("trial")
    flat = flat.isel(trial=np.flatnonzero(flat["ran"].values))
    return flat.transpose("trial", ...)


# --- the `sweep` command: table and figure ---

def _flat_network(path):
    ds = open_results(path)
    net = ds.isel(trial=np.flatnonzero(is_network(ds)))
    if net.sizes["trial"] == 0:
        raise ResultsFileError(f"{ds.attrs['path']}: no network trials in this file")
    return net


def table(path):
    """Rows (strings) of the per-architecture x gain summary of a results file: trials ok /
    failed (status != 0) / converged, and medians over them of the final dh2, the Eq. 10
    prediction and the relative fit loss."""
    net = _flat_network(path)
    df = net[["arch", "gain", "status", "converged", "dh2_final", "dh2_predicted",
              "fit_loss_rel"]].to_dataframe()
    head = (f"{'arch':<12} {'gain':>6} {'ok':>4} {'failed':>6} {'conv':>4} "
            f"{'dh2_final':>10} {'dh2_pred':>10} {'fit_rel':>9}")
    rows = [head]
    for (arch, gain), g in df.groupby(["arch", "gain"], sort=True):
        rows.append(f"{arch:<12} {gain:>6.3g} {int((g.status == 0).sum()):>4} "
                    f"{int((g.status != 0).sum()):>6} {int(g.converged.sum()):>4} "
                    f"{g.dh2_final.median():>10.4g} {g.dh2_predicted.median():>10.4g} "
                    f"{g.fit_loss_rel.median():>9.2e}")
    return rows


def plot_final_distance(path, out_dir, stem="sweep_final_distance"):
    """Final dh2 against gain (log y): measured per seed (points), the Eq. 10 prediction
    (crosses) and the median A_low (dashed), one colour per architecture; trials that did not
    converge (final loss >= 1e-3) are left out and counted in the title. Writes PNG and PDF
    into out_dir and returns their paths."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    net = _flat_network(path)
    df = net[["arch", "gain", "seed", "loss_final", "status", "dh2_final", "dh2_predicted",
              "A_low"]].to_dataframe()
    kept = df[(df.loss_final < CONVERGE_LOSS) & (df.status == 0)]
    left = df.drop(kept.index)
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (arch, g) in enumerate(kept.groupby("arch", sort=True)):
        c = colours[i % len(colours)]
        ax.scatter(g.gain, g.dh2_final, s=18, color=c, label=f"{arch}: measured (per seed)")
        ax.scatter(g.gain, g.dh2_predicted, s=40, marker="x", color=c,
                   label=f"{arch}: Eq. 10 prediction")
        a_low = g.groupby("gain").A_low.median()
        ax.plot(a_low.index, a_low.values, "--", color=c, lw=1,
                label=f"{arch}: A_low (median, Eq. 11)")
    ax.set_yscale("log")
    ax.set_xlabel("initial weight gain")
    ax.set_ylabel("final ||dh||² = ||h(x2)-h(x1)||² (observed layer)")
    if len(left):
        by_gain = ", ".join(f"gain {gain:.3g}: {n}" for gain, n in
                            left.groupby("gain").size().items())
        note = (f"left out: {len(left)} of {len(df)} trials not converged "
                f"(final loss >= {CONVERGE_LOSS:g}) or failed ({by_gain})")
    else:
        note = f"all {len(df)} trials converged (final loss < {CONVERGE_LOSS:g})"
    ax.set_title(f"lazy vs rich: final distance against gain\n{note}", fontsize=9)
    if len(kept):
        ax.legend(fontsize=7)
    fig.tight_layout()
    os.makedirs(out_dir, exist_ok=True)
    paths = [os.path.join(out_dir, f"{stem}.{ext}") for ext in ("png", "pdf")]
    for p in paths:
        fig.savefig(p, dpi=150)
    plt.close(fig)
    return paths
