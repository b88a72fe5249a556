#!/usr/bin/python3
"""bench_sweep.py — `repsweep run` at scale: load balance, dispatch rate, output size.

Run on demand (not in CI), from anywhere, with Debian's interpreter:

    /usr/bin/python3 tests/bench/bench_sweep.py balance  [--workers 2] [--bin PATH]
    /usr/bin/python3 tests/bench/bench_sweep.py dispatch [--ranks 8] [--trials 500000] [--chunk N]
    /usr/bin/python3 tests/bench/bench_sweep.py scale    [--trials 1000000] [--save-every 5]
    /usr/bin/python3 tests/bench/bench_sweep.py scale    --network --trials 100000 [--stride 120]

balance   a mixed-cost job (the 20 x 500 `default` net for 1000 epochs, ~5 s a trial, and the
          `narrow` net for 200 epochs, ~0.07 s a trial: ~75x apart; ~60 core-seconds in all)
          run by `mpirun -n W+1` (rank 0 only schedules: W workers). Prints the overall
          efficiency sum(train_seconds + fit_seconds) / (W x sweep wall time) — the results
          file does not say which rank ran a trial, so per-rank busy fractions are not
          available — and what a static equal split by trial count, in grid order, would
          have given (each part's sum of per-trial seconds / the largest part's).
dispatch  theory-only trials of one epoch (the cheapest trial there is) through rank 0 with
          R oversubscribed ranks: trials / sweep wall time, where the sweep wall time is the
          run's wall time minus that of rerunning the same command on the finished output
          (which computes nothing: MPI start-up, journal read, FILE.nc rewrite). The same
          for one process (no mpirun; it computes too), and the fsync latency of this
          directory's filesystem (the journal is fsync'ed once per returned chunk).
scale     N theory-only trials of one epoch by one `repsweep run` process, with checkpoints
          off and every --save-every seconds: wall times (their difference estimates the
          checkpoints' share; builds that report their checkpoints print that too), rank 0's
          peak RSS (the process's, from wait4), the time of the final FILE.nc rewrite alone (a
          rerun), FILE.nc's size against its variables' uncompressed size, the journal's; then
          xarray: open, load, a groupby mean over the fastest axis (target_gap: 100 trials a
          group for N = 1e6) grouped by the other four, and a groupby over target_gap.
          --network instead builds a network job of N trials (arch x gain x input_gap x
          target_gap x 100 seeds) whose journal is synthesised here (random summaries, same
          binary format as src/store.c, behind the header a killed `repsweep run` wrote; with
          --stride S, smooth trajectories every S epochs) and lets `repsweep run` turn it into
          FILE.nc (a rerun that finds every trial done: the real writer on a real seed axis;
          its time and rank 0's peak RSS are the final write's); xarray then
          averages over seeds grouped by (arch, gain, input_gap, target_gap).

The binary is --bin, else $REPSWEEP_BIN, else build/repsweep. Scratch files go to a temporary
directory (--dir to choose its parent; it is removed unless --keep). Numbers are wall-clock
times: run on an otherwise idle machine (the load average is printed).
"""
import argparse
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MPI_ENV = {"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
           "OMPI_MCA_rmaps_base_oversubscribe": "1"}
TARGET_EFFICIENCY = 0.90
TARGET_DISPATCH = 1e4


def repsweep_bin(arg):
    path = Path(arg or os.environ.get("REPSWEEP_BIN") or REPO / "build" / "repsweep")
    if not path.is_file():
        sys.exit(f"bench_sweep: repsweep binary not found at {path} (build it, or set "
                 f"REPSWEEP_BIN / --bin)")
    return str(path.resolve())


# the last run's peak resident memory (MiB; the process itself, i.e. rank 0 without mpirun)
# and its stderr
LAST = {"maxrss_mib": float("nan"), "stderr": ""}


