"""`repsweep run --shard I/N`, `repsweep merge` and `repsweep status` in one process: shards
partition the grid round-robin, the merge of all shards equals an unsharded run (every
variable but the timings), a shard resumes after SIGTERM, wrong journals / overlapping shards /
other jobs / foreign files are refused, and status's numbers equal an independent count.
The sharded MPI run lives in tests/mpi (CTest label `mpi`)."""
import json
import shutil
import signal
import struct
import subprocess
import time
import zlib
from pathlib import Path

import numpy as np
import pytest

from sweep_util import (assert_same_results, env, journal_indices, read_results, run, run_cmd,
                        write_job)

N = 3
# write_job's grid: the narrow net over gains x seeds (first), then 4 theory-only trials
GAINS, LRS, SEEDS = (0.8, 1.2), (0.02, 0.0025), (0, 1, 2)
NET_TRIALS, TRIALS = 6, 10


def merge(repsweep_bin, out, *inputs):
    return subprocess.run([repsweep_bin, "merge", "--out", str(out), *map(str, inputs)],
                          capture_output=True, text=True, timeout=120, env=env())


def status(repsweep_bin, path, *extra):
    return subprocess.run([repsweep_bin, "status", str(path), *extra], capture_output=True,
                          text=True, timeout=60, env=env())


def attrs_of(path):
    import netCDF4
    with netCDF4.Dataset(path) as ds:
        return {k: ds.getncattr(k) for k in ds.ncattrs()}


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    d = tmp_path_factory.mktemp("shard")
    return write_job(d / "shard.cfg", name="shard", gains=GAINS, lrs=LRS, seeds=SEEDS,
                     epochs=300)


@pytest.fixture(scope="module")
def unsharded(repsweep_bin, job):
    out = job.parent / "all.nc"
    proc = run(repsweep_bin, job, out)
    assert proc.returncode == 0, proc.stderr
    return out


@pytest.fixture(scope="module")
def shards(repsweep_bin, job):
    outs = []
    for i in range(N):
        out = job.parent / f"shard{i}.nc"
        proc = run(repsweep_bin, job, out, "--shard", f"{i}/{N}")
        assert proc.returncode == 0, proc.stderr
        expected = len(range(i, TRIALS, N))
        assert f"starting: {expected} trials of shard {i}/{N} of job 'shard'" in proc.stderr
        assert f"done: {expected} of {expected} trials of shard {i}/{N}" in proc.stderr
        outs.append(out)
    return outs


def test_shards_partition_the_grid_round_robin(shards):
    for i, path in enumerate(shards):
        res = read_results(path)
        assert res["trial"].tolist() == list(range(i, TRIALS, N)), (i, res["trial"])
        a = res["_attrs"]
        assert (a["shard_index"], a["shard_count"]) == (i, N)
        assert a["grid_trials"] == a["trials_total"] == TRIALS
        assert a["trials_expected"] == a["trials_done"] == len(range(i, TRIALS, N))
        assert a["arch_names"] == "narrow,theory"
        narrow = sum(1 for k in range(NET_TRIALS) if k % N == i)
        theory = sum(1 for k in range(NET_TRIALS, TRIALS) if k % N == i)
        assert list(a["arch_trials_expected"]) == [narrow, theory], a["arch_trials_expected"]
        assert list(a["arch_grid_trials"]) == [NET_TRIALS, TRIALS - NET_TRIALS]
        assert isinstance(a["updated"], (int, np.integer)) and a["updated"] >= a["created_unix"]


def test_unsharded_file_says_shard_0_of_1(unsharded):
    a = attrs_of(unsharded)
    assert (a["shard_index"], a["shard_count"], a["trials_expected"]) == (0, 1, TRIALS)


def _attrs(var):
    """A variable's attributes, arrays (flag_values) as lists."""
    return {k: np.asarray(var.getncattr(k)).tolist() for k in var.ncattrs()}


