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
