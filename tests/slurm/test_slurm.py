"""slurm/submit and slurm/repsweep.sbatch on a real one-machine SLURM cluster (conftest.py):
a sweep submitted with 2 ranks equals a local mpirun run; a real one-minute time limit is
survived by save, requeue and resume; a 3-task job array with --shard merges to the same
results; scancel in the middle loses no finished trial.

Results are compared variable by variable, exactly (NaNs in the same places), except the wall
times (train_seconds, fit_seconds) and the provenance attributes (command line, times,
library versions, a merge's input paths); every other attribute (job name, text and hash,
trial counts, shard) must match.
"""
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
sys.path.insert(0, str(REPO_ROOT / "tests" / "python"))
from sweep_util import assert_same_results, journal_indices, read_results  # noqa: E402

SUBMIT = REPO_ROOT / "slurm" / "submit"
QUICKSTART = REPO_ROOT / "jobs" / "quickstart.cfg"
LONG = HERE / "long.cfg"       # the template of the time-limit test's sweep (long_job)
CANCEL = HERE / "cancel.cfg"   # 200 trials
# Provenance attributes: where, when, how and by what a file was written.
PROVENANCE = {"command_line", "openblas_config", "merged_from"}


def is_provenance(name):
    return (name in PROVENANCE or name.startswith(("created", "updated"))
            or name.endswith(("_version", "_commit")))


def assert_same_as_reference(path, reference, what):
    got, ref = read_results(path), read_results(reference)
    assert_same_results(ref, got, what)
    a = {k: v for k, v in ref["_attrs"].items() if not is_provenance(k)}
    b = {k: v for k, v in got["_attrs"].items() if not is_provenance(k)}
    assert a.keys() == b.keys(), (what, a.keys() ^ b.keys())
    for k in a:
        assert str(a[k]) == str(b[k]), f"{what}: attribute {k}: {a[k]!r} != {b[k]!r}"
    return got


def submit(cluster, repsweep_bin, job, out, *opts):
    """slurm/submit JOB --out OUT OPTS...; returns (job id, stdout)."""
    env = dict(cluster.env, REPSWEEP_BIN=repsweep_bin)
    p = cluster.run([str(SUBMIT), str(job), "--out", str(out), *opts], check=False, env=env,
                    cwd=Path(out).parent, timeout=120)
    assert p.returncode == 0, f"slurm/submit exited {p.returncode}:\n{p.stdout}\n{p.stderr}"
    m = re.search(r"^submitted: job (\d+)", p.stdout, re.M)
    assert m, f"no job id in slurm/submit's output:\n{p.stdout}"
    return m.group(1), p.stdout


def job_log(out, job_id):
    """The log slurm/submit asked for: <dir of out>/repsweep-<job>-<id>.out."""
    logs = list(Path(out).parent.glob(f"repsweep-*-{job_id}.out"))
    assert len(logs) == 1, (job_id, logs)
    return logs[0].read_text()


def grid_trials(repsweep_bin, job):
    """The job's trial count, from `repsweep check` (its "total" row)."""
    out = subprocess.run([repsweep_bin, "check", str(job)], capture_output=True, text=True,
                         check=True).stdout
    rows = [l.split() for l in out.splitlines() if l.split()[:1] == ["total"]]
    assert len(rows) == 1, out
    return int(rows[0][1])


def workdir(cluster, name):
    d = cluster.root / "jobs" / name
    d.mkdir(parents=True, exist_ok=True)
    return d


def timed(name):
    t0 = time.time()

    class T:
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            print(f"\n[{name}: {time.time() - t0:.1f} s]", file=sys.stderr)

    return T()


