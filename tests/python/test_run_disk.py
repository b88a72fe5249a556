"""`repsweep run` when the disk fails it: a results directory made read-only (immutable) during a
run, and a full disk (a 1 MiB tmpfs). Checkpoints fail while the journal is writable: a warning
naming the file and the system's reason, and the sweep goes on (16b47a5 stopped the sweep with
exit 1). When the journal itself cannot grow, the sweep stops with the journal's path and
reason. Either way no finished trial is lost: the resumed run finds every stored one and its
file equals an uninterrupted run's. Needs root (chattr, mount): a failure, never a skip."""
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from sweep_util import (assert_same_results, env, journal_indices, read_results, run, run_cmd,
                        write_job)

SEEDS = tuple(range(30))  # 2 gains x 30 seeds of the narrow net, 300 epochs: a few seconds


@pytest.fixture(scope="module")
def reference(repsweep_bin, tmp_path_factory):
    d = tmp_path_factory.mktemp("reference")
    job = write_job(d / "disk.cfg", name="disk", seeds=SEEDS, epochs=300, theory=False)
    out = d / "ref.nc"
    proc = run(repsweep_bin, job, out)
    assert proc.returncode == 0, proc.stderr
    return job.read_text(), read_results(out)


def _wait_for_records(journal, n, proc, timeout=120):
    t = time.monotonic()
    while time.monotonic() - t < timeout:
        if journal.exists() and journal.stat().st_size >= 128 and \
                len(journal_indices(journal)) >= n:
            return
        assert proc.poll() is None, "the run ended before it stored a trial"
        time.sleep(0.02)
    raise AssertionError(f"{journal}: fewer than {n} records after {timeout} s")


def test_read_only_results_directory_mid_run_is_a_warning(repsweep_bin, reference, tmp_path):
    job_text, ref = reference
    d = tmp_path / "out"
    d.mkdir()
    job = tmp_path / "disk.cfg"
    job.write_text(job_text)
    out = d / "r.nc"
    journal = Path(str(out) + ".journal")
    proc = subprocess.Popen(run_cmd(repsweep_bin, job, out, "--save-every", "0.5",
                                    "--chunk", "1"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env())
    try:
        _wait_for_records(journal, 0, proc)  # the journal exists, before the first checkpoint
        # entries can no longer be made in the directory; the open journal stays writable
        subprocess.run(["chattr", "+i", str(d)], check=True)
        _, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
        subprocess.run(["chattr", "-i", str(d)])
    trials = 2 * len(SEEDS)
    # the checkpoints failed with the file and the reason, and the sweep went on to the end
    assert "warning: checkpoint not written" in err, err
    assert f"{out}.tmp: cannot create: Operation not permitted" in err, err
    assert len(journal_indices(journal)) == trials, err
    # the final write failed the same way: an error, with what to do
    assert proc.returncode == 1, err
    assert err.count(f"{out}.tmp: cannot create: Operation not permitted") >= 2, err
    # resuming with the directory writable again computes nothing and writes the file
    again = run(repsweep_bin, job, out)
    assert again.returncode == 0, again.stderr
    assert f"resuming: {trials} of {trials} trials done" in again.stderr, again.stderr
    assert f"({0} in this run)" in again.stderr, again.stderr
    assert_same_results(ref, read_results(out), "after a read-only results directory")


@pytest.fixture
def tiny_disk(tmp_path):
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], check=True)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)])


def test_full_disk_stops_with_the_journal_s_reason_and_loses_nothing(repsweep_bin, reference,
                                                                      tiny_disk, tmp_path):
    job_text, _ = reference
    # trajectories every epoch make a record ~19 KB: 1 MiB holds ~50 of the 60, fewer with
    # the checkpoints beside them
    job_text = job_text.replace('name = "disk";',
                                'name = "disk";\nrecord = { trajectory_stride = 1; };')
    job = tmp_path / "full.cfg"
    job.write_text(job_text)
    out = tiny_disk / "r.nc"
    journal = Path(str(out) + ".journal")
    proc = run(repsweep_bin, job, out, "--save-every", "0.05")
    err = proc.stderr
    assert proc.returncode == 1, err
    assert f"{journal}: cannot append: No space left on device" in err, err
    stored = journal_indices_sized(journal)
    assert 0 < len(stored) < 2 * len(SEEDS), (len(stored), err)
    # the records written whole before the disk filled are kept, and the count says so
    assert f"{len(stored)} of {2 * len(SEEDS)} trials are saved in {journal}" in err, err
    # every stored trial is found on resume, elsewhere (the journal moves with its file)
    roomy = tmp_path / "roomy"
    roomy.mkdir()
    shutil.copy(journal, roomy / "r.nc.journal")
    again = run(repsweep_bin, job, roomy / "r.nc")
    assert again.returncode == 0, again.stderr
    assert f"resuming: {len(stored)} of {2 * len(SEEDS)} trials done" in again.stderr, \
        again.stderr
    reference_run = tmp_path / "ref.nc"
    assert run(repsweep_bin, job, reference_run).returncode == 0
    assert_same_results(read_results(reference_run), read_results(roomy / "r.nc"),
                        "after a full disk")


def journal_indices_sized(path):
    """The trial indices of a journal's complete records, whatever its record size (the
    header says it: store.c), up to its last complete slot."""
    import struct
    data = Path(path).read_bytes()
    record = struct.unpack_from("<I", data, 12)[0]
    slot = record + 4
    n = (len(data) - 128) // slot
    return [struct.unpack_from("<Q", data, 128 + i * slot)[0] for i in range(n)]
