"""A full disk (ENOSPC on the journal's append, in a 32 KiB tmpfs): the run stops with exit 1
and a message naming FILE.nc.journal and the system's reason (16b47a5 printed `netCDF:
Permission denied` and `the sweep stopped: input/output error`); every fsync'ed trial is found
by the resume, which completes the sweep with the results of an uninterrupted run."""
import os
import subprocess
from pathlib import Path

import pytest

from sweep_util import assert_same_results, journal_indices, read_results, run

RATES = ", ".join(f"{1e-3 * (1 + i):.4g}" for i in range(20))
JOB = f'''name = "full";
blocks = (
  {{ name = "theory"; theory_only = true; rate_h = [{RATES}]; rate_y = [{RATES}];
    dh2_0 = [0.5]; dyhat2_0 = [0.01]; input_gaps = [1.0]; target_gaps = [0.5];
    epochs = 100; }}
);
'''


@pytest.fixture
def small_fs(tmp_path):
    """A 32 KiB tmpfs (needs root: mount)."""
    mnt = tmp_path / "fs"
    mnt.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=32k", "tmpfs", str(mnt)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {proc.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=False)


def test_full_disk_names_the_journal_and_the_reason_and_resume_keeps_every_trial(
        repsweep_bin, tmp_path, small_fs):
    job = tmp_path / "full.cfg"
    job.write_text(JOB)
    ref = tmp_path / "ref.nc"
    assert run(repsweep_bin, job, ref, "--chunk", "8").returncode == 0
    out = small_fs / "r.nc"
    proc = run(repsweep_bin, job, out, "--chunk", "8")
    assert proc.returncode == 1, proc.stderr
    journal = Path(str(out) + ".journal")
    assert f"{journal}: cannot append: No space left on device" in proc.stderr, proc.stderr
    assert "input/output error" not in proc.stderr, proc.stderr
    # the results file cannot be written either: netCDF's own words, and the free space
    assert "bytes free: no space left on the device" in proc.stderr, proc.stderr
    saved = journal_indices(journal)
    assert 0 < len(saved) < 400 and len(set(saved)) == len(saved)
    assert f"{len(saved)} of 400 trials are saved in {journal}" in proc.stderr, proc.stderr
    subprocess.run(["mount", "-o", "remount,size=4m", str(small_fs)], check=True)
    proc = run(repsweep_bin, job, out, "--chunk", "8")
    assert proc.returncode == 0, proc.stderr
    assert f"resuming: {len(saved)} of 400 trials done" in proc.stderr, proc.stderr
    assert_same_results(read_results(ref), read_results(out), "after a full disk and a resume")
