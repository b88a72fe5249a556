"""Trials that could not run (status < 0, e.g. out of memory) are retried by a rerun, at most 3
attempts (--no-retry: never); the journal keeps every attempt (append-only), the results file
the last; the exit status is 4 while some could not run. Failures are made with the test-only
hook REPSWEEP_TEST_FAIL_TRIALS (cmd_run.c). 16b47a5 counted them as done (exit 0, `done: 8 of
8`) and never retried them."""
import os
import struct
import subprocess
from pathlib import Path

from sweep_util import (JOURNAL_HEADER, JOURNAL_SLOT, assert_same_results, env, read_results,
                        run_cmd, write_job)


def run(repsweep_bin, job, out, *extra, fail=None):
    e = env()
    e.pop("REPSWEEP_TEST_FAIL_TRIALS", None)
    if fail:
        e["REPSWEEP_TEST_FAIL_TRIALS"] = fail
    return subprocess.run(run_cmd(repsweep_bin, job, out, *extra), capture_output=True,
                          text=True, timeout=300, env=e)


def journal_statuses(out):
    """(index, status) of every record of FILE.nc's journal, in file order."""
    data = Path(str(out) + ".journal").read_bytes()
    n = (len(data) - JOURNAL_HEADER) // JOURNAL_SLOT
    return [struct.unpack_from("<Qq", data, JOURNAL_HEADER + i * JOURNAL_SLOT)
            for i in range(n)]


def test_trials_that_could_not_run_are_retried_by_a_rerun(repsweep_bin, tmp_path):
    job = write_job(tmp_path / "tiny.cfg")       # 4 network + 4 theory-only trials
    ref = tmp_path / "ref.nc"
    assert run(repsweep_bin, job, ref).returncode == 0
    out = tmp_path / "r.nc"
    proc = run(repsweep_bin, job, out, fail="3,7")
    assert proc.returncode == 4, proc.stderr
    assert "failures: 2 could not run (e.g. out of memory; 2 will be retried" in proc.stderr
    res = read_results(out)
    assert res["status"][3] == -1 and res["status"][7] == -1, res["status"]
    # --no-retry: nothing runs, nothing is appended
    proc = run(repsweep_bin, job, out, "--no-retry")
    assert proc.returncode == 4, proc.stderr
    assert "--no-retry: not retried" in proc.stderr, proc.stderr
    assert len(journal_statuses(out)) == 8
    # a rerun retries both; the journal keeps the failed records, the results the last
    proc = run(repsweep_bin, job, out)
    assert proc.returncode == 0, proc.stderr
    assert "resuming: 8 of 8 trials done; 2 that could not run will be retried" in proc.stderr
    assert "done: 8 of 8 trials (2 in this run)" in proc.stderr, proc.stderr
    records = journal_statuses(out)
    assert [r for r in records if r[0] in (3, 7)] == [(3, -1), (7, -1), (3, 0), (7, 0)], records
    assert len(records) == 10
    assert_same_results(read_results(ref), read_results(out), "after retries vs no failure")


def test_retries_stop_after_three_attempts(repsweep_bin, tmp_path):
    job = write_job(tmp_path / "tiny.cfg")
    out = tmp_path / "r.nc"
    for attempt in (1, 2, 3, 4):
        proc = run(repsweep_bin, job, out, fail="5")
        assert proc.returncode == 4, (attempt, proc.stderr)
    assert "each had 3 attempts: not retried" in proc.stderr, proc.stderr
    assert [r for r in journal_statuses(out) if r[0] == 5] == [(5, -1)] * 3
    # after the cap, a rerun without the failure still does not retry it
    proc = run(repsweep_bin, job, out)
    assert proc.returncode == 4 and "done: 8 of 8 trials (0 in this run)" in proc.stderr
