#!/usr/bin/python3
"""bench_epoch.py — repsweep's cost per training epoch against PyTorch's, same network.

Run on demand (not in CI), with Debian's interpreter:

    /usr/bin/python3 tests/bench/bench_epoch.py [--all] [--archs a,b] [--threads 1,2]
                                                [--precisions float32,float64] [--bin PATH]

For every (architecture, precision, threads):
  repsweep  `repsweep trial --arch A --no-fit --epochs N --json --threads T --precision P`,
            ms/epoch = train_seconds / epochs_run, N chosen so that one run lasts ~3 s,
            median of 3 runs;
  torch     the same network (tests/python/test_torch_oracle.py's model, loaded with the same
            initial weights), torch.set_num_threads(T), a plain user loop per epoch: forward,
            dh2 / dyhat2 / w / loss / yhat_mean as tensors and .item() each, backward,
            torch.optim.SGD step. Without dropout the training forward's activations are the
            recording (the cheapest fair loop); with dropout an extra no_grad eval forward
            records. Median ms/epoch over 5 timed chunks of ~0.6 s after a warm-up.
  ratio     repsweep / torch; target 0.1 for narrow and shallow, 0.3 otherwise; PASS if
            ratio <= target.
  floor     the larger of two lower bounds on an epoch's time, each for one core and divided
            by the thread count: "fma", the fused multiply-adds one epoch needs (epoch_fmas)
            at the core's peak FMA rate measured now by bench_fma; "bytes", the weights read
            twice and written once (forward; backward fused with the step) at the one-core
            triad bandwidth measured now by bench_triad on arrays of the weights' total size
            (where the weights live: L2, L3 or DRAM). floor / torch is the lowest ratio any
            implementation could reach on this machine, so a MISS where it exceeds the
            target is marked "MISS, target < floor".
Then the fit's cost: `repsweep trial --arch narrow --epochs 6000 --json` (fit on),
fit_seconds / train_seconds.
"""
import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PYTESTS = REPO / "tests" / "python"
DEFAULT_ARCHS = ["default", "narrow", "convolution"]
TARGETS = {"narrow": 0.1, "shallow": 0.1}
TARGET_OTHER = 0.3


def _load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


sys.path.insert(0, str(PYTESTS))
conftest = _load("conftest", PYTESTS / "conftest.py")
oracle = _load("test_torch_oracle", PYTESTS / "test_torch_oracle.py")


def repsweep_bin(arg):
    if arg:
        return arg
    path, _ = conftest.find_repsweep_bin()
    if not path.is_file():
        sys.exit(f"bench_epoch: repsweep binary not found at {path} (build it or set "
                 f"REPSWEEP_BIN / --bin)")
    return str(path)


def find_tool(binary, name):
    """A bench tool (bench_triad, bench_fma) built next to the repsweep binary's build tree
    (build/tests/bench/), else in the repository's build/; None if not built."""
    cand = [Path(binary).resolve().parent / "tests" / "bench" / name,
            REPO / "build" / "tests" / "bench" / name]
    return next((str(c) for c in cand if c.is_file()), None)


def triad_gbs(triad, total_bytes):
    """(best, median) GB/s of bench_triad on three arrays of total_bytes in all."""
    p = subprocess.run([triad, str(int(total_bytes))], capture_output=True, text=True,
                       check=True)
    fields = dict(kv.split("=") for kv in p.stdout.split()[1:])
    return float(fields["best_gbs"]), float(fields["median_gbs"])


def fma_peak(binary):
    """{precision: scalar FMAs per second} of one core, measured by bench_fma; None if the
    tool is not built."""
    tool = find_tool(binary, "bench_fma")
    if tool is None:
        return None
    p = subprocess.run([tool], capture_output=True, text=True, check=True)
    fields = dict(kv.split("=") for kv in p.stdout.split()[1:])
    return {"float32": 1e9 * float(fields["float32_gfmas"]),
            "float64": 1e9 * float(fields["float64_gfmas"])}


def epoch_fmas(params):
    """Fused multiply-adds of one training epoch on both points that any implementation must
    do: per weight and per output position, 2 for the forward pass, 2 for the weight gradient
    and 2 for the input gradient (not needed for the first map). A convolution's weight is
    used at every output position; the signal's length starts as the width of the dense map
    before the first convolution and shrinks by k - 1 per convolution (net.h)."""
    total, length = 0, None
    for s, (w, _) in enumerate(params):
        if w.ndim == 3:
            length -= w.shape[2] - 1
            uses = w.size * length
        else:
            uses = w.size
            length = w.shape[0]
        total += uses * (4 if s == 0 else 6)
    return total


