"""Shared by the MPI tests: the repsweep binary, and sweep_util from tests/python."""
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "python"))


@pytest.fixture(scope="module")
def repsweep_bin():
    path = os.environ.get("REPSWEEP_BIN", str(Path(__file__).resolve().parents[2] / "build" /
                                              "repsweep"))
    if not os.access(path, os.X_OK):
        pytest.fail(f"repsweep binary not found: {path} (build it or set REPSWEEP_BIN)")
    return path
