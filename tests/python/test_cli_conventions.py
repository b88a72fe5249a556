"""Command-line conventions: `-h` is --help for every command (exit 0; before, every
subcommand's -h was an unknown option, exit 2); --threads defaults to $OMP_NUM_THREADS, else
1, and --threads wins (before, OMP_NUM_THREADS was ignored); progress lines carry an ISO 8601
UTC time stamp (before, none)."""
import os
import re
import subprocess

import pytest

from sweep_util import env, run, write_job

COMMANDS = ["trial", "check", "run", "status", "merge"]


@pytest.mark.parametrize("cmd", COMMANDS)
def test_dash_h_prints_help_and_exits_0(repsweep_bin, cmd):
    p = subprocess.run([repsweep_bin, cmd, "-h"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert re.match(rf"usage: .*repsweep {cmd} ", p.stdout), p.stdout[:200]


def trial_threads_warning(repsweep_bin, omp, *flags):
    """stderr of a 3-epoch trial: the CPU-affinity warning names the thread count chosen."""
    e = env()
    e.pop("OMP_NUM_THREADS", None)
    if omp is not None:
        e["OMP_NUM_THREADS"] = omp
    p = subprocess.run([repsweep_bin, "trial", "--arch", "narrow", "--epochs", "3", "--no-fit",
                        "--json", *flags], capture_output=True, text=True, timeout=120, env=e)
    return p


def test_threads_default_to_omp_num_threads(repsweep_bin):
    many = os.cpu_count() + 5  # more than this machine has: the warning names the count
    assert many <= 1024
    p = trial_threads_warning(repsweep_bin, f"{many},2")
    assert p.returncode == 0, p.stderr
    assert f"--threads {many}," in p.stderr, p.stderr
    # --threads wins over the environment; without either, 1 thread (no warning)
    p = trial_threads_warning(repsweep_bin, str(many), "--threads", "1")
    assert p.returncode == 0 and "warning" not in p.stderr, p.stderr
    p = trial_threads_warning(repsweep_bin, None)
    assert p.returncode == 0 and "warning" not in p.stderr, p.stderr


def test_bad_omp_num_threads_is_named(repsweep_bin):
    p = trial_threads_warning(repsweep_bin, "lots")
    assert p.returncode == 2
    assert "OMP_NUM_THREADS expects an integer in [1, 1024], got 'lots'" in p.stderr, p.stderr


def test_progress_lines_carry_iso_time(repsweep_bin, tmp_path):
    job = write_job(tmp_path / "job.cfg", epochs=3000, theory=False)
    p = run(repsweep_bin, job, tmp_path / "r.nc", "--progress", "0.001")
    assert p.returncode == 0, p.stderr
    lines = [l for l in p.stderr.splitlines() if l.startswith("progress:")]
    assert lines, p.stderr
    for l in lines:
        assert re.match(r"progress: \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ \d+/4 trials", l), l