BYTES_PER_REAL = {"float32": 4, "float64": 8}


class Floor:
    """An epoch's lower bounds on this machine (see the module's docstring): FMA peak and
    triad bandwidths measured once, the triad once per weight size."""

    def __init__(self, binary):
        self.peak = fma_peak(binary)
        self.triad = find_tool(binary, "bench_triad")
        self._gbs = {}

    def available(self):
        return self.peak is not None and self.triad is not None

    def bandwidth(self, nbytes):
        size = max(int(nbytes), 3 * 2**16)  # below ~200 KB the triad measures its own overhead
        if size not in self._gbs:
            self._gbs[size] = 1e9 * triad_gbs(self.triad, size)[0]
        return self._gbs[size]

    def ms(self, params, precision, threads):
        """(floor in ms, "fma" or "bytes": which bound it is)."""
        fma = epoch_fmas(params) / self.peak[precision]
        wbytes = sum(w.size + b.size for w, b in params) * BYTES_PER_REAL[precision]
        moved = 3 * wbytes / self.bandwidth(wbytes)
        return 1e3 * max(fma, moved) / threads, "fma" if fma >= moved else "bytes"


def run_trial(binary, *args):
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")  # --threads sets the real count
    cmd = [binary, "trial", *[str(a) for a in args], "--json"]
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if p.returncode != 0:
        sys.exit(f"bench_epoch: `{' '.join(cmd)}` exited {p.returncode}:\n{p.stderr}")
    return json.loads(p.stdout)


def gemm_provider(binary):
    """Which shared library the binary's cblas_dgemm binds to (glibc's LD_DEBUG=bindings): a
    reference CBLAS (e.g. GSL's libgslcblas) instead of OpenBLAS makes every GEMM slow and
    --threads meaningless."""
    env = dict(os.environ, LD_DEBUG="bindings")
    p = subprocess.run([binary, "trial", "--arch", "convolution", "--epochs", "1", "--no-fit",
                        "--json"], capture_output=True, text=True, env=env)
    for line in p.stderr.splitlines():
        if "`cblas_dgemm'" in line and " to " in line:
            return line.split(" to ", 1)[1].split(" [", 1)[0]
    return "unknown (static, or not glibc)"


def repsweep_ms(binary, arch, precision, threads, seconds, runs=3):
    common = ("--arch", arch, "--no-fit", "--precision", precision, "--threads", threads)
    probe = run_trial(binary, *common, "--epochs", 20)
    est = max(probe["train_seconds"] / probe["epochs_run"], 1e-6)
    n = int(min(max(seconds / est, 50), 6000))  # Table 1 runs 6000 epochs at most
    ms = []
    for _ in range(runs):
        r = run_trial(binary, *common, "--epochs", n)
        ms.append(1e3 * r["train_seconds"] / r["epochs_run"])
    return statistics.median(ms), n


