"""The results file and the single-trial file follow CF-1.8 well enough for standard tools:
UDUNITS-2 parses every units string, missing values are _FillValue (not NaN or -1 markers),
the grid coordinates are coordinates for xarray, codes carry flag_values / flag_meanings, NCO
and xarray agree on a mean, and CDO reads the file without a warning.

(16b47a5's files fail each: units "1/epoch", NaN without _FillValue so `ncwa -a trial` gives a
missing mean of gain, no coordinates, status codes only in a long_name, `arch` a netCDF-4
string that CDO skips with a warning, and a global `units` in the trial file.)"""
import ctypes
import ctypes.util
import shutil
import subprocess

import netCDF4
import numpy as np
import pytest

from sweep_util import env, run, write_job

COORDINATES = ["block", "arch", "gain", "seed", "input_gap", "target_gap"]


def _udunits():
    """(parse(str) -> bool) through libudunits2 (Debian's libudunits2-0, udunits-bin)."""
    path = ctypes.util.find_library("udunits2")
    assert path, "libudunits2 not found (apt-get install udunits-bin)"
    lib = ctypes.CDLL(path)
    lib.ut_read_xml.restype = ctypes.c_void_p
    lib.ut_read_xml.argtypes = [ctypes.c_char_p]
    lib.ut_parse.restype = ctypes.c_void_p
    lib.ut_parse.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]
    lib.ut_set_error_message_handler.argtypes = [ctypes.c_void_p]
    lib.ut_set_error_message_handler(ctypes.cast(lib.ut_ignore, ctypes.c_void_p))
    system = lib.ut_read_xml(None)
    assert system, "UDUNITS-2 cannot read its unit database"
    assert not lib.ut_parse(system, b"1/epoch", 0), "the parser accepts anything"
    return lambda units: bool(lib.ut_parse(system, units.encode(), 0))


@pytest.fixture(scope="module")
def results(repsweep_bin, tmp_path_factory):
    d = tmp_path_factory.mktemp("cf")
    job = write_job(d / "cf.cfg", name="cf", seeds=(0, 1), epochs=200,
                    record="trajectory_stride = 10;")
    out = d / "cf.nc"
    proc = run(repsweep_bin, job, out)
    assert proc.returncode == 0, proc.stderr
    return out


@pytest.fixture(scope="module")
def trial_file(repsweep_bin, tmp_path_factory):
    out = tmp_path_factory.mktemp("cf_trial") / "trial.nc"
    proc = subprocess.run([str(repsweep_bin), "trial", "--arch", "narrow", "--epochs", "200",
                           "--out", str(out)], capture_output=True, text=True, env=env(),
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    return out


def _check_units_and_fill(path):
    parses = _udunits()
    with netCDF4.Dataset(path) as nc:
        assert nc.getncattr("Conventions") == "CF-1.8"
        for key in ("history", "source", "references", "title"):
            assert nc.getncattr(key), key
        assert "When Representations Align" in nc.getncattr("references")
        assert "units" not in nc.ncattrs(), "a global `units` reads as the file's units"
        for name, var in nc.variables.items():
            attrs = var.ncattrs()
            assert "long_name" in attrs, name
            assert len(var.getncattr("long_name")) <= 32, (name, var.getncattr("long_name"))
            assert "units" in attrs, f"{name}: no units"
            assert parses(var.getncattr("units")), f"{name}: UDUNITS-2 rejects " \
                                                   f"{var.getncattr('units')!r}"
            if var.dtype == np.float64:
                assert "_FillValue" in attrs, f"{name}: no _FillValue"
                raw = var[:]
                data = raw.filled(0) if np.ma.isMaskedArray(raw) else raw
                assert not np.isnan(data).any(), f"{name}: NaN stored instead of the fill value"
            if "flag_values" in attrs:
                values = np.atleast_1d(var.getncattr("flag_values"))
                assert len(var.getncattr("flag_meanings").split()) == len(values), name


def test_results_file_units_fill_values_and_flags(results):
    _check_units_and_fill(results)
    with netCDF4.Dataset(results) as nc:
        status = nc["status"]
        assert "ok" in status.flag_meanings.split() and 0 in np.atleast_1d(status.flag_values)
        arch = nc["arch"]
        assert arch.dtype == np.int32, "the label must be readable without netCDF-4 strings"
        assert arch.flag_meanings.split()[0] == "narrow"
        # theory-only trials: arch, gain and seed missing (fill values), not -1 / NaN
        theory = nc["block"][:] == 1
        assert theory.sum() == 4
        for name in ("arch", "gain", "seed"):
            assert np.ma.getmaskarray(nc[name][:])[theory].all(), name
            assert not np.ma.getmaskarray(nc[name][:])[~theory].any(), name
        for name, var in nc.variables.items():
            if var.dtype.kind == "i" and name not in ("status",):
                assert (np.ma.filled(var[:], 0) >= 0).all(), f"{name}: a negative marker"


def test_results_file_coordinates_for_xarray(results):
    import xarray as xr
    with xr.open_dataset(results) as ds:
        for name in COORDINATES:
            assert name in ds.coords, f"{name} is not a coordinate: {list(ds.coords)}"
        assert "status" in ds.data_vars and "dh2_traj" in ds.data_vars


def test_ncwa_and_xarray_agree_on_the_mean_gain(results, tmp_path):
    import xarray as xr
    ncwa = shutil.which("ncwa")
    assert ncwa, "ncwa not found (apt-get install nco)"
    out = tmp_path / "mean.nc"
    proc = subprocess.run([ncwa, "-O", "-a", "trial", "-v", "gain", str(results), str(out)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    with netCDF4.Dataset(out) as nc:
        nco_mean = float(nc["gain"][...])
    with xr.open_dataset(results) as ds:
        xr_mean = float(ds["gain"].mean())
    assert np.isfinite(xr_mean) and abs(nco_mean - xr_mean) <= 1e-12 * abs(xr_mean), \
        (nco_mean, xr_mean)
    assert abs(xr_mean - 1.0) < 1e-12  # gains 0.8 and 1.2, two seeds each


@pytest.mark.parametrize("which", ["results", "trial_file"])
def test_cdo_reads_the_file_without_warnings(which, request):
    path = request.getfixturevalue(which)
    cdo = shutil.which("cdo")
    assert cdo, "cdo not found (apt-get install cdo)"
    proc = subprocess.run([cdo, "info", str(path)], capture_output=True, text=True)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "warning" not in out.lower(), out
    assert "Abort" not in out, out


def test_trial_file_units_fill_values_and_flags(trial_file):
    _check_units_and_fill(trial_file)
    with netCDF4.Dataset(trial_file) as nc:
        assert int(nc.getncattr("hidden_units")) == 50  # the narrow net's layer width
        assert "ok" in nc["status"].flag_meanings.split()
