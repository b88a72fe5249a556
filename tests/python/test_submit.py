"""slurm/submit's command lines, without a cluster (--dry-run prints them, submits nothing).
The real submissions are tested on a local SLURM cluster in tests/slurm."""
import os
import subprocess

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