def test_merge_of_all_shards_equals_unsharded_run(repsweep_bin, unsharded, shards, tmp_path):
    import netCDF4
    reference = read_results(unsharded)
    for order in (shards, shards[::-1]):
        out = tmp_path / "merged.nc"
        proc = merge(repsweep_bin, out, *order)
        assert proc.returncode == 0, proc.stderr
        assert f"merged {TRIALS} of {TRIALS} trials from {N} files" in proc.stderr
        merged = read_results(out)
        assert_same_results(reference, merged, "merged shards vs unsharded run")
        a = merged["_attrs"]
        assert (a["shard_index"], a["shard_count"]) == (0, 1)
        assert a["trials_expected"] == a["trials_done"] == a["grid_trials"] == TRIALS
        assert list(a["merged_from"]) == [str(p) for p in order]
        assert a["command_line"].startswith("merge --out")
        assert list(a["arch_trials_expected"]) == [NET_TRIALS, TRIALS - NET_TRIALS]
        assert a["job_hash"] == reference["_attrs"]["job_hash"]
        assert a["job_text"] == reference["_attrs"]["job_text"]
        # the timings are there too, and every variable keeps its attributes and dimensions
        with netCDF4.Dataset(unsharded) as ref, netCDF4.Dataset(out) as got:
            assert list(ref.variables) == list(got.variables)
            for name, var in ref.variables.items():
                assert var.dimensions == got[name].dimensions, name
                assert _attrs(var) == _attrs(got[name]), name
                # stored alike: compressed and chunked the same way
                assert var.filters() == got[name].filters(), name
                assert var.chunking() == got[name].chunking(), name
            t_ref = ref["train_seconds"][:]
            t_got = got["train_seconds"][:]
            assert np.isfinite(t_got[:NET_TRIALS]).all() and t_ref.shape == t_got.shape


def test_merge_of_some_shards_says_what_is_missing(repsweep_bin, shards, tmp_path):
    out = tmp_path / "partial.nc"
    proc = merge(repsweep_bin, out, shards[0], shards[2])
    assert proc.returncode == 0, proc.stderr
    missing = len(range(1, TRIALS, N))
    assert f"merged {TRIALS - missing} of {TRIALS} trials; missing: shard 1 of {N} " \
           f"({missing} trials)" in proc.stderr, proc.stderr
    res = read_results(out)
    assert res["trial"].tolist() == [k for k in range(TRIALS) if k % N != 1]
    js = json.loads(status(repsweep_bin, out, "--json").stdout)
    assert (js["done"], js["expected"], js["shard_count"]) == (TRIALS - missing, TRIALS, 1)


def test_merge_refuses_overlapping_shards(repsweep_bin, job, shards, tmp_path):
    out = tmp_path / "m.nc"
    proc = merge(repsweep_bin, out, shards[0], shards[1], shards[0])
    assert proc.returncode == 2 and "overlap" in proc.stderr and str(shards[0]) in proc.stderr
    # shard 0/2 shares trials 0 and 6 with shard 0/3
    half = tmp_path / "half0.nc"
    assert run(repsweep_bin, job, half, "--shard", "0/2").returncode == 0
    proc = merge(repsweep_bin, out, shards[0], half)
    assert proc.returncode == 2, proc.stderr
    assert str(half) in proc.stderr and str(shards[0]) in proc.stderr, proc.stderr
    assert "different --shard N" in proc.stderr, proc.stderr
    # a file whose trials are not those of the shard it claims (here: shard 1's trials
    # labelled shard 0) is refused before its rows could collide with shard 0's
    import netCDF4
    forged = tmp_path / "forged.nc"
    shutil.copy(shards[1], forged)
    with netCDF4.Dataset(forged, "a") as ds:
        ds.setncattr("shard_index", np.int64(2))
    proc = merge(repsweep_bin, out, shards[0], forged)
    assert proc.returncode == 2 and str(forged) in proc.stderr, proc.stderr
    assert "not in its shard" in proc.stderr, proc.stderr
    assert not out.exists() and not Path(str(out) + ".tmp").exists()


