"""The analysis commands on awkward inputs: a sweep stopped with SIGTERM that also holds
diverged trials (failed and missing trials are loaded, masked and counted), a truncated
results file, a foreign netCDF file and a file without network trials (a clear error naming
the file on stderr, exit status 2, no traceback)."""
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from analysis_util import REF_GAP, analysis_cli, block, write_job
from sweep_util import JOURNAL_HEADER, JOURNAL_SLOT, REPO_ROOT, env, read_results, run_cmd

sys.path.insert(0, str(REPO_ROOT))
from analysis import load, measures  # noqa: E402

# gain 3 with lr 2 diverges at once (status 1); gain 1 with lr 0.02 trains. The diverging
# gain comes first in the grid, so a single process reaches it before the signal.
GAINS, LRS, SEEDS = (3.0, 1.0), (2.0, 0.02), (0, 1, 2)
TARGETS = (REF_GAP, 1.0)
STOP_AFTER = 8  # records in the journal before SIGTERM (of 12)


@pytest.fixture(scope="module")
def stopped(repsweep_bin, tmp_path_factory):
    """A run of 12 trials stopped by SIGTERM after >= STOP_AFTER had been journaled."""
    d = tmp_path_factory.mktemp("stopped")
    job = write_job(d / "stopped.cfg", "stopped",
                    [block("net", GAINS, LRS, TARGETS, SEEDS, epochs=3000)])
    out = d / "stopped.nc"
    journal = Path(str(out) + ".journal")
    proc = subprocess.Popen(run_cmd(repsweep_bin, job, out, "--chunk", "1"),
                            stderr=subprocess.PIPE, text=True, env=env())
    deadline = time.time() + 120
    while time.time() < deadline and (not journal.exists() or journal.stat().st_size <
                                      JOURNAL_HEADER + STOP_AFTER * JOURNAL_SLOT):
        time.sleep(0.005)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 3, err  # stopped by a signal: partial results written
    r = read_results(out)
    n = len(r["trial"])
    assert STOP_AFTER <= n < len(GAINS) * len(TARGETS) * len(SEEDS), \
        f"{n} trials done: the stop came too late to leave trials missing\n{err}"
    assert (r["status"] == 1).sum() == len(TARGETS) * len(SEEDS), r["status"]
    return out


def test_load_masks_missing_trials(stopped):
    r = read_results(stopped)
    ds = load(stopped, unstack=True)
    assert int(ds["ran"].sum()) == len(r["trial"]) == ds.attrs["trials_done"]
    assert ds.attrs["trials_total"] == len(GAINS) * len(TARGETS) * len(SEEDS)
    assert int(ds["status"].notnull().sum()) == len(r["trial"])
    assert np.isnan(ds["dh2_final"].where(~ds["ran"])).all()
    # diverged trials ran and are not masked; they have no fit
    diverged = ds["status"] == 1
    assert int(diverged.sum()) == 6 and bool(ds["rate_h"].where(diverged).isnull().all())


def test_summary_counts_failed_and_missing(stopped):
    r = read_results(stopped)
    proc = analysis_cli("summary", stopped)
    assert proc.returncode == 0, proc.stderr
    total = len(GAINS) * len(TARGETS) * len(SEEDS)
    done = len(r["trial"])
    assert f"{done} of {total} trials in the file ({total - done} not run)" in proc.stdout
    rows = {float(ln.split()[1]): ln.split() for ln in proc.stdout.splitlines()
            if ln.startswith("small ")}
    for g in GAINS:
        m = r["gain"] == g
        assert [int(x) for x in rows[g][2:5]] == [m.sum(), (m & (r["status"] == 0)).sum(),
                                                  (m & (r["status"] != 0)).sum()], rows[g]
    assert rows[3.0][3:5] == ["0", "6"], rows[3.0]