def run(cmd, cwd, ranks=None):
    """Run `repsweep run ...` (under mpirun when ranks is given); returns wall seconds."""
    if ranks is not None:
        cmd = ["mpirun", "-n", str(ranks), "--oversubscribe", *cmd]
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", **MPI_ENV)
    with tempfile.TemporaryFile("w+") as fout, tempfile.TemporaryFile("w+") as ferr:
        t = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=fout, stderr=ferr, text=True, env=env)
        _, status, usage = os.wait4(proc.pid, 0)  # its rusage: the peak resident memory
        wall = time.perf_counter() - t
        proc.returncode = os.waitstatus_to_exitcode(status)
        fout.seek(0)
        ferr.seek(0)
        p = subprocess.CompletedProcess(cmd, proc.returncode, fout.read(), ferr.read())
    LAST["stderr"] = p.stderr
    LAST["maxrss_mib"] = usage.ru_maxrss / 1024.0  # KiB on Linux
    if p.returncode != 0:
        sys.exit(f"bench_sweep: `{' '.join(cmd)}` exited {p.returncode}:\n{p.stdout}{p.stderr}")
    # repsweep's own per-rank load balance: "rank R: busy X s of Y s (Z%)"
    for line in p.stderr.splitlines():
        if line.startswith("rank ") and ": busy " in line:
            print("  repsweep:", line)
    return wall


def mib(path):
    return os.path.getsize(path) / 2**20


def header(binary):
    print(f"repsweep: {binary}")
    print(f"machine: {os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.2f} (wall-clock "
          f"numbers: run idle)")


def cfg_list(values):
    """A libconfig array of floats (every element a decimal: libconfig wants one type)."""
    return "[" + ", ".join(repr(round(float(v), 12)) for v in values) + "]"


def theory_job(name, trials):
    """A theory-only job of `trials` one-epoch trials (a multiple of 10^4): 10 rate_h x 10
    rate_y x 10 dh2_0 x 10 dyhat2_0 x trials/10^4 target gaps (the fastest axis)."""
    if trials % 10000 or trials <= 0:
        sys.exit("bench_sweep: --trials must be a positive multiple of 10000")
    n_tg = trials // 10000
    ten = lambda scale: cfg_list(scale * (i + 1) for i in range(10))
    tg = cfg_list((i + 1) / n_tg for i in range(n_tg))
    return (f'name = "{name}";\n'
            f'blocks = (\n'
            f'  {{ name = "theory"; theory_only = true;\n'
            f'    rate_h = {ten(1e-4)}; rate_y = {ten(1e-3)};\n'
            f'    dh2_0 = {ten(0.1)}; dyhat2_0 = {ten(0.01)};\n'
            f'    input_gaps = [1.0]; target_gaps = {tg}; epochs = 1; }}\n'
            f');\n')


# --- 1. load balance ---------------------------------------------------------------

BALANCE_JOB = """name = "bench-balance";
architectures_file = "%s";
precision = "float64";
record = { all_layers = false; trajectory_stride = 0; };
blocks = (
  { # expensive: the 20 x 500 net, 1000 epochs (~5 s a trial on one core)
    name = "expensive"; architectures = ["default"]; gains = [1.0]; lr = 0.005; epochs = 1000;
    input_gaps = [1.0]; target_gaps = [0.7071067811865476]; seeds = { first = 0; count = %d; };
  },
  { # cheap: the 20 x 50 net, 200 epochs (~0.07 s a trial, the fit included)
    name = "cheap"; architectures = ["narrow"]; gains = [1.05]; lr = 0.005; epochs = 200;
    input_gaps = [1.0]; target_gaps = [0.7071067811865476]; seeds = { first = 0; count = %d; };
  }
);
"""


def static_split(costs, parts):
    """Busy fraction of each of `parts` equal-count consecutive slices of `costs`."""
    n = len(costs)
    bounds = [round(i * n / parts) for i in range(parts + 1)]
    sums = [sum(costs[bounds[i]:bounds[i + 1]]) for i in range(parts)]
    return sums, [s / max(sums) for s in sums]