def test_merge_of_shards_of_different_n_equals_unsharded_run(repsweep_bin, job, unsharded,
                                                             tmp_path):
    """0/2, 1/4 and 3/4 do not overlap and cover the grid."""
    parts = []
    for shard in ("1/4", "0/2", "3/4"):
        parts.append(tmp_path / f"part{shard.replace('/', 'of')}.nc")
        assert run(repsweep_bin, job, parts[-1], "--shard", shard).returncode == 0
    out = tmp_path / "merged.nc"
    proc = merge(repsweep_bin, out, *parts)
    assert proc.returncode == 0 and f"merged {TRIALS} of {TRIALS} trials" in proc.stderr, \
        proc.stderr
    assert_same_results(read_results(unsharded), read_results(out), "0/2 + 1/4 + 3/4")
    proc = merge(repsweep_bin, out, parts[0], parts[1])
    missing = len(range(3, TRIALS, 4))
    assert proc.returncode == 0 and f"missing: {missing} trials in no given shard" in \
        proc.stderr, proc.stderr


def test_merge_refuses_another_jobs_file(repsweep_bin, shards, tmp_path):
    other = write_job(tmp_path / "other.cfg", name="other", gains=GAINS, lrs=LRS, seeds=SEEDS,
                      epochs=300, theory=False)
    other_out = tmp_path / "other1.nc"
    assert run(repsweep_bin, other, other_out, "--shard", f"1/{N}").returncode == 0
    out = tmp_path / "m.nc"
    proc = merge(repsweep_bin, out, shards[0], other_out)
    assert proc.returncode == 2, proc.stderr
    assert "different jobs" in proc.stderr and str(other_out) in proc.stderr, proc.stderr
    assert not out.exists()


def test_merge_refuses_foreign_files_and_its_own_inputs(repsweep_bin, unsharded, shards,
                                                        tmp_path):
    import netCDF4
    junk = tmp_path / "junk.nc"
    junk.write_bytes(b"not netCDF at all")
    foreign = tmp_path / "foreign.nc"
    with netCDF4.Dataset(foreign, "w") as ds:
        ds.createDimension("trial", 2)
        ds.createVariable("trial", "i8", ("trial",))[:] = [0, 1]
    out = tmp_path / "m.nc"
    for bad in (junk, foreign, tmp_path / "missing.nc"):
        proc = merge(repsweep_bin, out, shards[0], bad)
        assert proc.returncode == 2 and str(bad) in proc.stderr, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert not out.exists()
    before = shards[1].read_bytes()
    proc = merge(repsweep_bin, shards[1], shards[0], shards[1])
    assert proc.returncode == 2 and "also an input" in proc.stderr, proc.stderr
    assert shards[1].read_bytes() == before
    # an --out with a journal is a run's output: a later resume would overwrite the merge
    proc = merge(repsweep_bin, unsharded, shards[0], shards[1])
    assert proc.returncode == 2 and "journal" in proc.stderr, proc.stderr
    # an --out that cannot be created is bad input, named with the reason, before any reading
    proc = merge(repsweep_bin, tmp_path / "no" / "dir" / "m.nc", shards[0], shards[1])
    assert proc.returncode == 2, proc.stderr
    assert "--out: " in proc.stderr and "No such file or directory" in proc.stderr, proc.stderr
    for args in ([], ["--out", str(out)], [str(shards[0])]):
        proc = subprocess.run([repsweep_bin, "merge", *args], capture_output=True, text=True,
                              env=env())
        assert proc.returncode == 2 and "--out" in proc.stderr, (args, proc.stderr)


