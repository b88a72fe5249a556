"""slurm/submit's command lines, without a cluster (--dry-run prints them, submits nothing).
The real submissions are tested on a local SLURM cluster in tests/slurm."""
import json
import os
import subprocess

import pytest

from conftest import REPO_ROOT

SUBMIT = REPO_ROOT / "slurm" / "submit"
QUICKSTART = REPO_ROOT / "jobs" / "quickstart.cfg"


def dry_run(repsweep_bin, tmp_path, *opts):
    """slurm/submit QUICKSTART --out tmp/q.nc OPTS --dry-run -> the sbatch lines it would run."""
    env = dict(os.environ, REPSWEEP_BIN=repsweep_bin)
    proc = subprocess.run([str(SUBMIT), str(QUICKSTART), "--out", str(tmp_path / "q.nc"), *opts,
                           "--dry-run"], capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 0, proc.stderr
    return [line for line in proc.stderr.splitlines() if line.startswith("would run: sbatch")]


def test_array_merge_job_gets_placement_options_and_dies_with_a_failed_task(repsweep_bin,
                                                                             tmp_path):
    """The merge job must run where the site allows (partition, account, QOS given for the
    array) and be cancelled, not left pending for ever, when a task fails (afterok can then
    never be met); the sweep's own size and time limit are not its business."""
    lines = dry_run(repsweep_bin, tmp_path, "--array", "2", "--partition=compute", "-A", "me",
                    "--qos", "long", "--time=1:00:00", "--ntasks=4")
    assert len(lines) == 2, lines
    array, merge = lines
    assert "--array=0-1" in array and "--time=1:00:00" in array
    words = merge.split()
    assert "--dependency=afterok:DRYRUN" in words and "--kill-on-invalid-dep=yes" in words
    assert "--partition=compute" in words
    assert words[words.index("-A") + 1] == "me" and words[words.index("--qos") + 1] == "long"
    assert not any(w.startswith(("--time", "--ntasks=4")) for w in words), merge


def test_no_merge_submits_only_the_array(repsweep_bin, tmp_path):
    lines = dry_run(repsweep_bin, tmp_path, "--array", "2", "--no-merge")
    assert len(lines) == 1 and "--array=0-1" in lines[0], lines


def fake_sbatch(tmp_path, fail_merge=False):
    """An `sbatch` on PATH that logs its arguments (one call per line) and answers like
    `sbatch --parsable` on a multi-cluster site: "id;cluster"."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    log = tmp_path / "sbatch.log"
    script = bindir / "sbatch"
    script.write_text(f"""#!/bin/bash
echo "$*" >> {log}
case "$*" in *--wrap=*) {"echo 'sbatch: error: invalid account' >&2; exit 1" if fail_merge else ""};; esac
echo "$((4242 + $(wc -l < {log})));clusterB"
""")
    script.chmod(0o755)
    return bindir, log


def submit_with(repsweep_bin, tmp_path, bindir, *opts):
    env = dict(os.environ, REPSWEEP_BIN=repsweep_bin, PATH=f"{bindir}:{os.environ['PATH']}")
    return subprocess.run([str(SUBMIT), str(QUICKSTART), "--out", str(tmp_path / "q.nc"), *opts],
                          capture_output=True, text=True, timeout=60, env=env)


def test_merge_job_goes_to_the_cluster_the_array_went_to(repsweep_bin, tmp_path):
    bindir, log = fake_sbatch(tmp_path)
    proc = submit_with(repsweep_bin, tmp_path, bindir, "--array", "2",
                       "--clusters=clusterA,clusterB")
    assert proc.returncode == 0, proc.stderr
    array, merge = log.read_text().splitlines()
    assert "--clusters=clusterA,clusterB" in array.split()
    words = merge.split()
    assert "--dependency=afterok:4243" in words and "--clusters=clusterB" in words, merge
    assert "--clusters=clusterA,clusterB" not in words, merge
    assert "submitted: job 4243 " in proc.stdout and "merge: job 4244 " in proc.stdout, proc.stdout


def test_failed_merge_submission_names_the_array_and_the_merge_command(repsweep_bin, tmp_path):
    bindir, _ = fake_sbatch(tmp_path, fail_merge=True)
    proc = submit_with(repsweep_bin, tmp_path, bindir, "--array", "2")
    assert proc.returncode == 1
    assert "the array is submitted (job 4243)" in proc.stderr and " merge --out " in proc.stderr, \
        proc.stderr


def submit_dry(repsweep_bin, tmp_path, *opts, path_prefix=None):
    """slurm/submit ... --dry-run -> CompletedProcess (a fake bin dir first on PATH if given)."""
    env = dict(os.environ, REPSWEEP_BIN=repsweep_bin)
    if path_prefix:
        env["PATH"] = f"{path_prefix}:{os.environ['PATH']}"
    return subprocess.run([str(SUBMIT), str(QUICKSTART), "--out", str(tmp_path / "q.nc"), *opts,
                           "--dry-run"], capture_output=True, text=True, timeout=60, env=env)


@pytest.mark.parametrize("opts,ok", [
    (["--time=2"], False),                           # 120 s against the default USR1@120
    (["--time", "3"], False),                        # 180 s: less than twice the warning
    (["-t", "4"], True),                             # 240 s
    (["--time=0:02:00", "--signal=USR1@30"], True),
    (["--time=1", "--signal=USR1@40"], False),       # 60 s < 40 + 30
    (["--time=1", "--signal=USR1@5"], True),         # tests/slurm's time-limit test
    (["--signal=B:USR1@600", "--time=15"], False),
    (["--time=1-0"], True),
    (["--time=UNLIMITED"], True),
    (["--signal=USR1", "--time=1"], False),          # sbatch's default warning: 60 s
])
def test_time_limit_must_leave_room_after_the_warning(repsweep_bin, tmp_path, opts, ok):
    """A --time shorter than (or too close to) the USR1 warning that repsweep.sbatch asks for
    is refused before anything is submitted (16b47a5 submitted --time=2 with USR1@120)."""
    proc = submit_dry(repsweep_bin, tmp_path, *opts)
    if ok:
        assert proc.returncode == 0, proc.stderr
    else:
        assert proc.returncode == 2, proc.stderr
        assert "too short for the warning" in proc.stderr and "--time=" in proc.stderr
        assert "would run" not in proc.stderr


def test_time_limit_that_is_not_a_slurm_time_is_refused(repsweep_bin, tmp_path):
    proc = submit_dry(repsweep_bin, tmp_path, "--time=soon")
    assert proc.returncode == 2 and "--time=soon: not a SLURM time" in proc.stderr


def fake_scontrol(tmp_path, max_array):
    bindir = tmp_path / "fakebin"
    bindir.mkdir(exist_ok=True)
    script = bindir / "scontrol"
    script.write_text(f"""#!/bin/bash