def test_quickstart_two_ranks_equals_local_mpirun(cluster, repsweep_bin, references):
    with timed("quickstart via slurm/submit"):
        ref = references(QUICKSTART).start()          # runs while the job is queued
        d = workdir(cluster, "quickstart")
        out = d / "quickstart.nc"
        job_id, text = submit(cluster, repsweep_bin, QUICKSTART, out, "--ntasks=2")
        assert "total" in text and "core-hours" in text and "cost: about" in text, text
        assert f"squeue -j {job_id}" in text and "status" in text, text
        states = cluster.wait_job(job_id, timeout=300)
        log = job_log(out, job_id)
        assert states == ["COMPLETED"], (states, log)
        assert "complete: every trial is done" in log, log
        assert "2 rank(s) x 1 thread(s)" in log, log
        got = assert_same_as_reference(out, ref.path(), "SLURM 2 ranks vs local mpirun -n 2")
        total = grid_trials(repsweep_bin, QUICKSTART)
        assert len(got["trial"]) == total and int(got["_attrs"]["trials_done"]) == total


# Seconds of work the time-limit test's sweep gives its one computing rank: SLURM warns each
# run 25-55 s after it starts, so anything well above 55 s is interrupted at least once.
LONG_WORK_SECONDS = 120.0


def trial_seconds(repsweep_bin, gain, lr):
    """Wall seconds of one long.cfg trial (training and fit) on this machine, now."""
    t = time.time()
    subprocess.run([repsweep_bin, "trial", "--arch", "narrow", "--gain", str(gain), "--lr",
                    str(lr), "--epochs", "3000", "--json"], check=True, capture_output=True)
    return time.time() - t


@pytest.fixture(scope="module")
def long_job(cluster, repsweep_bin):
    """long.cfg with its seed count set from this machine's measured speed, so that the sweep
    is ~LONG_WORK_SECONDS of work for one rank on any machine: long enough to be warned and
    requeued at least once, short enough to keep the test at a few minutes. Returns (path,
    trials)."""
    per_trial = (trial_seconds(repsweep_bin, 0.8, 0.02) + trial_seconds(repsweep_bin, 1.2, 0.0025)) / 2
    seeds = max(20, int(LONG_WORK_SECONDS / (2 * per_trial)) + 1)
    text = LONG.read_text()
    text = text.replace("count = 200;", f"count = {seeds};")
    text = text.replace('"../../jobs/architectures.cfg"',
                        f'"{REPO_ROOT / "jobs" / "architectures.cfg"}"')
    assert f"count = {seeds};" in text and str(REPO_ROOT) in text, "long.cfg changed shape"
    path = workdir(cluster, "timelimit-job") / "long.cfg"
    path.write_text(text)
    print(f"\n[time-limit sweep: {per_trial:.3f} s per trial here -> {seeds} seeds, "
          f"{2 * seeds} trials]", file=sys.stderr)
    return path, 2 * seeds


def test_time_limit_saves_requeues_resumes(cluster, repsweep_bin, references, long_job):
    """A real --time=1: SLURM sends USR1 (--signal=USR1@5: SLURM's ~30 s limit check sends it
    25-55 s into each run), repsweep saves and exits 3, the script requeues the job, the next
    run resumes; the job ends COMPLETED with the results of an uninterrupted run."""
    job, total = long_job
    with timed("time limit, requeue, resume"):
        ref = references(job).start()
        d = workdir(cluster, "timelimit")
        out = d / "long.nc"
        job_id, _ = submit(cluster, repsweep_bin, job, out, "--ntasks=2", "--time=1",
                           "--signal=USR1@5")
        states = cluster.wait_job(job_id, timeout=600)
        log = job_log(out, job_id)
        restarts = int(cluster.job_info(job_id)["Restarts"])
        print(f"\n[time limit: {restarts} requeue(s); log:]\n" +
              "\n".join(l for l in log.splitlines() if not l.startswith("progress:")),
              file=sys.stderr)
        assert states == ["COMPLETED"], (states, log)
        assert restarts >= 1, f"the job was never requeued (sweep too short here?):\n{log}"
        # Every requeue: a save on the warning, a requeue, a resumption from the saved trials.
        saved = re.findall(rf"interrupted by signal SIGUSR1: (\d+) of {total} trials done", log)
        assert len(saved) == restarts, log
        assert len(re.findall(r"repsweep\.sbatch\[job \d+, run \d+\]: saved: ", log)) == restarts
        assert len(re.findall(r"repsweep\.sbatch\[job \d+, run \d+\]: requeued: ", log)) == restarts
        resumed = re.findall(rf"^resuming: (\d+) of {total} trials done", log, re.M)
        assert resumed == saved, (resumed, saved, log)
        assert all(int(a) < int(b) for a, b in zip(saved, saved[1:])), saved
        assert "complete: every trial is done" in log
        assert "SIGTERM" not in log, "the job ran into the limit itself instead of the warning"
        got = assert_same_as_reference(out, ref.path(), "requeued SLURM job vs mpirun")
        assert len(got["trial"]) == total