def test_figures_on_a_stopped_run_count_what_they_leave_out(stopped, tmp_path):
    r = read_results(stopped)
    proc = analysis_cli("figures", stopped, "--out", tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "fig_final_distance.png").is_file(), proc.stdout
    assert "skipped dynamics: no trajectories" in proc.stdout
    # Fig. 5: gain 3 has no calibration trials (all diverged); its trials at the other
    # target gap are compared and all failed. Gain 1 is compared at target gap 1 if the
    # run got there, else in-sample at the fixed gaps (the documented rule).
    fd = measures.final_distance(load(stopped))
    other = (r["target_gap"] == 1.0)
    assert fd["n_failed"] == int((other & (r["status"] == 1)).sum()) == 3
    g1 = (r["gain"] == 1.0) & (other if (other & (r["gain"] == 1.0)).any() else ~other)
    assert fd["n_kept"] + fd["n_not_converged"] == int(g1.sum()) > 0
    assert fd["n_kept"] == int((g1 & (r["converged"] == 1)).sum())
    in_sample = {g["gain"]: g["in_sample"] for g in fd["groups"]}
    assert in_sample == {3.0: False, 1.0: not (other & (r["gain"] == 1.0)).any()}
    m = f"{fd['n_failed']} failed"
    assert m in proc.stdout, proc.stdout


def _assert_clear_error(proc, name, *words):
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.startswith("analysis: ") and name in proc.stderr, proc.stderr
    for w in words:
        assert w in proc.stderr, proc.stderr


def test_unwritable_out_is_a_clear_error(stopped, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    _assert_clear_error(analysis_cli("figures", stopped, "--out", blocker / "figs"),
                        str(blocker), "--out")


def test_only_a_figure_the_file_cannot_give_is_an_error(stopped, tmp_path):
    """Asked for by name, a skipped figure is an error (exit 2), not a silent success."""
    proc = analysis_cli("figures", stopped, "--out", tmp_path, "--only", "dynamics")
    assert "skipped dynamics: no trajectories" in proc.stdout, proc.stdout
    _assert_clear_error(proc, Path(stopped).name, "cannot draw dynamics")


def test_truncated_file_is_a_clear_error(stopped, tmp_path):
    data = Path(stopped).read_bytes()
    for frac in (0.5, 0.9):
        bad = tmp_path / f"truncated_{frac}.nc"
        bad.write_bytes(data[: int(len(data) * frac)])
        for cmd in (["figures", bad, "--out", tmp_path], ["summary", bad]):
            _assert_clear_error(analysis_cli(*cmd), bad.name, "not a readable netCDF file")


def test_foreign_netcdf_is_a_clear_error(tmp_path):
    import netCDF4

    foreign = tmp_path / "foreign.nc"
    with netCDF4.Dataset(foreign, "w") as nc:
        nc.createDimension("time", 3)
        v = nc.createVariable("temperature", "f8", ("time",))
        v[:] = [1.0, 2.0, 3.0]
        nc.title = "not repsweep"
    for cmd in (["figures", foreign, "--out", tmp_path], ["summary", foreign]):
        _assert_clear_error(analysis_cli(*cmd), "foreign.nc",
                            "not a `repsweep run` results file")


def test_theory_only_file_is_a_clear_error(repsweep_bin, tmp_path):
    job = write_job(tmp_path / "th.cfg", "th", [
        '  { name = "t"; theory_only = true; rate_h = [1e-3]; rate_y = [1e-3]; dh2_0 = [0.5];'
        ' dyhat2_0 = [0.01]; input_gaps = [1.0]; target_gaps = [0.5]; epochs = 100; }'])
    out = tmp_path / "th.nc"
    proc = subprocess.run(run_cmd(repsweep_bin, job, out), capture_output=True, text=True,
                          env=env(), timeout=60)
    assert proc.returncode == 0, proc.stderr
    _assert_clear_error(analysis_cli("figures", out, "--out", tmp_path), "th.nc",
                        "no network trials")
