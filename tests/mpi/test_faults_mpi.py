"""Faults of one rank under `mpirun --oversubscribe -n 3` (one node): a worker stopped with
SIGSTOP (hung) or killed with SIGKILL mid-run. The sweep ends within a bound, and after at
most one resume its results equal an uninterrupted run's (every variable except timings)."""
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from sweep_util import (assert_same_results, env, journal_indices, read_results, run,
                        run_cmd, write_job)

HANG = 3  # --hang-seconds: a chunk's deadline is 3 s + 10 x its estimated cost


def rank_pids(mpirun_pid):
    """{MPI rank: pid} of the repsweep processes started by mpirun."""
    pids = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid != mpirun_pid:
                continue
            environ = (d / "environ").read_bytes().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue
        for kv in environ:
            if kv.startswith(b"OMPI_COMM_WORLD_RANK="):
                pids[int(kv.split(b"=", 1)[1])] = int(d.name)
    return pids


def gone(pid, within=10.0):
    """Whether process pid has ended within `within` seconds (mpirun's SIGKILL to its ranks
    is asynchronous). A survivor is killed, so that no test leaves a stopped process."""
    deadline = time.time() + within
    while time.time() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)
    return False


@pytest.fixture(scope="module")
def reference(repsweep_bin, tmp_path_factory):
    """The job and its uninterrupted one-process results."""
    d = tmp_path_factory.mktemp("faults")
    job = write_job(d / "faults.cfg", name="faults", gains=(0.8, 1.2), seeds=range(6),
                    epochs=1500, theory=False)
    proc = run(repsweep_bin, job, d / "ref.nc")
    assert proc.returncode == 0, proc.stderr
    return job, read_results(d / "ref.nc")


def start_and_wait_for_first_trial(repsweep_bin, job, out, *extra):
    proc = subprocess.Popen(run_cmd(repsweep_bin, job, out, "--chunk", "1", "--hang-seconds",
                                    HANG, *extra, ranks=3),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env())
    journal = Path(str(out) + ".journal")
    deadline = time.time() + 120
    while time.time() < deadline and not (journal.exists() and journal_indices(journal)):
        time.sleep(0.05)
    assert journal_indices(journal), "no trial finished within 120 s"
    pids = rank_pids(proc.pid)
    assert sorted(pids) == [0, 1, 2], pids
    return proc, pids


def finish_and_compare(repsweep_bin, job, out, ref, first_rc, err):
    """Resume once if the run was interrupted (3); then the results equal the reference."""
    assert first_rc in (0, 3), err
    if first_rc == 3:
        proc = run(repsweep_bin, job, out, "--chunk", "1", ranks=3)
        assert proc.returncode == 0, proc.stderr
    res = read_results(out)
    assert list(res["trial"]) == list(range(12)), res["trial"]
    assert_same_results(ref, res, "after a fault and at most one resume vs uninterrupted")
    # no trial recorded twice
    idx = journal_indices(Path(str(out) + ".journal"))
    assert sorted(idx) == list(range(12)), idx


def test_stopped_worker_is_detected_and_its_chunk_rerun(repsweep_bin, reference, tmp_path):
    """SIGSTOP of rank 1: rank 0 declares it lost after its chunk's deadline, rank 2 finishes
    the sweep, and the job ends (mpirun kills the stopped rank) with status 0. Before this,
    rank 0 waited for ever."""
    job, ref = reference
    out = tmp_path / "stopped.nc"
    proc, pids = start_and_wait_for_first_trial(repsweep_bin, job, out)
    os.kill(pids[1], signal.SIGSTOP)
    t0 = time.time()
    try:
        _, err = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            os.kill(pids[1], signal.SIGCONT)
            proc.kill()
            proc.communicate()
    elapsed = time.time() - t0
    assert "rank 1 has not answered" in err, err
    assert "1 rank stopped answering" in err, err
    assert proc.returncode == 0, err
    assert gone(pids[1]), "the stopped rank outlived the job"
    print(f"stopped worker: run ended {elapsed:.1f} s after SIGSTOP")
    finish_and_compare(repsweep_bin, job, out, ref, proc.returncode, err)


def test_stop_signal_ends_run_with_a_stopped_worker(repsweep_bin, reference, tmp_path):
    """SIGUSR1 to mpirun while rank 1 is stopped: rank 0 waits at most min(--hang-seconds,
    30) s for the busy workers, saves, and the job exits 3 (it waited for ever before); one
    resume completes it identically."""
    job, ref = reference
    out = tmp_path / "usr1.nc"
    proc, pids = start_and_wait_for_first_trial(repsweep_bin, job, out)
    os.kill(pids[1], signal.SIGSTOP)
    time.sleep(0.5)
    t0 = time.time()
    proc.send_signal(signal.SIGUSR1)
    try:
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.kill(pids[1], signal.SIGCONT)
            proc.kill()
            proc.communicate()
    elapsed = time.time() - t0
    assert proc.returncode == 3, err
    # the documented bound: the wait for busy workers (3 s here) plus an epoch, a results
    # file rewrite and mpirun's teardown
    assert elapsed < HANG + 15, (elapsed, err)
    assert gone(pids[1]), "the stopped rank outlived the job"
    finish_and_compare(repsweep_bin, job, out, ref, proc.returncode, err)


def test_killed_worker_ends_the_run_and_a_resume_is_identical(repsweep_bin, reference,
                                                              tmp_path):
    """kill -9 of rank 1: mpirun ends the whole job (non-zero status); every fsync'ed trial
    is in the journal and one resume gives the uninterrupted results."""
    job, ref = reference
    out = tmp_path / "killed.nc"
    proc, pids = start_and_wait_for_first_trial(repsweep_bin, job, out)
    os.kill(pids[1], signal.SIGKILL)
    t0 = time.time()
    _, err = proc.communicate(timeout=120)
    elapsed = time.time() - t0
    assert proc.returncode != 0, err
    assert elapsed < 30, elapsed
    assert all([gone(p) for p in pids.values()]), "a rank outlived the job"
    proc2 = run(repsweep_bin, job, out, "--chunk", "1", ranks=3)
    assert proc2.returncode == 0, proc2.stderr
    finish_and_compare(repsweep_bin, job, out, ref, 0, proc2.stderr)
