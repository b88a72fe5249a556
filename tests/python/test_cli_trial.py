"""Short tests of `repsweep trial` from the command line: help, option errors, --json,
reproducibility by seed, and the --out netCDF file. Cheap runs only (--arch narrow)."""
import math
import os

import numpy as np
import pytest

REQUIRED_KEYS = [
    "dh2_initial", "dyhat2_initial", "w_initial", "dh2_final", "loss_final", "converged",
    "epochs_run", "rate_h", "rate_y", "fit_loss", "fit_loss_rel", "A_high", "A_low",
    "dh2_predicted", "train_seconds", "fit_seconds", "status", "fit_rate_at_floor", "rate_ybar",
]
# measurements of the run, not results of the trial
TIMING_KEYS = {"train_seconds", "fit_seconds", "peak_memory_bytes"}
CHEAP = ("--arch", "narrow", "--epochs", "300")


@pytest.fixture(scope="module")
def cheap_json(run_json):
    return run_json(*CHEAP)


def test_help_exits_0_and_mentions_arch(run_repsweep):
    proc = run_repsweep("trial", "--help", check=False)
    assert proc.returncode == 0, proc.stderr
    assert "--arch" in proc.stdout


def test_unknown_arch_exits_2_naming_it(run_repsweep):
    proc = run_repsweep("trial", "--arch", "no_such_arch_xyz", "--epochs", "1", check=False)
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "no_such_arch_xyz" in proc.stderr


@pytest.mark.parametrize("flag,value", [
    ("--gain", "abc"), ("--gain", "-1"), ("--lr", "0"), ("--epochs", "1.5"),
    ("--epochs", "0"), ("--seed", "x"), ("--threads", "0"), ("--input-gap", "nan"),
])
def test_bad_number_exits_2_naming_flag(run_repsweep, flag, value):
    proc = run_repsweep("trial", *CHEAP, flag, value, check=False)
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert flag in proc.stderr, proc.stderr
    assert proc.stdout == "", "nothing should be trained or printed on a bad option"


@pytest.mark.parametrize("flag", ["--out", "--export-weights"])
def test_uncreatable_output_exits_2_before_training(run_repsweep, tmp_path, flag):
    """A missing directory is found before the training (whose result would be lost), and
    named as such, not as netCDF's 'Permission denied'."""
    target = tmp_path / "no" / "such" / "t.nc"
    proc = run_repsweep("trial", "--arch", "narrow", "--epochs", "20000", flag, str(target),
                        "--json", check=False)
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert f"{flag}: {target}: cannot create: No such file or directory" in proc.stderr, \
        proc.stderr
    assert proc.stdout == "", "nothing should be trained or printed"


def test_out_through_a_symlink_writes_its_target(run_repsweep, tmp_path):
    """The check before training must not replace a (dangling) symlink by a file."""
    (tmp_path / "target").mkdir()
    link = tmp_path / "link.nc"
    link.symlink_to(tmp_path / "target" / "res.nc")
    run_repsweep("trial", *CHEAP, "--no-fit", "--out", str(link))
    assert link.is_symlink() and (tmp_path / "target" / "res.nc").stat().st_size > 0


def test_out_that_is_a_fifo_exits_2_without_waiting(run_repsweep, tmp_path):
    fifo = tmp_path / "f.nc"
    os.mkfifo(fifo)
    proc = run_repsweep("trial", *CHEAP, "--out", str(fifo), check=False, timeout=20)
    assert proc.returncode == 2 and "not a regular file" in proc.stderr, proc.stderr


def test_bad_precision_exits_2(run_repsweep):
    proc = run_repsweep("trial", *CHEAP, "--precision", "float16", check=False)
    assert proc.returncode == 2
    assert "--precision" in proc.stderr


def test_json_has_required_keys(cheap_json):
    missing = [k for k in REQUIRED_KEYS if k not in cheap_json]
    assert not missing, f"missing keys {missing} in {sorted(cheap_json)}"
    assert cheap_json["status"] == "ok", cheap_json
    assert cheap_json["epochs_run"] == 300
    assert isinstance(cheap_json["converged"], bool)
    for k in ("dh2_initial", "dyhat2_initial", "dh2_final", "loss_final", "train_seconds",
              "fit_seconds"):
        v = cheap_json[k]
        assert isinstance(v, (int, float)) and math.isfinite(v) and v >= 0, (k, v)
    assert cheap_json["dh2_initial"] > 0
    # w_initial = dyhat2 - dyhat * dy and dyhat2 = dyhat^2 are consistent
    dy = cheap_json.get("target_gap", 0.7071067811865476)
    dyh = math.sqrt(cheap_json["dyhat2_initial"])
    w = cheap_json["w_initial"]
    assert min(abs(w - (dyh * dyh - s * dyh * dy)) for s in (1, -1)) <= 1e-12 * (1 + abs(w))