def test_job_array_shards_merge(cluster, repsweep_bin, references):
    with timed("3-task job array + merge"):
        ref = references(QUICKSTART).start()
        d = workdir(cluster, "array")
        out = d / "quickstart.nc"
        job_id, text = submit(cluster, repsweep_bin, QUICKSTART, out, "--array", "3",
                              "--ntasks=1")
        m = re.search(r"^merge: job (\d+)", text, re.M)
        assert m, text
        states = cluster.wait_job(job_id, timeout=300)
        assert states == ["COMPLETED"] * 3, states
        merge_states = cluster.wait_job(m.group(1), timeout=120)
        merge_log = (d / f"repsweep-quickstart-merge-{m.group(1)}.out").read_text()
        assert merge_states == ["COMPLETED"], (merge_states, merge_log)
        total = grid_trials(repsweep_bin, QUICKSTART)
        seen = set()
        for i in range(3):
            shard = read_results(d / f"quickstart.shard{i}-of-3.nc")
            idx = [int(t) for t in shard["trial"]]
            assert idx == [k for k in range(total) if k % 3 == i], (i, idx)
            seen |= set(idx)
        assert seen == set(range(total))
        assert_same_as_reference(out, ref.path(), "merged shards vs mpirun")


def test_scancel_loses_no_finished_trial(cluster, repsweep_bin, references):
    """scancel (SIGTERM, then SIGKILL after KillWait=5 s) in the middle: every trial in the
    journal before the cancel is still there, the results file holds them all, the job is not
    requeued; submitting again resumes from them and completes with the reference results."""
    with timed("scancel, resubmit"):
        ref = references(CANCEL).start()
        d = workdir(cluster, "scancel")
        out = d / "cancel.nc"
        journal = Path(f"{out}.journal")
        job_id, _ = submit(cluster, repsweep_bin, CANCEL, out, "--ntasks=2")
        deadline = time.time() + 180
        while time.time() < deadline:
            if journal.exists() and len(journal_indices(journal)) >= 20:
                break
            time.sleep(0.2)
        before = set(journal_indices(journal))
        assert 20 <= len(before) < 150, len(before)
        cluster.run(["scancel", job_id])
        states = cluster.wait_job(job_id, timeout=120)
        log = job_log(out, job_id)
        assert states == ["CANCELLED"], (states, log)
        assert cluster.job_info(job_id)["Restarts"] == "0", log
        after = journal_indices(journal)
        assert len(after) == len(set(after)), "a trial recorded twice"
        assert before <= set(after), f"lost trials: {sorted(before - set(after))}"
        saved = read_results(out)
        assert sorted(int(t) for t in saved["trial"]) == sorted(after), \
            "the results file does not hold exactly the journal's trials"
        assert f"interrupted by signal SIGTERM: {len(after)} of 200 trials done" in log, log
        assert "cancelled (scancel" in log and "requeued:" not in log, log
        print(f"\n[scancel: {len(before)} trials in the journal before, {len(after)} after; "
              "log:]\n" + "\n".join(l for l in log.splitlines() if not l.startswith("progress:")),
              file=sys.stderr)

        job2, _ = submit(cluster, repsweep_bin, CANCEL, out, "--ntasks=2")
        states = cluster.wait_job(job2, timeout=600)
        log2 = job_log(out, job2)
        assert states == ["COMPLETED"], (states, log2)
        assert f"resuming: {len(after)} of 200 trials done" in log2, log2
        assert re.search(rf"done: 200 of 200 trials \({200 - len(after)} in this run\)", log2), log2
        assert_same_as_reference(out, ref.path(), "cancelled and resubmitted vs mpirun")
