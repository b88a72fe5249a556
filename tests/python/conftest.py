"""Shared fixtures for the repsweep Python tests (the PyTorch oracle and the CLI tests).

Run with Debian's interpreter, which sees python3-torch / -netcdf4 / -numpy / -pytest:

    /usr/bin/python3 -m pytest -q -s tests/python

The binary is $REPSWEEP_BIN (CTest sets it), else <repo>/build/repsweep. A missing binary
is a test FAILURE, never a skip: a test run that silently skips the oracle proves nothing.
"""
import json
import os
import subprocess
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
ARCH_FILE = REPO_ROOT / "jobs" / "architectures.cfg"

# The authors' gaps (their code): input 1, target sqrt(0.5).
INPUT_GAP = 1.0
TARGET_GAP = 0.7071067811865476


def find_repsweep_bin():
    """The repsweep binary: $REPSWEEP_BIN, else <repo>/build/repsweep. Returns (Path, how)."""
    env = os.environ.get("REPSWEEP_BIN")
    if env:
        return Path(env), "$REPSWEEP_BIN"
    return REPO_ROOT / "build" / "repsweep", "default location <repo>/build/repsweep"


@pytest.fixture(scope="session")
def repsweep_bin():
    path, how = find_repsweep_bin()
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.fail(
            f"repsweep binary not found or not executable: {path} ({how}). Build it with "
            f"`cmake -S {REPO_ROOT} -B {REPO_ROOT}/build && cmake --build {REPO_ROOT}/build` "
            f"or set REPSWEEP_BIN.",
            pytrace=False,
        )
    return str(path)


def _env():
    env = dict(os.environ)
    env.setdefault("OPENBLAS_NUM_THREADS", "1")
    return env


@pytest.fixture(scope="session")
def run_repsweep(repsweep_bin):
    """run_repsweep(*args, check=True, timeout=600) -> CompletedProcess (text mode).

    With check=True a non-zero exit fails the test with the command line and stderr."""

    def run(*args, check=True, timeout=600, cwd=None):
        cmd = [repsweep_bin, *[str(a) for a in args]]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=_env(),
                              cwd=cwd)
        if check and proc.returncode != 0:
            pytest.fail(
                f"`{' '.join(cmd)}` exited {proc.returncode}\nstdout:\n{proc.stdout}\n"
                f"stderr:\n{proc.stderr}",
                pytrace=False,
            )
        return proc

    return run


@pytest.fixture(scope="session")
def run_json(run_repsweep):
    """run_json(*trial_args) -> dict: `repsweep trial <args> --json`, parsed."""

    def run(*args, **kw):
        proc = run_repsweep("trial", *args, "--json", **kw)
        try:
            return json.loads(proc.stdout)
        except json.JSONDecodeError as e:
            pytest.fail(f"--json output does not parse ({e}):\n{proc.stdout}", pytrace=False)

    return run


def read_architectures(path=ARCH_FILE):
    """The architecture records of architectures.cfg as {name: {key: value}} (a small reader
    for the libconfig subset the file uses: one `{ key = value; ... }` group per record)."""
    import re

    text = "\n".join(line.split("#", 1)[0] for line in Path(path).read_text().splitlines())
    archs = {}
    for group in re.findall(r"\{([^{}]*)\}", text):
        rec = {}
        for key, val in re.findall(r"(\w+)\s*=\s*([^;]+);", group):
            val = val.strip()
            if val.startswith('"'):
                rec[key] = val.strip('"')
            elif val in ("true", "false"):
                rec[key] = val == "true"
            else:
                try:
                    rec[key] = int(val)
                except ValueError:
                    rec[key] = float(val)
        if "name" in rec:
            archs[rec["name"]] = rec
    return archs


@pytest.fixture(scope="session")
def architectures():
    archs = read_architectures()
    assert archs, f"no architectures read from {ARCH_FILE}"
    return archs
