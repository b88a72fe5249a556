"""`repsweep run --shard` under MPI: shard 1/3 run with `mpirun -n 3` equals the same shard
run in one process, and merged with the other shards equals an unsharded run (every
variable except the timings)."""
import subprocess

from sweep_util import assert_same_results, env, read_results, run, write_job


def test_sharded_mpi_run_equals_one_process_and_merges_to_unsharded(repsweep_bin, tmp_path):
    job = write_job(tmp_path / "tiny.cfg", seeds=(0, 1, 2))     # 6 network + 4 theory trials
    mpi = tmp_path / "mpi1.nc"
    proc = run(repsweep_bin, job, mpi, "--shard", "1/3", "--chunk", "1", ranks=3)
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    assert "done: 3 of 3 trials of shard 1/3" in proc.stderr, proc.stderr
    shards = []
    for i in range(3):
        shards.append(tmp_path / f"one{i}.nc")
        assert run(repsweep_bin, job, shards[-1], "--shard", f"{i}/3").returncode == 0
    whole = tmp_path / "whole.nc"
    assert run(repsweep_bin, job, whole).returncode == 0
    mpi_res = read_results(mpi)
    assert mpi_res["trial"].tolist() == [1, 4, 7]
    assert_same_results(read_results(shards[1]), mpi_res, "shard 1/3: 3 ranks vs 1 process")
    merged = tmp_path / "merged.nc"
    proc = subprocess.run([repsweep_bin, "merge", "--out", str(merged), str(shards[0]),
                           str(mpi), str(shards[2])], capture_output=True, text=True,
                          env=env(), timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert_same_results(read_results(whole), read_results(merged), "merged vs unsharded")