[[ "$*" == "show config" ]] && printf 'Configuration data as of 2026-01-01T00:00:00\\n\
MaxArraySize            = {max_array}\\nMaxJobCount             = 10000\\n'
exit 0
""")
    script.chmod(0o755)
    return bindir


def test_array_beyond_max_array_size_is_packed_into_fewer_tasks(repsweep_bin, tmp_path):
    """--array 10 on a cluster with MaxArraySize = 4: an array of 4 tasks (indices 0-3), every
    shard still merged (16b47a5 asked for --array=0-9, which such a cluster rejects)."""
    bindir = fake_scontrol(tmp_path, 4)
    proc = submit_dry(repsweep_bin, tmp_path, "--array", "10", path_prefix=bindir)
    assert proc.returncode == 0, proc.stderr
    array, merge = [l for l in proc.stderr.splitlines() if l.startswith("would run: sbatch")]
    assert "--array=0-3" in array.split() and "REPSWEEP_SHARDS=10" in array, array
    assert "10 shards in 4 tasks (MaxArraySize 4)" in proc.stdout
    for i in range(10):
        assert f"q.shard{i}-of-10.nc" in merge, merge


def test_array_within_max_array_size_and_default_when_unreadable(repsweep_bin, tmp_path):
    bindir = fake_scontrol(tmp_path, 1001)
    proc = submit_dry(repsweep_bin, tmp_path, "--array", "5", path_prefix=bindir)
    assert "--array=0-4" in proc.stderr.split() and "shards in" not in proc.stdout
    # an scontrol that prints nothing: SLURM's default 1001
    bindir.joinpath("scontrol").write_text("#!/bin/sh\nexit 1\n")
    proc = submit_dry(repsweep_bin, tmp_path, "--array", "1500", path_prefix=bindir)
    assert proc.returncode == 0, proc.stderr
    assert "--array=0-1000" in proc.stderr.split() and "(MaxArraySize 1001)" in proc.stdout


def test_max_running_throttles_the_array(repsweep_bin, tmp_path):
    """--max-running K becomes sbatch's %K (16b47a5 had no way to pass it: -a/--array= were
    refused)."""
    bindir = fake_scontrol(tmp_path, 1001)
    proc = submit_dry(repsweep_bin, tmp_path, "--array", "8", "--max-running", "3",
                      path_prefix=bindir)
    assert proc.returncode == 0, proc.stderr
    assert "--array=0-7%3" in proc.stderr.split()
    proc = submit_dry(repsweep_bin, tmp_path, "--max-running", "3")
    assert proc.returncode == 2 and "give --array N too" in proc.stderr
    proc = submit_dry(repsweep_bin, tmp_path, "--array", "8", "--max-running=0")
    assert proc.returncode == 2 and "--max-running" in proc.stderr


# ---- repsweep.sbatch outside SLURM: srun and scontrol replaced by scripts --------------------

SBATCH = REPO_ROOT / "slurm" / "repsweep.sbatch"
SMALL_JOB = """name = "packed";
blocks = ( { name = "theory"; theory_only = true; rate_h = [1e-3, 2e-3, 3e-3];
  rate_y = [1e-3, 2e-3]; dh2_0 = [0.5]; dyhat2_0 = [0.01]; input_gaps = [1.0];
  target_gaps = [0.5, 0.7]; epochs = 50; } );