def torch_ms(attrs, params, precision, threads, chunk_seconds=0.6, chunks=5):
    import torch

    torch.set_num_threads(threads)
    dtype = torch.float32 if precision == "float32" else torch.float64
    model = oracle.make_model(attrs, params, dtype)
    x, y = oracle.two_points(attrs, dtype)
    opt = torch.optim.SGD(model.parameters(), lr=float(attrs["lr"]))
    dropout = model.drop is not None
    sink = []

    def epochs(n):
        for _ in range(n):
            if dropout:
                model.eval()
                with torch.no_grad():
                    f, h = model(x)
                    vals = oracle.probes(f, h, y)
                model.train()
                f, _ = model(x)
                loss = 0.5 * ((f - y) ** 2).mean()
            else:
                f, h = model(x)
                vals = oracle.probes(f, h, y)
                loss = vals[3]
            sink.append([v.item() for v in vals])
            opt.zero_grad(set_to_none=False)  # in place: faster here than freeing and reallocating
            loss.backward()
            opt.step()
        sink.clear()

    t = time.perf_counter()
    epochs(3)  # warm-up
    est = max((time.perf_counter() - t) / 3, 1e-6)
    n = max(int(chunk_seconds / est), 5)
    epochs(n)  # more warm-up
    ms = []
    for _ in range(chunks):
        t = time.perf_counter()
        epochs(n)
        ms.append(1e3 * (time.perf_counter() - t) / n)
    return statistics.median(ms), n


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--all", action="store_true", help="every architecture in architectures.cfg")
    ap.add_argument("--archs", default=",".join(DEFAULT_ARCHS))
    ap.add_argument("--precisions", default="float32,float64")
    ap.add_argument("--threads", default="1", help="comma list, e.g. 1,2")
    ap.add_argument("--seconds", type=float, default=3.0, help="target length of a repsweep run")
    ap.add_argument("--bin", default=None)
    ap.add_argument("--no-fit-cost", action="store_true")
    args = ap.parse_args(argv)

    binary = repsweep_bin(args.bin)
    table = conftest.read_architectures()
    archs = list(table) if args.all else args.archs.split(",")
    precisions = args.precisions.split(",")
    threads = [int(t) for t in args.threads.split(",")]
    print(f"repsweep: {binary}")
    lib = gemm_provider(binary)
    print(f"cblas_dgemm binds to: {lib}"
          + ("" if "openblas" in lib.lower() else "   <-- WARNING: not OpenBLAS"))
    print(f"machine: {os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.2f}")
    import torch

    print(f"torch {torch.__version__}; repsweep run ~{args.seconds:g} s, median of 3; torch "
          f"median of 5 chunks after warm-up")
    floor = Floor(binary)
    if not floor.available():
        print("floor: n/a (bench_fma or bench_triad not built: cmake --build build --target "
              "bench_tools)")
    else:
        peak = floor.peak
        print(f"floor: one core's peak measured by bench_fma: {peak['float32'] / 1e9:.1f} G "
              f"float32 FMA/s, {peak['float64'] / 1e9:.1f} G float64 FMA/s; weights' bytes at "
              f"bench_triad's bandwidth for their size; both / threads")
    hdr = (f"{'arch':<22} {'precision':<9} {'thr':>3} {'repsweep ms/ep':>14} "
           f"{'torch ms/ep':>11} {'ratio':>7} {'target':>6} {'floor ms':>8} {'by':>5} "
           f"{'floor/torch':>11}  result")
    print(hdr)
    print("-" * len(hdr))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for arch in archs:
            if arch not in table:
                sys.exit(f"bench_epoch: no architecture {arch!r} in architectures.cfg")
            wpath = Path(tmp) / f"{arch}.nc"
            run_trial(binary, "--arch", arch, "--epochs", 1, "--no-fit",
                      "--export-weights", wpath)
            attrs, params = oracle.load_weights(wpath)
            target = TARGETS.get(arch, TARGET_OTHER)
            for prec in precisions:
                for t in threads:
                    r_ms, _ = repsweep_ms(binary, arch, prec, t, args.seconds)
                    t_ms, _ = torch_ms(attrs, params, prec, t)
                    ratio = r_ms / t_ms
                    ok = "PASS" if ratio <= target else "MISS"
                    f_ms, f_by, f_ratio = "", "", ""
                    if floor.available():
                        f, f_by = floor.ms(params, prec, t)
                        f_ms, f_ratio = f"{f:.4f}", f"{f / t_ms:.3f}"
                        if ok == "MISS" and f / t_ms > target:
                            ok = "MISS, target < floor"
                    rows.append((arch, prec, t, r_ms, t_ms, ratio, target, ok))
                    print(f"{arch:<22} {prec:<9} {t:>3} {r_ms:>14.4f} {t_ms:>11.4f} "
                          f"{ratio:>7.3f} {target:>6.2f} {f_ms:>8} {f_by:>5} {f_ratio:>11}  {ok}",
                          flush=True)
    misses = sum(r[-1].startswith("MISS") for r in rows)
    below = sum(r[-1] == "MISS, target < floor" for r in rows)
    print(f"{len(rows) - misses} PASS, {misses} MISS ({below} of them with the target below "
          f"the floor)")

    if not args.no_fit_cost:
        r = run_trial(binary, "--arch", "narrow", "--epochs", 6000)
        print(f"\nfit cost (narrow, 6000 epochs, fit on): train {r['train_seconds']:.3f} s, "
              f"fit {r['fit_seconds']:.3f} s, fit/train = "
              f"{r['fit_seconds'] / r['train_seconds']:.3f} (status {r['status']}, "
              f"fit_loss_rel {r['fit_loss_rel']})")
        print("note: the fit's cost does not depend on the network, so for the 500-wide nets "
              "(~10-100x the narrow net's training time) fit/train is correspondingly smaller.")


if __name__ == "__main__":
    main()
