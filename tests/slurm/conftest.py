"""Fixtures for the SLURM tests: one real one-machine cluster per session (cluster.py;
`cluster3`: three nodes in network namespaces, test_slurm3.py), the repsweep binary, and
reference results computed by a local `mpirun` run of the same job.

    /usr/bin/python3 -m pytest -q -rs tests/slurm          # as root; or: ctest -L slurm

The cluster is stopped by PID at the end even when a test fails (finalizer and atexit; a
watchdog process covers a killed test process). The tests skip, with the reason, only when
SLURM cannot run here at all (not root, or slurm-wlm/munge missing and not installable); then
the session exits 77, which CTest reports as skipped. Its directory (config, logs, every job's
files) is removed after a passing session and kept, with its path printed, after a failure
(REPSWEEP_SLURM_KEEP=1 keeps it always).
"""
import atexit
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO_ROOT / "tests" / "python"))
import cluster as cluster_mod  # noqa: E402
from sweep_util import env as mpi_env  # noqa: E402

SKIP_EXIT = 77
_state = {"unavailable": None, "failed": False}


def pytest_runtest_makereport(item, call):
    if call.excinfo is not None and not call.excinfo.errisinstance(pytest.skip.Exception):
        _state["failed"] = True


def pytest_sessionfinish(session, exitstatus):
    if _state["unavailable"] and exitstatus == 0:
        session.exitstatus = SKIP_EXIT


@pytest.fixture(scope="session")
def repsweep_bin():
    path = Path(os.environ.get("REPSWEEP_BIN", REPO_ROOT / "build" / "repsweep")).resolve()
    if not os.access(path, os.X_OK):
        pytest.fail(f"repsweep binary not found: {path} (build it or set REPSWEEP_BIN)",
                    pytrace=False)
    return str(path)


@pytest.fixture(scope="session")
def cluster():
    yield from _cluster(cluster_mod.Cluster, tempfile.mkdtemp(prefix="repsweep-slurm-"))


@pytest.fixture(scope="session")
def cluster3():
    """Three nodes in network namespaces (cluster.NetnsCluster; test_slurm3.py). Its directory
    is under /var/tmp: each node has a private /tmp."""
    yield from _cluster(cluster_mod.NetnsCluster,
                        tempfile.mkdtemp(prefix="repsweep-slurm3-",
                                         dir=cluster_mod.NetnsCluster.PARENT))


def _cluster(kind, root):
    if _state["unavailable"]:
        shutil.rmtree(root, ignore_errors=True)
        pytest.skip(_state["unavailable"])
    c = kind(root)
    stopped = []

    def stop():
        if stopped:
            return
        stopped.append(True)
        c.stop()
        if _state["failed"] or os.environ.get("REPSWEEP_SLURM_KEEP") == "1":
            print(f"\nSLURM test cluster files kept in {root}", file=sys.stderr)
        else:
            shutil.rmtree(root, ignore_errors=True)

    try:
        c.start()
    except cluster_mod.Unavailable as e:
        shutil.rmtree(root, ignore_errors=True)
        _state["unavailable"] = f"SLURM cannot run on this machine: {e}"
        pytest.skip(_state["unavailable"])
    except BaseException:
        _state["failed"] = True
        stop()
        raise
    atexit.register(stop)
    print(f"\nSLURM test cluster up in {c.start_seconds:.2f} s under {root} "
          f"(PIDs {c.pids}, proctrack/{c.proctrack})", file=sys.stderr)
    try:
        yield c
    finally:
        stop()


class Reference:
    """Results of `mpirun -n RANKS repsweep run JOB --out OUT` (2 ranks unless asked), started
    in the background the first time it is asked for (so it can run while a SLURM job runs),
    waited for by `path()`."""

    def __init__(self, bin_, job, out, ranks=2):
        self.bin, self.job, self.out, self.ranks = bin_, Path(job), Path(out), ranks
        self.proc = None

    def start(self):
        if self.proc is None:
            self.out.parent.mkdir(parents=True, exist_ok=True)
            mpirun = shutil.which("mpirun")
            assert mpirun, "mpirun not found (apt-get install openmpi-bin)"
            self.log = open(self.out.with_suffix(".log"), "w")
            self.proc = subprocess.Popen(
                [mpirun, "--oversubscribe", "-n", str(self.ranks), self.bin, "run", str(self.job),
                 "--out", str(self.out), "--progress", "0"],
                stdout=self.log, stderr=subprocess.STDOUT, env=mpi_env())
        return self

    def path(self, timeout=600):
        self.start()
        rc = self.proc.wait(timeout=timeout)
        self.log.close()
        assert rc == 0, (f"reference run exited {rc}:\n"
                         f"{self.out.with_suffix('.log').read_text()[-3000:]}")
        return self.out

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait()


@pytest.fixture(scope="session")
def references(repsweep_bin):
    refdir = Path(tempfile.mkdtemp(prefix="repsweep-slurm-ref-"))
    made = {}

    def get(job, ranks=2):
        job = Path(job)
        if (job, ranks) not in made:
            made[job, ranks] = Reference(repsweep_bin, job, refdir / f"{job.stem}-{ranks}.nc",
                                         ranks)
        return made[job, ranks]

    yield get
    for r in made.values():
        r.stop()
    shutil.rmtree(refdir, ignore_errors=True)