"""


def fake_slurm(tmp_path, srun_body, job_state="RUNNING", reason="None", preempt_time="None"):
    """A bin dir with `srun` (srun_body, after srun's own options are dropped) and `scontrol`
    (`show job` prints job_state and reason; `requeue` is logged to scontrol.log)."""
    bindir = tmp_path / "slurmbin"
    bindir.mkdir(exist_ok=True)
    srun = bindir / "srun"
    srun.write_text("#!/bin/bash\nwhile [[ \"$1\" == --* ]]; do shift; done\n" + srun_body)
    srun.chmod(0o755)
    scontrol = bindir / "scontrol"
    scontrol.write_text(f"""#!/bin/bash
echo "$*" >> {tmp_path}/scontrol.log
case "$1 $2" in
  "show job") echo "JobId=$3 JobName=repsweep JobState={job_state} Reason={reason} \
Dependency=(null) PreemptEligibleTime=2026-01-01T00:00:00 PreemptTime={preempt_time} SuspendTime=None" ;;
  "requeue "*) exit 0 ;;
esac
""")
    scontrol.chmod(0o755)
    return bindir


def sbatch_env(repsweep_bin, bindir, **extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    env.update(REPSWEEP_BIN=repsweep_bin, PATH=f"{bindir}:{os.environ['PATH']}",
               SLURM_JOB_ID="77", **{k: str(v) for k, v in extra.items()})
    return env


def test_array_task_runs_every_shard_packed_into_it(repsweep_bin, run_repsweep, tmp_path):
    """With REPSWEEP_SHARDS=5 and an array of 2 tasks, task 0 runs shards 0, 2, 4 and task 1
    shards 1, 3; the five files merge into the whole grid."""
    job = tmp_path / "packed.cfg"
    job.write_text(SMALL_JOB)
    bindir = fake_slurm(tmp_path, 'exec "$@"\n')
    for task in (0, 1):
        env = sbatch_env(repsweep_bin, bindir, SLURM_ARRAY_TASK_ID=task, SLURM_ARRAY_TASK_MIN=0,
                         SLURM_ARRAY_TASK_MAX=1, SLURM_ARRAY_TASK_COUNT=2, REPSWEEP_SHARDS=5)
        proc = subprocess.run(["bash", str(SBATCH), str(job), str(tmp_path / "r.nc")], env=env,
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert f"shard(s) {' '.join(str(j) for j in range(task, 5, 2))} of 5" in proc.stdout
    shards = [tmp_path / f"r.shard{j}-of-5.nc" for j in range(5)]
    assert all(s.exists() for s in shards)
    run_repsweep("merge", "--out", tmp_path / "r.nc", *shards)
    status = json.loads(run_repsweep("status", tmp_path / "r.nc", "--json").stdout)
    assert status["done"] == status["grid_trials"] == 12, status


# srun's stand-in: a rank that saves and exits 3 on SIGTERM, as repsweep does
RANK_UNTIL_TERM = """touch "$REPSWEEP_TEST_STARTED"
trap 'exit 3' TERM
sleep 60 & wait $!
"""


T = "2026-12-02T17:38:58"


# The job as `scontrol show job` shows it while the batch shell handles the SIGTERM (seen on
# the test cluster: a job preempted with PreemptMode=CANCEL is COMPLETING, Reason=None, with a
# PreemptTime; scancel'ed, COMPLETING without one).
@pytest.mark.parametrize("state,reason,preempt_time,requeued,rc,says", [
    # PreemptMode=CANCEL: requeued by the script (16b47a5 took it for a user's scancel)
    ("COMPLETING", "None", T, True, 0, f"preempted at {T} (job state COMPLETING)"),
    ("PREEMPTED", "None", T, True, 0, f"preempted at {T} (job state PREEMPTED)"),
    # a SIGTERM during the partition's GraceTime, the job still RUNNING
    ("RUNNING", "None", T, True, 0, f"preempted at {T} (job state RUNNING)"),
    # PreemptMode=REQUEUE: SLURM has requeued the job itself; the script must not
    ("PENDING", "BeginTime", T, False, 0, "preempted or requeued by SLURM"),
    # the time limit without a warning: requeued, as before
    ("TIMEOUT", "TimeLimit", "None", True, 0, "killed at the time limit without a warning"),
    # scancel: never undone
    ("COMPLETING", "None", "None", False, 3, "cancelled (scancel"),
    ("CANCELLED", "None", "None", False, 3, "cancelled (scancel"),
])
def test_sigterm_is_requeued_unless_it_was_a_users_cancel(repsweep_bin, tmp_path, state, reason,
                                                          preempt_time, requeued, rc, says):
    import signal
    import time

    job = tmp_path / "packed.cfg"
    job.write_text(SMALL_JOB)
    started = tmp_path / "started"
    bindir = fake_slurm(tmp_path, RANK_UNTIL_TERM, job_state=state, reason=reason,
                        preempt_time=preempt_time)
    env = sbatch_env(repsweep_bin, bindir, REPSWEEP_TEST_STARTED=started)
    proc = subprocess.Popen(["bash", str(SBATCH), str(job), str(tmp_path / "r.nc")], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    deadline = time.time() + 30
    while not started.exists() and time.time() < deadline:
        time.sleep(0.05)
    assert started.exists(), "the fake srun never started"
    os.killpg(proc.pid, signal.SIGTERM)  # SLURM signals the batch shell and the steps
    out, _ = proc.communicate(timeout=60)
    calls = (tmp_path / "scontrol.log").read_text().splitlines()
    assert proc.returncode == rc, out
    assert says in out, out
    assert ("requeue 77" in calls) == requeued, (calls, out)


def test_srun_exit_0_without_every_trial_is_not_complete(repsweep_bin, tmp_path):
    """srun can end with 0 having started nothing (a step whose launch failed on a node, seen
    on the three-node test cluster): the script must not call the job complete, but requeue it
    (before, it logged 'complete: every trial is done' with the journal short of trials)."""
    job = tmp_path / "packed.cfg"
    job.write_text(SMALL_JOB)
    bindir = fake_slurm(tmp_path, "exit 0\n")
    proc = subprocess.run(["bash", str(SBATCH), str(job), str(tmp_path / "r.nc")],
                          env=sbatch_env(repsweep_bin, bindir), capture_output=True, text=True,
                          timeout=120)
    out = proc.stdout + proc.stderr
    assert "complete: every trial is done" not in out, out
    assert "does not hold every trial" in out, out
    calls = (tmp_path / "scontrol.log").read_text().splitlines()
    assert "requeue 77" in calls, (calls, out)
    # and a real run that finishes is still complete
    bindir = fake_slurm(tmp_path, 'exec "$@"\n')
    proc = subprocess.run(["bash", str(SBATCH), str(job), str(tmp_path / "r2.nc")],
                          env=sbatch_env(repsweep_bin, bindir), capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0 and "complete: every trial is done" in proc.stdout, proc.stdout