def test_run_refuses_the_journal_of_another_shard(repsweep_bin, job, unsharded, shards,
                                                  tmp_path):
    out = tmp_path / "s0.nc"
    shutil.copy(shards[0], out)
    shutil.copy(str(shards[0]) + ".journal", str(out) + ".journal")
    journal = Path(str(out) + ".journal")
    nc_bytes, journal_bytes = out.read_bytes(), journal.read_bytes()
    for args, ours in ((["--shard", f"1/{N}"], f"shard 1/{N}"), ([], "the whole job"),
                       (["--shard", "0/2"], "shard 0/2")):
        proc = run(repsweep_bin, job, out, *args)
        assert proc.returncode == 2, (args, proc.stderr)
        assert str(journal) in proc.stderr and f"holds shard 0/{N}" in proc.stderr, proc.stderr
        assert f"this run is {ours}" in proc.stderr, proc.stderr
        assert out.read_bytes() == nc_bytes and journal.read_bytes() == journal_bytes
    # and the other way round: an unsharded journal refuses a shard
    proc = run(repsweep_bin, job, unsharded, "--shard", f"2/{N}")
    assert proc.returncode == 2 and "holds the whole job" in proc.stderr, proc.stderr
    # the right shard resumes: nothing left to do
    proc = run(repsweep_bin, job, out, "--shard", f"0/{N}")
    assert proc.returncode == 0 and "(0 in this run)" in proc.stderr, proc.stderr


def test_format1_journal_is_read_as_unsharded(repsweep_bin, job, unsharded, tmp_path):
    """A journal written before shards (format 1: CRC of bytes 0-111 at 112, zeros after)
    still resumes, as the whole job."""
    out = tmp_path / "old.nc"
    journal = Path(str(out) + ".journal")
    data = bytearray(Path(str(unsharded) + ".journal").read_bytes())
    struct.pack_into("<I", data, 8, 1)                 # version 1
    data[112:128] = bytes(16)
    struct.pack_into("<I", data, 112, zlib.crc32(bytes(data[:112])))
    journal.write_bytes(bytes(data[:-204]))            # and drop the last record
    proc = run(repsweep_bin, job, out)
    assert proc.returncode == 0, proc.stderr
    assert f"resuming: {TRIALS - 1} of {TRIALS} trials done" in proc.stderr
    assert "(1 in this run)" in proc.stderr, proc.stderr
    proc = run(repsweep_bin, job, out, "--shard", f"0/{N}")
    assert proc.returncode == 2 and "holds the whole job" in proc.stderr, proc.stderr


@pytest.mark.parametrize("value", ["3/3", "a/b", "-1/2", "1/0", "1/", "/2", "0/3x", "0 / 3",
                                   "4294967296/4294967297"])
def test_bad_shard_values_exit_2(repsweep_bin, job, tmp_path, value):
    proc = run(repsweep_bin, job, tmp_path / "r.nc", "--shard", value)
    assert proc.returncode == 2 and "--shard" in proc.stderr and value in proc.stderr, \
        proc.stderr
    assert not (tmp_path / "r.nc.journal").exists()


# --- a shard stopped by SIGTERM, resumed; status on its partial file ---

@pytest.fixture(scope="module")
def long_job(tmp_path_factory):
    """24 trials, 3000 epochs; the first gain's trials diverge (lr 1e4) so that failures
    show: shard 1/2 holds 4 of them (indices 1, 3, 5, 7, run first: equal cost estimates
    go in index order) and 8 that train."""
    d = tmp_path_factory.mktemp("long")
    return write_job(d / "long.cfg", name="long", gains=(1.05, 0.8, 1.2),
                     lrs=(1e4, 0.02, 0.0025), seeds=range(8), epochs=3000, theory=False)


@pytest.fixture(scope="module")
def interrupted(repsweep_bin, long_job):
    """Shard 1/2 of long_job stopped by SIGTERM after its diverging trials and a first one
    that trained: (out, a copy of the partial results file, the interrupted run's stderr)."""
    out = long_job.parent / "long1.nc"
    journal = Path(str(out) + ".journal")
    proc = subprocess.Popen(run_cmd(repsweep_bin, long_job, out, "--shard", "1/2", "--chunk",
                                    "1"), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env())
    deadline = time.time() + 60
    while time.time() < deadline and not (journal.exists() and
                                           len(journal_indices(journal)) >= 5):
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 3, err
    partial = long_job.parent / "long1-partial.nc"
    shutil.copy(out, partial)
    return out, partial, err


