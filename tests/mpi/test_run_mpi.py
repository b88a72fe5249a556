"""`repsweep run` under MPI: the same job with 1 process (no mpirun), 2 and 3 ranks
(`mpirun --oversubscribe`) gives identical results, every variable except the timings."""
from pathlib import Path

from sweep_util import assert_same_results, read_results, run, write_job


def test_results_do_not_depend_on_rank_count(repsweep_bin, tmp_path):
    job = write_job(tmp_path / "tiny.cfg")
    results = {}
    for ranks in (None, 2, 3):
        out = tmp_path / f"ranks{ranks or 1}.nc"
        # --chunk 1: more, smaller chunks, so the 3-rank run interleaves the workers
        proc = run(repsweep_bin, job, out, "--chunk", "1", ranks=ranks)
        assert proc.returncode == 0, (ranks, proc.stdout, proc.stderr)
        results[ranks or 1] = read_results(out)
    one = results[1]
    assert len(one["trial"]) == 8 and list(one["trial"]) == list(range(8))
    assert (one["status"] == 0).all(), one["status"]
    for ranks in (2, 3):
        assert_same_results(one, results[ranks], f"1 rank vs {ranks} ranks")


def test_signal_under_mpi_exits_3_and_saves(repsweep_bin, tmp_path):
    """SIGUSR1 to mpirun (which forwards it to every rank) stops a 3-rank sweep."""
    import signal
    import subprocess
    import time

    from sweep_util import journal_indices, run_cmd, env

    job = write_job(tmp_path / "long.cfg", name="long", gains=(0.8, 1.2), seeds=range(20),
                    epochs=3000, theory=False)
    out = tmp_path / "long.nc"
    proc = subprocess.Popen(run_cmd(repsweep_bin, job, out, "--chunk", "1", ranks=3),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env())
    journal = Path(str(out) + ".journal")
    deadline = time.time() + 60
    while time.time() < deadline and not (journal.exists() and journal_indices(journal)):
        time.sleep(0.05)
    assert journal_indices(journal), "no trial finished within 60 s"
    t0 = time.time()
    proc.send_signal(signal.SIGUSR1)
    _, err = proc.communicate(timeout=30)
    elapsed = time.time() - t0
    assert proc.returncode == 3, err
    assert elapsed < 10, elapsed
    res = read_results(out)
    assert sorted(res["trial"]) == sorted(journal_indices(journal))
    assert 0 < len(res["trial"]) < 40
