"""Helpers for the `repsweep run` tests (tests/python/test_run.py, tests/mpi/test_run_mpi.py):
tiny job files, running the sweep with or without mpirun, reading results and journals."""
import os
import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[2]
ARCH_FILE = REPO_ROOT / "jobs" / "architectures.cfg"
TARGET_GAP = 0.7071067811865476
TIMINGS = {"train_seconds", "fit_seconds"}
JOURNAL_HEADER = 128  # bytes (store.c)
JOURNAL_SLOT = 204    # a 200-byte record and its CRC-32


def write_job(path, name="tiny", gains=(0.8, 1.2), lrs=(0.02, 0.0025), seeds=(0, 1),
              epochs=400, theory=True, record="", arch="narrow"):
    """A small job: the `arch` net over gains x seeds, plus a 4-point theory-only block.
    `record` is the body of a `record = { ... };` group (e.g. "all_layers = true;")."""
    g = ", ".join(f"{x:.6g}" if "." in f"{x:.6g}" else f"{x:.6g}.0" for x in gains)
    lr = ", ".join(repr(float(x)) for x in lrs)
    s = ", ".join(str(x) for x in seeds)
    text = f'''name = "{name}";
architectures_file = "{ARCH_FILE}";
{"record = { " + record + " };" if record else ""}
blocks = (
  {{ name = "net"; architectures = ["{arch}"]; gains = [{g}]; lr = [{lr}];
    epochs = {epochs}; input_gaps = [1.0]; target_gaps = [{TARGET_GAP}]; seeds = [{s}]; }}'''
    if theory:
        text += f''',
  {{ name = "theory"; theory_only = true; rate_h = [1e-3, 1e-2]; rate_y = [1e-3];
    dh2_0 = [0.5]; dyhat2_0 = [0.01]; input_gaps = [1.0]; target_gaps = [0.0, {TARGET_GAP}];
    epochs = {epochs}; }}'''
    text += "\n);\n"
    Path(path).write_text(text)
    return Path(path)


def env():
    e = dict(os.environ)
    e.setdefault("OPENBLAS_NUM_THREADS", "1")
    e["OMPI_ALLOW_RUN_AS_ROOT"] = "1"
    e["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1"
    return e


def run_cmd(repsweep_bin, job, out, *extra, ranks=None):
    """The command line of `repsweep run` (under `mpirun --oversubscribe -n ranks` if given)."""
    cmd = [repsweep_bin, "run", str(job), "--out", str(out), *[str(a) for a in extra]]
    if ranks is not None:
        mpirun = shutil.which("mpirun")
        assert mpirun, "mpirun not found (apt-get install openmpi-bin)"
        cmd = [mpirun, "--oversubscribe", "-n", str(ranks), *cmd]
    return cmd


def run(repsweep_bin, job, out, *extra, ranks=None, timeout=300):
    return subprocess.run(run_cmd(repsweep_bin, job, out, *extra, ranks=ranks),
                          capture_output=True, text=True, timeout=timeout, env=env())


def read_results(path, timings=False):
    """Every variable of a results file as a numpy array (missing values: NaN, integers -1)."""
    import netCDF4

    out = {}
    with netCDF4.Dataset(path) as ds:
        for name, var in ds.variables.items():
            if name in TIMINGS and not timings:
                continue
            v = var[:]
            if np.ma.isMaskedArray(v):
                v = v.filled(np.nan) if v.dtype.kind == "f" else v.filled(-1)
            out[name] = np.asarray(v)
        out["_attrs"] = {k: ds.getncattr(k) for k in ds.ncattrs()}
    return out


def assert_same_results(a, b, what=""):
    """Every variable (timings excluded) exactly equal, NaNs in the same places."""
    names = set(a) - {"_attrs"}
    assert names == set(b) - {"_attrs"}, (what, names ^ (set(b) - {"_attrs"}))
    for name in sorted(names):
        x, y = a[name], b[name]
        assert x.shape == y.shape, (what, name, x.shape, y.shape)
        kind = x.dtype.kind
        same = np.array_equal(x, y, equal_nan=True) if kind == "f" else np.array_equal(x, y)
        assert same, f"{what}: variable {name} differs:\n{x}\n{y}"


def journal_indices(path):
    """The trial indices of the complete records of a journal, in file order."""
    data = Path(path).read_bytes()
    n = (len(data) - JOURNAL_HEADER) // JOURNAL_SLOT
    return [struct.unpack_from("<Q", data, JOURNAL_HEADER + i * JOURNAL_SLOT)[0]
            for i in range(n)]