def test_shard_resumes_after_sigterm_and_equals_uninterrupted(repsweep_bin, long_job,
                                                              interrupted, tmp_path):
    out, partial, err = interrupted
    assert "interrupted by signal SIGTERM" in err and "of shard 1/2" in err, err
    odd = list(range(1, 24, 2))
    done = read_results(partial)["trial"].tolist()
    assert 0 < len(done) < len(odd) and set(done) <= set(odd), done
    proc = run(repsweep_bin, long_job, out, "--shard", "1/2")
    assert proc.returncode == 0, proc.stderr
    assert f"resuming: {len(done)} of {len(odd)} trials done of shard 1/2" in proc.stderr
    assert f"({len(odd) - len(done)} in this run)" in proc.stderr, proc.stderr
    assert sorted(journal_indices(str(out) + ".journal")) == odd
    fresh = tmp_path / "fresh1.nc"
    assert run(repsweep_bin, long_job, fresh, "--shard", "1/2").returncode == 0
    assert_same_results(read_results(fresh), read_results(out), "resumed shard vs fresh")


def test_status_of_a_partial_shard_equals_an_independent_count(repsweep_bin, interrupted):
    _, partial, _ = interrupted
    res = read_results(partial, timings=True)
    a = res["_attrs"]
    proc = status(repsweep_bin, partial, "--json")
    assert proc.returncode == 0, proc.stderr
    js = json.loads(proc.stdout)
    done = len(res["trial"])
    expected = len(range(1, 24, 2))
    failed = res["status"] != 0
    assert failed.any() and not failed.all(), res["status"]   # the counts below mean something
    assert (js["job"], js["shard_index"], js["shard_count"]) == ("long", 1, 2)
    assert (js["done"], js["expected"], js["grid_trials"]) == (done, expected, 24)
    assert js["failures"] == int(failed.sum())
    assert js["failures_by_status"] == {str(s): int((res["status"] == s).sum())
                                        for s in set(res["status"][failed].tolist())}
    assert js["converged"] == int((res["converged"] != 0).sum())
    wall = int(a["updated"]) - int(a["created_unix"])
    assert js["wall_seconds"] == wall
    if wall > 0:
        assert js["trials_per_hour"] == pytest.approx(3600 * done / wall, rel=1e-12)
        assert js["eta_seconds"] == pytest.approx((expected - done) * wall / done, rel=1e-9)
    else:
        assert js["trials_per_hour"] is None and js["eta_seconds"] is None
    core = np.nansum(res["train_seconds"]) + np.nansum(res["fit_seconds"])
    assert js["trials_per_core_hour"] == pytest.approx(3600 * done / core, rel=1e-9)
    narrow = js["architectures"]["narrow"]
    assert (narrow["done"], narrow["expected"], narrow["failures"]) == \
        (done, expected, int(failed.sum()))
    finite = res["fit_loss_rel"][np.isfinite(res["fit_loss_rel"])]
    if len(finite):
        assert narrow["median_fit_loss_rel"] == pytest.approx(float(np.median(finite)),
                                                              rel=1e-12)
    assert list(js["architectures"]) == ["narrow"]
    text = status(repsweep_bin, partial)
    assert text.returncode == 0, text.stderr
    assert "shard 1/2 of 24 trials" in text.stdout, text.stdout
    assert f"done: {done} of {expected} trials ({100 * done / expected:.1f}%)" in text.stdout
    assert f"failures: {int(failed.sum())} (" in text.stdout, text.stdout
    assert f"{done}/{expected}" in text.stdout


