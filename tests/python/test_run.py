"""`repsweep run` in one process: resume after SIGKILL at random moments (the journal is the
checkpoint), a clean stop on SIGUSR1 (exit 3), and bad input (exit 2, nothing lost).
The MPI rank-count test lives in tests/mpi (CTest label `mpi`)."""
import os
import random
import re
import signal
import struct
import subprocess
import time
from pathlib import Path

import pytest

from sweep_util import (ARCH_FILE, JOURNAL_HEADER, JOURNAL_SLOT, assert_same_results, env,
                        journal_indices, read_results, run, run_cmd, write_job)


def wait_for_records(journal, count, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if journal.exists() and len(journal_indices(journal)) >= count:
            return
        time.sleep(0.01)
    pytest.fail(f"{journal}: fewer than {count} records after {timeout} s")


@pytest.fixture(scope="module")
def kill_job(tmp_path_factory):
    """~30 short trials: 3 gains x 8 seeds of the narrow net and 4 theory-only points; long
    enough (2000 epochs, ~0.1 s each) that three kills land before the last trial."""
    d = tmp_path_factory.mktemp("kill")
    return write_job(d / "kill.cfg", name="kill", gains=(0.8, 1.05, 1.2),
                     lrs=(0.02, 0.005, 0.0025), seeds=range(8), epochs=2000)


@pytest.fixture(scope="module")
def reference(repsweep_bin, kill_job, tmp_path_factory):
    out = tmp_path_factory.mktemp("ref") / "ref.nc"
    proc = run(repsweep_bin, kill_job, out)
    assert proc.returncode == 0, proc.stderr
    return read_results(out)


def test_sigkill_three_times_then_resume_equals_uninterrupted(repsweep_bin, kill_job,
                                                              reference, tmp_path):
    out = tmp_path / "killed.nc"
    journal = Path(str(out) + ".journal")
    total = len(reference["trial"])
    rng = random.Random(4)
    resumed_from = []
    for attempt in range(3):
        before = len(journal_indices(journal)) if journal.exists() else 0
        proc = subprocess.Popen(run_cmd(repsweep_bin, kill_job, out, "--chunk", "2"),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=env())
        wait_for_records(journal, before + 1)      # at least one trial of this run finished
        time.sleep(rng.uniform(0.0, 0.4))
        proc.send_signal(signal.SIGKILL)
        _, err = proc.communicate(timeout=30)
        expect = f"resuming: {before} of {total} trials done" if before else "starting:"
        assert expect in err, (attempt, err)
        resumed_from.append(before)
    before = len(journal_indices(journal))
    assert before < total, "the kills came too late to interrupt anything"
    proc = run(repsweep_bin, kill_job, out, "--chunk", "2")
    assert proc.returncode == 0, proc.stderr
    assert f"resuming: {before} of {total} trials done" in proc.stderr, proc.stderr
    assert f"({total - before} in this run)" in proc.stderr, proc.stderr
    # no finished trial was recomputed: every index exactly once, nothing else in the journal
    indices = journal_indices(journal)
    assert sorted(indices) == list(range(total)), indices
    assert journal.stat().st_size == JOURNAL_HEADER + total * JOURNAL_SLOT
    assert resumed_from == sorted(resumed_from)
    assert_same_results(reference, read_results(out), "killed and resumed vs uninterrupted")


def test_sigusr1_exits_3_with_finished_trials_saved(repsweep_bin, tmp_path):
    job = write_job(tmp_path / "long.cfg", name="long", gains=(0.8, 1.2), seeds=range(20),
                    epochs=3000, theory=False)
    out = tmp_path / "long.nc"
    journal = Path(str(out) + ".journal")
    proc = subprocess.Popen(run_cmd(repsweep_bin, job, out, "--chunk", "1"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env())
    wait_for_records(journal, 2)
    finished_before = set(journal_indices(journal))
    t0 = time.time()
    proc.send_signal(signal.SIGUSR1)
    _, err = proc.communicate(timeout=60)
    elapsed = time.time() - t0
    assert proc.returncode == 3, err
    assert elapsed < 10, f"took {elapsed:.1f} s to stop"
    assert "rerun the same command to resume" in err, err
    res = read_results(out)                      # opens with netCDF4
    assert finished_before <= set(res["trial"].tolist())
    assert sorted(res["trial"].tolist()) == sorted(journal_indices(journal))
    assert res["_attrs"]["trials_done"] == len(res["trial"]) < 40
    assert res["_attrs"]["trials_total"] == 40
    # and the rerun finishes the rest
    proc = run(repsweep_bin, job, out)
    assert proc.returncode == 0, proc.stderr
    assert len(read_results(out)["trial"]) == 40


@pytest.mark.parametrize("arch, gains, lrs, epochs", [
    ("shallow", (0.35, 1.0), (0.01, 0.005), 300),
    ("convolution", (0.95,), (0.002,), 60),
])
def test_threads_keep_the_results_and_warn_when_bound_to_one_cpu(repsweep_bin, tmp_path, arch,
                                                                  gains, lrs, epochs):
    """The shallow net's 500 x 500 map is split into row blocks over --threads threads, the
    convolution net's convolutions into their two data points; the results must be the same
    bits for 1 and 2 threads. A rank bound to one CPU (as mpirun binds 1-2 ranks by default)
    with --threads 2 gets a warning, and still the same results."""
    job = write_job(tmp_path / "t.cfg", arch=arch, gains=gains, lrs=lrs, seeds=(0,),
                    epochs=epochs, theory=False)
    one = run(repsweep_bin, job, tmp_path / "one.nc")
    assert one.returncode == 0 and "warning" not in one.stderr, one.stderr
    two = run(repsweep_bin, job, tmp_path / "two.nc", "--threads", 2)
    assert two.returncode == 0, two.stderr
    cpu = str(min(os.sched_getaffinity(0)))
    bound_env = {k: v for k, v in env().items() if k not in ("OMP_PROC_BIND", "OMP_PLACES")}
    bound = subprocess.run(["taskset", "-c", cpu, *run_cmd(repsweep_bin, job, tmp_path / "b.nc",
                                                          "--threads", 2)],
                           capture_output=True, text=True, timeout=300, env=bound_env)
    assert bound.returncode == 0, bound.stderr
    assert "warning: --threads 2, but this process may run on only 1 CPU" in bound.stderr, \
        bound.stderr
    ref = read_results(tmp_path / "one.nc")
    assert_same_results(ref, read_results(tmp_path / "two.nc"), "--threads 2")
    assert_same_results(ref, read_results(tmp_path / "b.nc"), "--threads 2 on one CPU")


def test_out_in_missing_directory_is_refused(repsweep_bin, tmp_path):
    job = write_job(tmp_path / "tiny.cfg")
    proc = run(repsweep_bin, job, tmp_path / "no" / "such" / "r.nc")
    assert proc.returncode == 2
    assert "--out" in proc.stderr and "no/such/r.nc.journal" in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_output_of_another_job_is_refused_and_unchanged(repsweep_bin, tmp_path):
    first = write_job(tmp_path / "first.cfg", name="first", theory=False, seeds=(0,))
    other = write_job(tmp_path / "other.cfg", name="other", theory=False, seeds=(0,))
    out = tmp_path / "r.nc"
    assert run(repsweep_bin, first, out).returncode == 0
    journal = Path(str(out) + ".journal")
    nc_bytes, journal_bytes = out.read_bytes(), journal.read_bytes()
    proc = run(repsweep_bin, other, out)
    assert proc.returncode == 2, proc.stderr
    assert "was written by job 'first'" in proc.stderr and "this job is 'other'" in proc.stderr
    assert "use another --out" in proc.stderr
    assert out.read_bytes() == nc_bytes and journal.read_bytes() == journal_bytes


def test_edited_architecture_record_is_refused_and_unchanged(repsweep_bin, tmp_path):
    """The job file names an architectures file its text does not cover: a change to a record
    the job uses is refused on resumption (it would mix two networks in one results file); a
    change to a record it does not use is not."""
    archs = tmp_path / "archs.cfg"
    archs.write_text(ARCH_FILE.read_text())
    job = write_job(tmp_path / "j.cfg", name="same", theory=False, seeds=(0,), epochs=200)
    job.write_text(job.read_text().replace(str(ARCH_FILE), str(archs)))
    out = tmp_path / "r.nc"
    assert run(repsweep_bin, job, out).returncode == 0
    journal = Path(str(out) + ".journal")
    text = archs.read_text()

    def with_hidden_layers(name, layers):
        edited, n = re.subn(rf'(name = "{name}";[^\n]*hidden_layers = )\d+', rf'\g<1>{layers}',
                            text)
        assert n == 1, name
        return edited

    unused = with_hidden_layers("shallow", 3)
    assert unused != text
    archs.write_text(unused)
    proc = run(repsweep_bin, job, out)
    assert proc.returncode == 0 and "(0 in this run)" in proc.stderr, proc.stderr

    used = with_hidden_layers("narrow", 4)
    assert used != text
    archs.write_text(used)
    # after the accepted rerun, which rewrites the results file (its `updated` time)
    nc_bytes, journal_bytes = out.read_bytes(), journal.read_bytes()
    proc = run(repsweep_bin, job, out)
    assert proc.returncode == 2, proc.stderr
    assert "architecture records" in proc.stderr and "'same'" in proc.stderr, proc.stderr
    assert str(journal) in proc.stderr, proc.stderr
    assert out.read_bytes() == nc_bytes and journal.read_bytes() == journal_bytes


def test_same_name_edited_job_is_refused(repsweep_bin, tmp_path):
    """The hash covers the job file's full text: an edited job is another job."""
    job = write_job(tmp_path / "j.cfg", name="same", theory=False, seeds=(0,))
    out = tmp_path / "r.nc"
    assert run(repsweep_bin, job, out).returncode == 0
    job.write_text(job.read_text() + "# edited\n")
    proc = run(repsweep_bin, job, out)
    assert proc.returncode == 2 and "was written by job 'same'" in proc.stderr, proc.stderr


def test_out_that_is_a_directory_is_refused(repsweep_bin, tmp_path):
    job = write_job(tmp_path / "tiny.cfg", theory=False, seeds=(0,))
    proc = run(repsweep_bin, job, tmp_path)
    # refused with the other --out checks, before the job is read (opt_path)
    assert proc.returncode == 2 and f"got a directory '{tmp_path}'" in proc.stderr, proc.stderr
    assert not Path(str(tmp_path) + ".journal").exists()


def test_results_file_without_journal_is_refused_and_unchanged(repsweep_bin, tmp_path):
    job = write_job(tmp_path / "tiny.cfg", theory=False, seeds=(0,))
    out = tmp_path / "r.nc"
    out.write_bytes(b"someone else's file")
    proc = run(repsweep_bin, job, out)
    assert proc.returncode == 2 and "journal" in proc.stderr, proc.stderr
    assert out.read_bytes() == b"someone else's file"
    assert not Path(str(out) + ".journal").exists()


@pytest.mark.parametrize("damage,message", [
    (lambda b: b"XXXXXXXX" + b[8:], "not a repsweep journal"),
    (lambda b: b[:60] + bytes([b[60] ^ 0xFF]) + b[61:], "header is corrupt"),
    (lambda b: b[:50], "shorter than its"),
])
def test_corrupt_journal_header_is_refused(repsweep_bin, tmp_path, damage, message):
    job = write_job(tmp_path / "tiny.cfg", theory=False, seeds=(0,))
    out = tmp_path / "r.nc"
    assert run(repsweep_bin, job, out).returncode == 0
    journal = Path(str(out) + ".journal")
    journal.write_bytes(damage(journal.read_bytes()))
    damaged = journal.read_bytes()
    proc = run(repsweep_bin, job, out)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr and str(journal) in proc.stderr, proc.stderr
    assert journal.read_bytes() == damaged


def finished_tiny_run(repsweep_bin, tmp_path):
    """A finished run of the tiny job: (job, results file, its results, its journal)."""
    job = write_job(tmp_path / "tiny.cfg")
    out = tmp_path / "r.nc"
    assert run(repsweep_bin, job, out).returncode == 0
    return job, out, read_results(out), Path(str(out) + ".journal")


@pytest.mark.parametrize("cut,bad_crc", [(50, False), (0, True)])
def test_damaged_journal_tail_is_dropped_and_recomputed(repsweep_bin, tmp_path, cut, bad_crc):
    """A kill mid-append leaves a short or unchecked last record: it is dropped (only it),
    the trial is run again, and the results equal an undamaged run's."""
    job, out, reference, journal = finished_tiny_run(repsweep_bin, tmp_path)
    data = bytearray(journal.read_bytes())
    if cut:
        data = data[:-cut]
    if bad_crc:
        data[-1] ^= 0xFF
    journal.write_bytes(bytes(data))
    proc = run(repsweep_bin, job, out)
    assert proc.returncode == 0, proc.stderr
    assert "dropped" in proc.stderr and "resuming: 7 of 8 trials done" in proc.stderr, proc.stderr
    assert "(1 in this run)" in proc.stderr
    assert sorted(journal_indices(journal)) == list(range(8))
    assert_same_results(reference, read_results(out), "after a damaged tail")


def test_damaged_middle_journal_record_is_skipped_and_the_rest_kept(repsweep_bin, tmp_path):
    """Bytes damaged inside a record with intact records after it (not a kill's tail): only
    that record is skipped and its trial run again; the records after it are kept, the
    journal is not cut, and the results equal an undamaged run's."""
    job, out, reference, journal = finished_tiny_run(repsweep_bin, tmp_path)
    data = bytearray(journal.read_bytes())
    third = JOURNAL_HEADER + 2 * JOURNAL_SLOT  # the third of 8 records
    data[third + 100:third + 104] = b"XXXX"
    journal.write_bytes(bytes(data))
    proc = run(repsweep_bin, job, out)
    assert proc.returncode == 0, proc.stderr
    assert "skipped 1 slot(s) between intact records" in proc.stderr, proc.stderr
    assert "dropped" not in proc.stderr, proc.stderr
    assert "resuming: 7 of 8 trials done" in proc.stderr and "(1 in this run)" in proc.stderr
    indices = journal_indices(journal)
    assert len(indices) == 9 and sorted(set(indices)) == list(range(8)), indices
    assert_same_results(reference, read_results(out), "after a damaged middle record")
    # the damaged slot stays in the journal; status must not count it as a trial ahead
    proc = subprocess.run([repsweep_bin, "status", str(out)], capture_output=True, text=True,
                          env=env())
    assert proc.returncode == 0 and "done: 8 of 8" in proc.stdout, proc.stdout + proc.stderr
    assert "journal holds" not in proc.stdout, proc.stdout


def test_finished_job_rerun_does_nothing(repsweep_bin, tmp_path):
    job = write_job(tmp_path / "tiny.cfg")
    out = tmp_path / "r.nc"
    assert run(repsweep_bin, job, out).returncode == 0
    proc = run(repsweep_bin, job, out)
    assert proc.returncode == 0 and "resuming: 8 of 8" in proc.stderr and "(0 in this run)" \
        in proc.stderr, proc.stderr


@pytest.mark.parametrize("args,needle", [
    (["--bogus"], "--bogus"),
    (["--chunk", "0"], "--chunk"),
    (["--threads", "x"], "--threads"),
    (["--progress", "-1"], "--progress"),
    ([], "--out"),
])
def test_bad_flags_exit_2(repsweep_bin, tmp_path, args, needle):
    job = write_job(tmp_path / "tiny.cfg")
    cmd = [repsweep_bin, "run", str(job), *args]
    if args:
        cmd += ["--out", str(tmp_path / "r.nc")]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env(), timeout=60)
    assert proc.returncode == 2 and needle in proc.stderr, proc.stderr
    assert not (tmp_path / "r.nc.journal").exists()


def test_bad_job_file_exit_2(repsweep_bin, tmp_path):
    job = tmp_path / "bad.cfg"
    job.write_text('name = "bad";\nblocks = ( { name = "b"; nonsense = 1; } );\n')
    proc = run(repsweep_bin, job, tmp_path / "r.nc")
    assert proc.returncode == 2 and "bad.cfg:2" in proc.stderr, proc.stderr
    assert not (tmp_path / "r.nc.journal").exists()


def test_run_help(run_repsweep):
    out = run_repsweep("run", "--help").stdout
    assert "--out" in out and "Exit status" in out and "3 interrupted" in out


def test_run_reports_each_workers_busy_fraction(repsweep_bin, tmp_path):
    """Load balance and memory are visible to users: every computing rank prints its busy
    fraction, every rank (the scheduler too) its peak resident memory."""
    import re
    job = write_job(tmp_path / "busy.cfg", name="busy")
    proc = run(repsweep_bin, job, tmp_path / "busy.nc", ranks=3)
    assert proc.returncode == 0, proc.stderr
    lines = re.findall(r"^rank (\d+): busy ([0-9.]+) s of ([0-9.]+) s \(([0-9.]+)%\), "
                       r"peak memory ([0-9.]+) MiB$", proc.stderr, re.M)
    assert [int(r) for r, *_ in lines] == [1, 2], proc.stderr
    for _, busy, wall, pct, mem in lines:
        assert 0 <= float(busy) <= float(wall) + 0.05 and 0 <= float(pct) <= 100.5
        assert 1 < float(mem) < 4096, mem  # a process of this program: MiBs, not bytes or GiBs
    sched = re.findall(r"^rank 0: scheduler, peak memory ([0-9.]+) MiB$", proc.stderr, re.M)
    assert len(sched) == 1 and 1 < float(sched[0]) < 4096, proc.stderr


def test_diverged_trials_are_recorded_and_the_sweep_goes_on(repsweep_bin, tmp_path):
    """A trial whose training blows up (NaN/Inf) is stored with status 1 (diverged); the other
    trials of the sweep still run and the exit status is 0."""
    import netCDF4
    job = write_job(tmp_path / "div.cfg", name="div", gains=(1.05, 1.2), lrs=(1e4, 0.0025),
                    theory=False)
    out = tmp_path / "div.nc"
    proc = run(repsweep_bin, job, out)
    assert proc.returncode == 0, proc.stderr
    with netCDF4.Dataset(out) as nc:
        gain = nc["gain"][:]
        status = nc["status"][:]
    assert len(status) == 4
    assert all(s == 1 for g, s in zip(gain, status) if abs(g - 1.05) < 1e-9), status
    assert all(s == 0 for g, s in zip(gain, status) if abs(g - 1.2) < 1e-9), status


def test_results_file_records_provenance(repsweep_bin, tmp_path):
    """The job's text, the command line and every library's version travel with the results."""
    import netCDF4
    job = write_job(tmp_path / "prov.cfg", name="prov", theory=False, seeds=(0,), epochs=50)
    out = tmp_path / "prov.nc"
    proc = run(repsweep_bin, job, out)
    assert proc.returncode == 0, proc.stderr
    with netCDF4.Dataset(out) as nc:
        attrs = {k: nc.getncattr(k) for k in nc.ncattrs()}
    assert attrs["job_text"] == job.read_text()
    assert "run" in attrs["command_line"] and str(out) in attrs["command_line"]
    for key in ("repsweep_version", "repsweep_git_commit", "netcdf_version", "gsl_version",
                "openblas_config", "libconfig_version", "mpi_version", "created", "updated"):
        assert attrs.get(key), f"{key} missing or empty"
    assert "OpenBLAS" in attrs["openblas_config"]


def _check_rank0_bytes(repsweep_bin, job):
    check = subprocess.run([repsweep_bin, "check", str(job)], capture_output=True, text=True,
                           env=env())
    m = re.search(r"rank 0 \(schedules, writes\): about ([\d.]+) (B|KiB|MiB|GiB)",
                  check.stdout)
    assert m, check.stdout
    return float(m.group(1)) * {"B": 1, "KiB": 1024, "MiB": 1024 ** 2, "GiB": 1024 ** 3}[
        m.group(2)]


def test_check_sizes_rank_0_without_the_records(repsweep_bin, tmp_path):
    """Rank 0 keeps no record in memory (they stay in the journal and are streamed back when
    FILE.nc is written): per trial it holds 48 bytes (the store's index entry, a
    checkpoint's copy of it, the schedule's entry), plus the writer's bounded buffers. With
    trajectories of ~16 KB a record, 10^5 trials must not cost gigabytes (16b47a5 estimated
    2 records a trial: 3 GiB here), and the estimate grows by 48 bytes a trial."""
    record = "trajectory_stride = 1;"
    small = write_job(tmp_path / "small.cfg", seeds=(0,), epochs=200, record=record)
    out = tmp_path / "r.nc"
    assert run(repsweep_bin, small, out).returncode == 0
    header = Path(str(out) + ".journal").read_bytes()[:JOURNAL_HEADER]
    assert struct.unpack_from("<I", header, 12)[0] > 10000  # the records are large
    big = write_job(tmp_path / "big.cfg", seeds=range(50000), epochs=200, record=record)
    small_bytes, big_bytes = _check_rank0_bytes(repsweep_bin, small), \
        _check_rank0_bytes(repsweep_bin, big)
    assert big_bytes < 100 * 1024 ** 2, big_bytes
    grown = (2 * 50000 + 4) - (2 + 4)
    assert abs((big_bytes - small_bytes) - 48 * grown) <= 0.1 * 1024 ** 2, \
        (small_bytes, big_bytes, 48 * grown)