def bench_balance(args, binary, tmp):
    import netCDF4

    workers = args.workers
    job = tmp / "balance.cfg"
    job.write_text(BALANCE_JOB % (REPO / "jobs" / "architectures.cfg", args.expensive,
                                  args.cheap))
    out = tmp / "balance.nc"
    cmd = [binary, "run", str(job), "--out", str(out), "--progress", "0"]
    print(f"\n== load balance: {args.expensive} x default/1000 epochs + {args.cheap} x "
          f"narrow/200 epochs, mpirun -n {workers + 1} (rank 0 schedules, {workers} workers)")
    wall = run(cmd, tmp, ranks=workers + 1)
    rerun = run(cmd, tmp, ranks=workers + 1)  # everything done: start-up + FILE.nc rewrite
    with netCDF4.Dataset(out) as nc:
        order = nc["trial"][:].argsort()
        block = nc["block"][:][order]
        sec = (nc["train_seconds"][:] + nc["fit_seconds"][:])[order]
    costs = [float(c) for c in sec]
    total = sum(costs)
    exp = [c for c, b in zip(costs, block) if b == 0]
    chp = [c for c, b in zip(costs, block) if b == 1]
    sweep = wall - rerun
    print(f"trials: {len(costs)}; sum of per-trial seconds (train + fit) {total:.1f} s; "
          f"expensive trial mean {sum(exp) / len(exp):.3f} s, cheap {sum(chp) / len(chp):.4f} s "
          f"(ratio {sum(exp) / len(exp) / (sum(chp) / len(chp)):.0f}x)")
    print(f"wall {wall:.2f} s; rerun on the finished output (start-up + FILE.nc) {rerun:.2f} s; "
          f"sweep {sweep:.2f} s; ideal (sum / {workers}) {total / workers:.2f} s")
    eff_wall = total / (workers * wall)
    eff_sweep = total / (workers * sweep)
    print(f"dynamic (repsweep): efficiency sum / ({workers} x sweep) = {eff_sweep:.1%}   "
          f"[sum / ({workers} x wall) = {eff_wall:.1%}]   target >= {TARGET_EFFICIENCY:.0%}: "
          f"{'PASS' if eff_sweep >= TARGET_EFFICIENCY else 'MISS'}")
    sums, fr = static_split(costs, workers)
    print(f"static equal split by count, grid order: parts {', '.join(f'{s:.1f} s' for s in sums)}"
          f"; busy fractions {', '.join(f'{f:.1%}' for f in fr)}; efficiency "
          f"{total / (workers * max(sums)):.1%}, wall >= {max(sums):.1f} s")
    print("note: per-rank busy fractions need the rank of each trial (not in the results file);"
          " the efficiency above is their mean.")


# --- 2. dispatch ---------------------------------------------------------------------

def fsync_latency(directory, n=200, nbytes=64 * 204):
    path = Path(directory) / "fsync.probe"
    buf = b"\0" * nbytes
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        t = time.perf_counter()
        for _ in range(n):
            os.write(fd, buf)
            os.fsync(fd)
        return (time.perf_counter() - t) / n
    finally:
        os.close(fd)
        path.unlink()


