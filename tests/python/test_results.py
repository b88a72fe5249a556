"""Per-stage results and trajectories in `repsweep run` results files, and the analysis
package's view of them: analysis.load (labelled N-D arrays, NaN for trials not run, a clear
error for other files) and `python3 -m analysis sweep` (table and figure)."""
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from sweep_util import REPO_ROOT, TARGET_GAP, env, read_results, run, write_job

sys.path.insert(0, str(REPO_ROOT))
import analysis  # noqa: E402

GAINS, LRS, SEEDS, EPOCHS, STRIDE = (0.8, 1.2), (0.02, 0.0025), (0, 1), 200, 7
RECORD = f"all_layers = true; trajectory_stride = {STRIDE};"


@pytest.fixture(scope="module")
def layered(repsweep_bin, tmp_path_factory):
    """The narrow net, 2 gains x 2 seeds, 200 epochs, all layers, trajectories every 7th."""
    d = tmp_path_factory.mktemp("layered")
    job = write_job(d / "layered.cfg", name="layered", gains=GAINS, lrs=LRS, seeds=SEEDS,
                    epochs=EPOCHS, record=RECORD)
    out = d / "layered.nc"
    proc = run(repsweep_bin, job, out)
    assert proc.returncode == 0, proc.stderr
    return job, out


def trial_of(repsweep_bin, tmp_path, gain, lr, seed):
    """`repsweep trial --all-layers --out` and --json at the same coordinates."""
    out = tmp_path / f"trial_{gain}_{seed}.nc"
    args = [repsweep_bin, "trial", "--arch", "narrow", "--gain", repr(gain), "--lr", repr(lr),
            "--epochs", str(EPOCHS), "--input-gap", "1", "--target-gap", repr(TARGET_GAP),
            "--seed", str(seed), "--all-layers", "--out", str(out), "--json"]
    proc = subprocess.run(args, capture_output=True, text=True, env=env(), timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout), read_results(out)