def test_same_seed_is_reproducible(cheap_json, run_json):
    again = run_json(*CHEAP)
    assert set(again) == set(cheap_json)
    diff = {k: (cheap_json[k], again[k]) for k in cheap_json
            if k not in TIMING_KEYS and cheap_json[k] != again[k]}
    assert not diff, f"same seed, different results: {diff}"


def test_different_seeds_differ(cheap_json, run_json):
    other = run_json(*CHEAP, "--seed", "1")
    if "seed" in other:
        assert other["seed"] == 1
    assert other["dh2_initial"] != cheap_json["dh2_initial"]


def test_out_file(run_repsweep, tmp_path):
    import json

    import netCDF4
    import xarray as xr

    path = tmp_path / "t.nc"
    proc = run_repsweep("trial", *CHEAP, "--no-fit", "--json", "--out", path)
    res = json.loads(proc.stdout)
    n = res["epochs_run"]
    with netCDF4.Dataset(path) as nc:
        assert nc.dimensions["epoch"].size == n
        for v in ("dh2", "dyhat2", "w", "loss", "yhat_mean"):
            assert nc.variables[v].dimensions == ("epoch",), v
    ds = xr.open_dataset(path)
    try:
        assert ds.sizes["epoch"] == n
        assert float(ds["dh2"][0]) == res["dh2_initial"]
        assert float(ds["dh2"][-1]) == res["dh2_final"]
        assert float(ds["loss"][-1]) == res["loss_final"]
        assert np.all(np.isfinite(ds["loss"].values))
    finally:
        ds.close()


def test_out_all_layers(run_repsweep, tmp_path, architectures):
    import netCDF4

    path = tmp_path / "t.nc"
    run_repsweep("trial", "--arch", "narrow", "--epochs", "20", "--no-fit", "--all-layers",
                 "--out", path)
    L = architectures["narrow"]["hidden_layers"]
    with netCDF4.Dataset(path) as nc:
        v = nc.variables["dh2_stage"]
        assert v.dimensions[0] == "epoch" and v.shape == (20, L), (v.dimensions, v.shape)
        obs = int(nc.getncattr("observed_stage"))
        np.testing.assert_array_equal(v[:, obs], nc.variables["dh2"][:])


def test_export_weights_layout(run_repsweep, tmp_path, architectures):
    import netCDF4

    path = tmp_path / "w.nc"
    run_repsweep("trial", "--arch", "narrow", "--epochs", "1", "--no-fit",
                 "--export-weights", path)
    a = architectures["narrow"]
    L, U = a["hidden_layers"], a["units"]
    with netCDF4.Dataset(path) as nc:
        assert int(nc.getncattr("maps")) == L + 1
        assert nc.variables["weight_0"].shape == (U, 1)
        for k in range(1, L):
            assert nc.variables[f"weight_{k}"].shape == (U, U)
        assert nc.variables[f"weight_{L}"].shape == (1, U)
        assert nc.variables[f"bias_{L}"].shape == (1,)
        assert int(nc.getncattr("observed_stage")) == L // 2 - 1
        # Xavier-normal: std = gain * sqrt(2 / (fan_in + fan_out)) on the U x U maps
        w = np.concatenate([np.ravel(nc.variables[f"weight_{k}"][:]) for k in range(1, L)])
        std = a["gain"] * math.sqrt(2.0 / (2 * U))
        assert abs(w.std() / std - 1) < 0.02, (w.std(), std)
        assert abs(w.mean()) < 3 * std / math.sqrt(w.size) * 2


def test_matrix_products_bind_to_openblas(repsweep_bin):
    """GSL's reference CBLAS also exports cblas_dgemm; linked before OpenBLAS it silently
    takes every matrix product (10x slower convolutions, --threads ignored). Guard the link
    order: the dynamic linker must bind cblas_dgemm to OpenBLAS. (The convolution net: the
    dense nets' products are repsweep's own kernels.)"""
    import os
    import subprocess
    env = dict(os.environ, LD_DEBUG="bindings")
    proc = subprocess.run([repsweep_bin, "trial", "--arch", "convolution", "--epochs", "1", "--no-fit"],
                          env=env, capture_output=True, text=True, timeout=60)
    lines = [l for l in proc.stderr.splitlines() if "`cblas_dgemm'" in l and "binding file" in l]
    assert lines, "LD_DEBUG printed no binding for cblas_dgemm"
    assert all("openblas" in l for l in lines), "\n".join(lines)