def bench_dispatch(args, binary, tmp):
    n = args.trials
    job = tmp / "dispatch.cfg"
    job.write_text(theory_job("bench-dispatch", n))
    extra = ["--chunk", str(args.chunk)] if args.chunk else []
    chunk = args.chunk or 64
    print(f"\n== dispatch: {n} theory-only trials of 1 epoch, chunks of {chunk}")
    rows = []
    for label, ranks in ((f"mpirun -n {args.ranks} (rank 0 schedules)", args.ranks),
                         ("one process (computes too)", None)):
        out = tmp / f"dispatch{ranks or 1}.nc"
        cmd = [binary, "run", str(job), "--out", str(out), "--progress", "0", *extra]
        wall = run(cmd, tmp, ranks=ranks)
        rerun = run(cmd, tmp, ranks=ranks)
        rows.append((label, wall, rerun))
        print(f"{label:<34} wall {wall:6.2f} s, rerun (start-up + FILE.nc) {rerun:5.2f} s, "
              f"sweep {wall - rerun:6.2f} s: {n / (wall - rerun):9.0f} trials/s "
              f"({n / wall:8.0f} /s over the whole wall)")
    rate = n / (rows[0][1] - rows[0][2])
    print(f"through rank 0 with {args.ranks} ranks: {rate:.0f} trials/s, target >= "
          f"{TARGET_DISPATCH:.0f}: {'PASS' if rate >= TARGET_DISPATCH else 'MISS'}")
    lat = fsync_latency(tmp)
    batches = -(-n // chunk)
    print(f"where the time goes: {batches} journal appends of <= {chunk} records, fsync "
          f"latency here {1e3 * lat:.3f} ms -> ~{batches * lat:.2f} s of fsync; the "
          f"FILE.nc rewrite is the rerun's time (once at the end, and every --save-every s)")


# --- 3. output scale -----------------------------------------------------------------

NETWORK_ARCHS = ["default", "convolution", "skip", "shallow", "narrow", "dropout", "linear",
                 "relu", "elu", "tanh"]
NETWORK_SEEDS = 100


def network_job(trials, stride=0):
    """arch x gain x input_gap x target_gap x 100 seeds = trials (a multiple of 10^5);
    trajectories every `stride` epochs of 6000 if stride > 0."""
    if trials % 100000 or trials <= 0:
        sys.exit("bench_sweep: with --network, --trials must be a positive multiple of 100000")
    n_tg = trials // (10 * 10 * 10 * NETWORK_SEEDS)
    lst = cfg_list
    record = f"record = {{ trajectory_stride = {stride}; }};\n" if stride > 0 else ""
    return (f'name = "bench-scale-network";\n'
            f'architectures_file = "{REPO / "jobs" / "architectures.cfg"}";\n' + record +
            f'blocks = (\n'
            f'  {{ name = "net"; architectures = '
            f'[{", ".join(chr(34) + a + chr(34) for a in NETWORK_ARCHS)}];\n'
            f'    gains = {lst([0.5 + 0.1 * i for i in range(10)])}; lr = 0.001; epochs = 6000;\n'
            f'    input_gaps = {lst([0.5 + 0.1 * i for i in range(10)])};\n'
            f'    target_gaps = {lst([0.1 * (i + 1) for i in range(n_tg)])};\n'
            f'    seeds = {{ first = 0; count = {NETWORK_SEEDS}; }}; }}\n'
            f');\n')


def journal_header(binary, job, out, tmp):
    """The 128-byte header `repsweep run` writes for this job (src/store.c: it holds the
    architectures' digest, which only repsweep computes): start the run, wait for the header,
    kill it, take the header, remove what it wrote."""
    journal = Path(str(out) + ".journal")
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", **MPI_ENV)
    proc = subprocess.Popen([binary, "run", str(job), "--out", str(out), "--progress", "0"],
                            cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=env)
    try:
        for _ in range(6000):
            if journal.exists() and journal.stat().st_size >= 128:
                break
            time.sleep(0.01)
    finally:
        proc.kill()
        proc.wait()
    head = journal.read_bytes()[:128]
    if len(head) < 128:
        sys.exit(f"bench_sweep: `repsweep run` wrote no journal header for {job}")
    journal.unlink()
    for extra in (out, Path(str(out) + ".tmp")):
        if extra.exists():
            extra.unlink()
    return head


def synth_journal(path, head, trials, stride):
    """A journal in src/store.c's format after `head` (journal_header) holding `trials`
    finished network trials with random summaries and, with trajectories, smooth random
    curves (decaying exponentials: compressible like real ones). Native (little-endian)
    byte order."""
    import numpy as np

    if sys.byteorder != "little":
        sys.exit("bench_sweep: --network synthesises a little-endian journal")
    rec_bytes = struct.unpack_from("<I", head, 12)[0]
    extras = (rec_bytes - 200) // 8
    rng = np.random.default_rng(0)
    chunk = 1 << 14
    epochs = np.arange(extras // 8 if extras else 0, dtype=float) * max(stride, 1)
    with open(path, "wb") as f:
        f.write(head)
        for s in range(0, trials, chunk):
            e = min(trials, s + chunk)
            m = e - s
            # 25 fields of 8 bytes: index, 5 int64 (status .. epochs_run), 19 doubles
            rec = np.zeros((m, rec_bytes // 8), dtype="<u8")
            rec[:, 0] = np.arange(s, e, dtype=np.uint64)
            ints = rec[:, 1:6].view("<i8")
            ints[:, 1] = 1  # converged
            ints[:, 2] = 1  # fit_converged
            ints[:, 4] = 6000
            rec[:, 6:25] = rng.random((m, 19)).view("<u8")
            if extras:
                E = extras // 8
                rate = 10 ** rng.uniform(-4, -2, (m, 1))
                curves = np.empty((m, 8, E))
                for k in range(8):  # measured and theory: dh2, dyhat2, w, loss
                    a, b = rng.random((m, 1)), rng.random((m, 1))
                    curves[:, k] = a * np.exp(-rate * epochs) + b
                rec[:, 25:] = curves.reshape(m, 8 * E).view("<u8")
            raw = rec.tobytes()
            slots = bytearray()
            for i in range(m):
                r = raw[rec_bytes * i:rec_bytes * (i + 1)]
                slots += r
                slots += struct.pack("<I", zlib.crc32(r))
            f.write(slots)


def uncompressed_mib(path):
    """What the file's variables hold, uncompressed."""
    import netCDF4

    with netCDF4.Dataset(path) as nc:
        return sum(v.size * v.dtype.itemsize for v in nc.variables.values()
                   if v.dtype != str) / 2**20


def xarray_timings(path, network):
    import numpy as np
    import pandas as pd
    import xarray as xr

    t = time.perf_counter()
    ds = xr.open_dataset(path)
    t_open = time.perf_counter() - t
    t = time.perf_counter()
    ds = ds.load()
    t_load = time.perf_counter() - t
    cols = (["arch", "gain", "input_gap", "target_gap"] if network
            else ["rate_h", "rate_y", "dh2_initial", "dyhat2_initial"])
    over = "seed" if network else "target_gap"
    vals = ["dh2_final", "dyhat2_final", "w_final", "dh2_predicted", "A_high"]
    t = time.perf_counter()
    key, _ = pd.MultiIndex.from_arrays([ds[c].values for c in cols]).factorize()
    key = xr.DataArray(key, dims="trial", name="group")
    mean = ds[vals].groupby(key).mean()
    t_group = time.perf_counter() - t
    t = time.perf_counter()
    mean2 = ds[vals].groupby(ds[over]).mean()
    t_group2 = time.perf_counter() - t
    t = time.perf_counter()
    grid = ds[cols + [over] + vals].set_coords(cols + [over]).set_index(trial=cols + [over])
    mean3 = grid.unstack("trial").drop_vars(over).mean(over)
    t_unstack = time.perf_counter() - t
    t = time.perf_counter()
    mean4 = ds[cols + vals].to_dataframe().groupby(cols, sort=False).mean()
    t_pandas = time.perf_counter() - t
    print(f"xarray {xr.__version__}: open_dataset {t_open:.2f} s, load() {t_load:.2f} s "
          f"({ds.sizes['trial']} trials, {len(ds.data_vars)} variables)")
    print(f"  groupby mean over {over} (key = ({', '.join(cols)}), factorized): "
          f"{t_group:.2f} s -> {mean.sizes['group']} groups")
    print(f"  groupby({over}).mean(): {t_group2:.2f} s -> {mean2.sizes[over]} groups")
    print(f"  set_index({', '.join(cols)}, {over}).unstack().mean({over!r}): {t_unstack:.2f} s "
          f"-> {dict(mean3[vals[0]].sizes)}")
    print(f"  pandas: to_dataframe().groupby([{', '.join(cols)}]).mean(): {t_pandas:.2f} s -> "
          f"{len(mean4)} groups")
    print(f"  total open + load + first groupby: {t_open + t_load + t_group:.2f} s")
    if "trial" in ds.coords and len(ds.coords) == 1:
        print("  note: only `trial` is an xarray coordinate; arch, gain, seed, ... open as data "
              "variables (no CF `coordinates` attribute on the results variables)")


def checkpoint_line(stderr):
    """repsweep's own account of its checkpoints (builds that print one), else None."""
    for line in stderr.splitlines():
        if line.startswith("checkpoints:"):
            return line
    return None


def bench_scale(args, binary, tmp):
    n = args.trials
    out = tmp / "scale.nc"
    journal = tmp / "scale.nc.journal"
    if args.network:
        job = tmp / "scale-network.cfg"
        text = network_job(n, args.stride)
        job.write_text(text)
        print(f"\n== output scale: {n} network trials"
              f"{f' with trajectories every {args.stride} epochs' if args.stride else ''} "
              f"(journal synthesised, FILE.nc by repsweep run)")
        t = time.perf_counter()
        synth_journal(journal, journal_header(binary, job, out, tmp), n, args.stride)
        t_synth = time.perf_counter() - t
        cmd = [binary, "run", str(job), "--out", str(out), "--progress", "0"]
        wall = run(cmd, tmp)
        print(f"journal synthesised in Python: {t_synth:.2f} s (not repsweep's time)")
        print(f"final write: repsweep run on it (journal read + every trial found done + "
              f"FILE.nc written): {wall:.2f} s; rank 0 peak RSS {LAST['maxrss_mib']:.0f} MiB")
    else:
        job = tmp / "scale.cfg"
        job.write_text(theory_job("bench-scale", n))
        print(f"\n== output scale: {n} theory-only trials of 1 epoch, one `repsweep run` "
              f"process")
        base = [binary, "run", str(job), "--progress", "0"]
        quiet = tmp / "quiet.nc"
        wall0 = run(base + ["--out", str(quiet), "--save-every", "0"], tmp)
        rss0 = LAST["maxrss_mib"]
        for f in (quiet, Path(str(quiet) + ".journal")):
            f.unlink()
        cmd = base + ["--out", str(out), "--save-every", str(args.save_every)]
        wall = run(cmd, tmp)
        rss = LAST["maxrss_mib"]
        own = checkpoint_line(LAST["stderr"])
        rerun = run(cmd, tmp)
        print(f"repsweep run, checkpoints off (--save-every 0): {wall0:.2f} s, rank 0 peak RSS "
              f"{rss0:.0f} MiB")
        print(f"repsweep run, --save-every {args.save_every}: {wall:.2f} s ({n / wall:.0f} "
              f"trials/s), rank 0 peak RSS {rss:.0f} MiB; checkpoints' share estimated from "
              f"the difference: {100 * (wall - wall0) / wall:.1f} %")
        print(f"  repsweep: {own}" if own else "  repsweep: (this build does not report its "
              "checkpoints)")
        print(f"final write: rerun on the finished output (journal read + FILE.nc rewrite "
              f"alone): {rerun:.2f} s, rank 0 peak RSS {LAST['maxrss_mib']:.0f} MiB")
    print(f"FILE.nc {mib(out):.1f} MiB ({os.path.getsize(out) / n:.0f} bytes/trial), "
          f"uncompressed {uncompressed_mib(out):.1f} MiB; journal {mib(journal):.1f} MiB")
    xarray_timings(out, args.network)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="bench", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--bin", default=None)
    common.add_argument("--dir", default=None, help="parent of the scratch directory")
    common.add_argument("--keep", action="store_true", help="keep the scratch directory")
    b = sub.add_parser("balance", parents=[common], help="mixed-cost job on W workers")
    b.add_argument("--workers", type=int, default=2)
    b.add_argument("--expensive", type=int, default=8, help="default-net trials (~5 s each)")
    b.add_argument("--cheap", type=int, default=300, help="narrow-net trials (~0.07 s each)")
    d = sub.add_parser("dispatch", parents=[common], help="theory trials through rank 0")
    d.add_argument("--ranks", type=int, default=8)
    d.add_argument("--trials", type=int, default=500000)
    d.add_argument("--chunk", type=int, default=0, help="repsweep run --chunk (default: its own)")
    s = sub.add_parser("scale", parents=[common], help="N trial summaries into FILE.nc")
    s.add_argument("--trials", type=int, default=1000000)
    s.add_argument("--network", action="store_true",
                   help="network trials from a synthesised journal (a real seed axis)")
    s.add_argument("--stride", type=int, default=0,
                   help="with --network: trajectories every STRIDE of 6000 epochs")
    s.add_argument("--save-every", type=float, default=5.0,
                   help="theory-only: repsweep run --save-every (checkpoint interval, s)")
    args = ap.parse_args()

    binary = repsweep_bin(args.bin)
    header(binary)
    tmp = Path(tempfile.mkdtemp(prefix="bench_sweep.", dir=args.dir))
    try:
        {"balance": bench_balance, "dispatch": bench_dispatch, "scale": bench_scale}[
            args.bench](args, binary, tmp)
    finally:
        if args.keep:
            print(f"scratch kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