def test_stage_and_trajectory_shapes(layered):
    r = read_results(layered[1])
    n_net = len(GAINS) * len(SEEDS)
    n_epochs = -(-EPOCHS // STRIDE)
    assert list(r["epoch"]) == list(range(0, EPOCHS, STRIDE)), r["epoch"]
    stages = len(r["stage"])
    assert stages == 20, stages  # the narrow net: 20 hidden layers
    for name in ("stage_rate_h", "stage_rate_y", "stage_fit_loss_rel", "stage_dh2_final",
                 "stage_dh2_predicted"):
        assert r[name].shape == (len(r["trial"]), stages), (name, r[name].shape)
    for name in ("dh2_traj", "dyhat2_traj", "w_traj", "loss_traj", "dh2_theory_traj",
                 "dyhat2_theory_traj", "w_theory_traj", "loss_theory_traj"):
        assert r[name].shape == (len(r["trial"]), n_epochs), (name, r[name].shape)
    assert r["dh2_stage_traj"].shape == (len(r["trial"]), n_epochs, stages)
    net = r["arch"] >= 0
    assert net.sum() == n_net
    # theory-only trials have no stages or trajectories: NaN
    assert np.isnan(r["dh2_traj"][~net]).all() and np.isnan(r["stage_rate_h"][~net]).all()
    assert np.isnan(r["dh2_theory_traj"][~net]).all()
    assert np.isfinite(r["dh2_traj"][net]).all()
    # every network trial here was fitted: its theory curves are finite and start at the
    # measured epoch-0 state (Eq. 7's initial condition)
    assert np.isfinite(r["dh2_theory_traj"][net]).all()
    for name in ("dh2", "dyhat2", "w"):
        np.testing.assert_array_equal(r[f"{name}_theory_traj"][net, 0], r[f"{name}_traj"][net, 0])


def test_stage_and_trajectory_equal_repsweep_trial(repsweep_bin, layered, tmp_path):
    r = read_results(layered[1])
    for gain, lr in zip(GAINS, LRS):
        for seed in SEEDS:
            (i,) = np.flatnonzero((r["gain"] == gain) & (r["seed"] == seed))
            js, tr = trial_of(repsweep_bin, tmp_path, gain, lr, seed)
            epochs = np.arange(0, EPOCHS, STRIDE)
            for name in ("dh2", "dyhat2", "w", "loss"):
                np.testing.assert_array_equal(r[f"{name}_traj"][i], tr[name][epochs],
                                              err_msg=f"{name} gain {gain} seed {seed}")
                np.testing.assert_array_equal(r[f"{name}_theory_traj"][i],
                                              tr[f"{name}_theory"][epochs],
                                              err_msg=f"{name}_theory gain {gain} seed {seed}")
            np.testing.assert_array_equal(r["dh2_stage_traj"][i], tr["dh2_stage"][epochs],
                                          err_msg=f"dh2_stage gain {gain} seed {seed}")
            for key in ("rate_h", "rate_y", "fit_loss_rel", "dh2_final", "dh2_predicted"):
                want = np.array([s[key] for s in js["stages"]], dtype=float)
                np.testing.assert_allclose(r[f"stage_{key}"][i], want, rtol=1e-9, atol=0,
                                           err_msg=f"stage {key} gain {gain} seed {seed}")


def test_load_dims_and_coords(layered):
    ds = analysis.load(layered[1])
    assert dict(ds.sizes) == {"arch": 1, "gain": 2, "input_gap": 1, "target_gap": 1, "seed": 2,
                              "stage": 20, "epoch": -(-EPOCHS // STRIDE)}, dict(ds.sizes)
    assert list(ds["gain"].values) == list(GAINS)
    assert list(ds["seed"].values) == list(SEEDS)
    assert list(ds["arch"].values) == ["narrow"]
    assert set(ds["dh2_traj"].dims) == {"epoch", "arch", "gain", "input_gap", "target_gap",
                                        "seed"}, ds["dh2_traj"].dims
    assert np.isfinite(ds["dh2_final"]).all()
    flat = read_results(layered[1])
    (i,) = np.flatnonzero((flat["gain"] == 1.2) & (flat["seed"] == 1))
    got = ds["dh2_final"].sel(arch="narrow", gain=1.2, seed=1).squeeze()
    assert float(got) == flat["dh2_final"][i]
    th = analysis.load(layered[1], theory=True)
    assert {"rate_h", "rate_y", "dh2_initial", "target_gap"} <= set(th.dims)
    assert "stage" not in th.dims and "epoch" not in th.dims


def test_load_partial_file_has_nan_for_trials_not_run(repsweep_bin, tmp_path):
    """Stop a run with SIGUSR1 after its first chunk of one trial: the file is partial."""
    job = write_job(tmp_path / "partial.cfg", name="partial", gains=GAINS, lrs=LRS,
                    seeds=SEEDS, epochs=3000, theory=False, record=RECORD)
    out = tmp_path / "partial.nc"
    journal = Path(str(out) + ".journal")
    cmd = [repsweep_bin, "run", str(job), "--out", str(out), "--chunk", "1"]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env=env())
    deadline = time.time() + 120
    while time.time() < deadline and (not journal.exists() or journal.stat().st_size <= 128):
        time.sleep(0.01)
    proc.send_signal(signal.SIGUSR1)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 3, err
    flat = read_results(out)
    n_done = len(flat["trial"])
    assert 1 <= n_done < len(GAINS) * len(SEEDS), err
    ds = analysis.load(out)
    finite = np.isfinite(ds["dh2_final"].values)
    assert finite.sum() == n_done
    # NaN exactly where no trial ran: the status and the trajectories too
    not_run = ~np.isfinite(ds["dh2_final"])
    assert int(np.isnan(ds["status"]).sum()) == ds["status"].size - n_done
    assert bool(np.isnan(ds["dh2_traj"].where(not_run, 0.0)).sum() ==
                not_run.sum() * ds.sizes["epoch"])


def test_load_refuses_other_files(tmp_path, layered):
    text = tmp_path / "notnc.nc"
    text.write_text("not netCDF\n")
    with pytest.raises(ValueError, match="notnc.nc"):
        analysis.load(text)
    import xarray as xr
    other = tmp_path / "other.nc"
    xr.Dataset({"x": ("t", [1.0, 2.0])}).to_netcdf(other)
    with pytest.raises(ValueError, match="other.nc.*not a `repsweep run` results file"):
        analysis.load(other)
    corrupt = tmp_path / "corrupt.nc"
    data = Path(layered[1]).read_bytes()
    corrupt.write_bytes(data[: len(data) // 3])
    with pytest.raises(ValueError, match="corrupt.nc"):
        analysis.load(corrupt)


def test_sweep_command_writes_table_and_figure(repsweep_bin, tmp_path):
    """A quickstart-like run (narrow net, gains x seeds, a theory block), then the command."""
    job = write_job(tmp_path / "qs.cfg", name="qs", gains=(0.8, 1.05, 1.4),
                    lrs=(0.02, 0.005, 0.001), seeds=(0, 1), epochs=600,
                    record="trajectory_stride = 50;")
    out = tmp_path / "qs.nc"
    proc = run(repsweep_bin, job, out)
    assert proc.returncode == 0, proc.stderr
    figs = tmp_path / "figs"
    proc = subprocess.run([sys.executable, "-m", "analysis", "sweep", str(out), "--out",
                           str(figs)], capture_output=True, text=True, cwd=REPO_ROOT,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].split()[:6] == ["arch", "gain", "ok", "failed", "conv", "dh2_final"], lines
    rows = [ln for ln in lines[1:] if ln.startswith("narrow")]
    assert len(rows) == 3, proc.stdout
    assert all(int(r.split()[2]) + int(r.split()[3]) == 2 for r in rows), rows
    for ext in ("png", "pdf"):
        f = figs / f"sweep_final_distance.{ext}"
        assert f.is_file() and f.stat().st_size > 1000, f
    bad = subprocess.run([sys.executable, "-m", "analysis", "sweep", str(job)],
                         capture_output=True, text=True, cwd=REPO_ROOT, timeout=60)
    assert bad.returncode == 2 and "qs.cfg" in bad.stderr, bad.stderr
