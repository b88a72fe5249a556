"""A full disk (ENOSPC on the journal's append, in a small tmpfs): the run stops with exit 1
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
    """A 64 KiB tmpfs (needs root: mount)."""
    mnt = tmp_path / "fs"
    mnt.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)],
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
    (small_fs / "fill").write_bytes(bytes(32 * 1024))   # 32 KiB left
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
    (small_fs / "fill").unlink()
    subprocess.run(["mount", "-o", "remount,size=4m", str(small_fs)], check=True)
    proc = run(repsweep_bin, job, out, "--chunk", "8")
    assert proc.returncode == 0, proc.stderr
    assert f"resuming: {len(saved)} of 400 trials done" in proc.stderr, proc.stderr
    assert_same_results(read_results(ref), read_results(out), "after a full disk and a resume")


def test_full_disk_at_the_results_file_exits_1_with_the_journal_intact(repsweep_bin, tmp_path,
                                                                      small_fs):
    """The journal fits, the results file does not: exit 1 and a message (16b47a5 crashed in
    HDF5's exit handler, SIGSEGV: status -11 / 139); the rerun with room writes it."""
    from sweep_util import write_job
    job = write_job(tmp_path / "tiny.cfg")
    (small_fs / "fill").write_bytes(bytes(44 * 1024))   # 20 KiB left: the journal's 2 KiB fit
    out = small_fs / "r.nc"
    proc = run(repsweep_bin, job, out)
    assert proc.returncode == 1, proc.stderr
    assert "bytes free: no space left on the device" in proc.stderr, proc.stderr
    assert "8 of 8 trials are saved in" in proc.stderr and "could not be written" in proc.stderr
    assert sorted(journal_indices(Path(str(out) + ".journal"))) == list(range(8))
    (small_fs / "fill").unlink()
    # a compressed, chunked results file of 8 trials needs ~100 KiB (HDF5's per-variable
    # overhead): more than the whole 64 KiB tmpfs
    subprocess.run(["mount", "-o", "remount,size=4m", str(small_fs)], check=True)
    proc = run(repsweep_bin, job, out)
    assert proc.returncode == 0 and "done: 8 of 8 trials (0 in this run)" in proc.stderr
    assert list(read_results(out)["trial"]) == list(range(8))


def test_full_disk_for_merge_and_trial_files_exits_1_naming_the_file(repsweep_bin, tmp_path,
                                                                     small_fs):
    """`merge --out`, `trial --out` and `trial --export-weights` on a full file system: exit 1,
    the file and the free space named (16b47a5: merge and trial --out crashed, SIGSEGV)."""
    from sweep_util import env, write_job
    job = write_job(tmp_path / "tiny.cfg")
    res = tmp_path / "r.nc"
    assert run(repsweep_bin, job, res).returncode == 0
    (small_fs / "fill").write_bytes(bytes(52 * 1024))   # 12 KiB left
    cmds = {"merge": ["merge", "--out", str(small_fs / "m.nc"), str(res)],
            "trial": ["trial", "--arch", "narrow", "--epochs", "50", "--out",
                      str(small_fs / "t.nc")],
            "export": ["trial", "--arch", "narrow", "--epochs", "50", "--export-weights",
                       str(small_fs / "w.nc")]}
    for what, args in cmds.items():
        proc = subprocess.run([repsweep_bin, *args], capture_output=True, text=True, env=env(),
                              timeout=120)
        assert proc.returncode == 1, (what, proc.returncode, proc.stderr)
        assert str(small_fs) in proc.stderr, (what, proc.stderr)
        assert "bytes free: no space left on the device" in proc.stderr, (what, proc.stderr)