def test_status_says_when_the_journal_is_ahead_of_the_file(repsweep_bin, long_job,
                                                           interrupted, tmp_path):
    out, partial, _ = interrupted
    if len(journal_indices(str(out) + ".journal")) < 12:   # the resume test may not have run
        assert run(repsweep_bin, long_job, out, "--shard", "1/2").returncode == 0
    stale = tmp_path / "stale.nc"
    shutil.copy(partial, stale)
    shutil.copy(str(out) + ".journal", str(stale) + ".journal")
    proc = status(repsweep_bin, stale)
    assert proc.returncode == 0, proc.stderr
    assert f"journal holds 12 trials; {stale} is rewritten every --save-every seconds" in \
        proc.stdout, proc.stdout
    assert json.loads(status(repsweep_bin, stale, "--json").stdout)["journal_trials"] == 12
    proc = status(repsweep_bin, out)          # the finished file: nothing to say
    assert proc.returncode == 0 and "journal holds" not in proc.stdout, proc.stdout


def test_status_before_the_first_write_reports_the_journal(repsweep_bin, interrupted,
                                                           tmp_path):
    """A new run writes FILE.nc only after --save-every seconds; until then status reports
    what the journal's header and size say instead of 'no such file'."""
    out, _, _ = interrupted
    early = tmp_path / "early.nc"
    shutil.copy(str(out) + ".journal", str(early) + ".journal")
    records = len(journal_indices(str(early) + ".journal"))
    proc = status(repsweep_bin, early)
    assert proc.returncode == 0, proc.stderr
    assert f"{early}: not written yet" in proc.stdout, proc.stdout
    assert f"holds {records} trials" in proc.stdout and "shard 1/2" in proc.stdout, proc.stdout
    info = json.loads(status(repsweep_bin, early, "--json").stdout)
    assert info["results_file_written"] is False and info["journal_trials"] == records
    assert (info["shard_index"], info["shard_count"]) == (1, 2)
    # the full report's keys a monitoring script reads, where the header can give them
    full = json.loads(status(repsweep_bin, out, "--json").stdout)
    assert info["job"] is None and info["done"] == records
    assert info["expected"] == full["expected"] and info["grid_trials"] == full["grid_trials"]


def test_status_of_bad_files_exits_2(repsweep_bin, unsharded, tmp_path):
    import netCDF4
    junk = tmp_path / "junk.nc"
    junk.write_bytes(b"\x89HDF\r\n\x1a\n but cut short")
    foreign = tmp_path / "foreign.nc"
    with netCDF4.Dataset(foreign, "w") as ds:
        ds.title = "someone else's data"
    older = tmp_path / "older.nc"
    shutil.copy(unsharded, older)
    with netCDF4.Dataset(older, "a") as ds:
        ds.delncattr("trials_expected")
    for path, needle in ((tmp_path / "missing.nc", "No such file"), (junk, "netCDF"),
                         (foreign, "not a repsweep results file"),
                         (older, "trials_expected")):
        proc = status(repsweep_bin, path)
        assert proc.returncode == 2, (path, proc.stdout, proc.stderr)
        assert str(path) in proc.stderr and needle in proc.stderr, proc.stderr
        assert proc.stdout == ""
    for args in ([], ["a.nc", "b.nc"], ["--bogus", str(unsharded)]):
        proc = subprocess.run([repsweep_bin, "status", *args], capture_output=True, text=True,
                              env=env())
        assert proc.returncode == 2, (args, proc.stderr)


def test_status_and_merge_help(run_repsweep):
    for cmd, needles in (("status", ("--json", "Exit status", "per core-hour")),
                         ("merge", ("--out", "Exit status", "missing", "overlap"))):
        out = run_repsweep(cmd, "--help").stdout
        assert all(n in out for n in needles), (cmd, out)
    top = run_repsweep("--help").stdout
    assert "status" in top and "merge" in top and "--shard" in top
    assert "--shard I/N" in run_repsweep("run", "--help").stdout
