#!/usr/bin/python3
"""bench_npoint.py — the N-point engine's cost per epoch against PyTorch's, same network.

Run on demand (not in CI), on an otherwise idle machine, with Debian's interpreter, after
building (the test-only tests/npoint/npoint_driver and bench_fma come with the default build):

    /usr/bin/python3 tests/bench/bench_npoint.py [--points 10000] [--threads 1,2]
                                                 [--epochs 20] [--tiny]

The network is Fig. 4's MNIST net: 784 inputs, 4 hidden layers of 100 units, leaky ReLU,
10 one-hot outputs (gain 0.5, lr 0.002, Table 2), trained full batch on --points synthetic
28 x 28 IDX digits (80 % zero pixels), float64, recording the loss and the probes of one
tracked pair (the first 0 and the first 1) every epoch.
  repsweep  tests/npoint/npoint_driver with threads=T (OpenBLAS at one thread, the engine's
            row blocks over T threads): its wall time of the training epochs / epochs.
  torch     the same network (tests/python/test_npoint_oracle.py's model, loaded with the
            driver's initial weights), torch.set_num_threads(T), a plain loop per epoch:
            forward on all points, the loss and the pair's probes .item()-ed, backward,
            torch.optim.SGD step; after 2 warm-up epochs, the mean over --epochs.
  ratio     repsweep / torch; target <= 1.
  floor     the fused multiply-adds of one epoch (per point and weight: 1 forward, 1 weight
            gradient, 1 input gradient except at the first map) at one core's peak FMA rate
            (bench_fma, measured now), divided by the thread count (optimistic: perfect
            scaling). floor/repsweep is the fraction of that rate reached; target >= 0.6.
--tiny runs 200 points for 3 epochs: a check that the script works, not a measurement.
"""
import argparse
import importlib.util
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]


def _load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


sys.path.insert(0, str(REPO / "tests" / "python"))
oracle = _load("test_npoint_oracle", REPO / "tests" / "python" / "test_npoint_oracle.py")
bench_epoch = _load("bench_epoch", REPO / "tests" / "bench" / "bench_epoch.py")

LAYERS, UNITS, GAIN, LR = 4, 100, 0.5, 0.002


def epoch_fmas(points, widths):
    maps = list(zip(widths[:-1], widths[1:]))
    per_point = sum(i * o * (2 if s == 0 else 3) for s, (i, o) in enumerate(maps))
    return points * per_point


def run_c(driver, data, epochs, threads, pair, tmp):
    out = Path(tmp) / f"c{threads}"
    out.mkdir()
    args = [driver, str(out), data, "activation=leaky_relu", f"layers={LAYERS}",
            f"units={UNITS}", f"gain={GAIN}", f"lr={LR}", f"epochs={epochs}",
            f"threads={threads}", f"pairs={pair[0]}:{pair[1]}"]
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    res = subprocess.run(args, capture_output=True, text=True, env=env)
    if res.returncode != 0:
        sys.exit(f"bench_npoint: driver failed: {res.stderr}")
    meta = dict(line.split() for line in (out / "meta.txt").read_text().splitlines())
    meta = {k: (float(v) if k == "seconds" else int(v)) for k, v in meta.items()}
    c = {"meta": meta,
         "x": np.fromfile(out / "x.bin", dtype="<f8").reshape(meta["n"], meta["in_dim"]),
         "y": np.fromfile(out / "y.bin", dtype="<f8").reshape(meta["n"], meta["out_dim"]),
         "init": np.fromfile(out / "init.bin", dtype="<f8")}
    return 1e3 * meta["seconds"] / epochs, c


def run_torch(c, epochs, threads, pair):
    import torch

    torch.set_num_threads(threads)
    meta = c["meta"]
    net = oracle.TorchDenseNet(meta["in_dim"], meta["out_dim"], LAYERS, UNITS, "leaky_relu",
                               meta["observed_stage"])
    net.load_flat(c["init"])
    opt = torch.optim.SGD(list(net.parameters()), lr=LR)
    X, Y = torch.from_numpy(c["x"]), torch.from_numpy(c["y"])
    i, j = pair

    def epoch():
        opt.zero_grad()
        f, h = net.forward(X)
        loss = oracle.half_mse(f, Y)
        with torch.no_grad():
            df = f[j] - f[i]
            dyhat2 = (df * df).sum()
            record = (loss.item(), ((h[j] - h[i]) ** 2).sum().item(), dyhat2.item(),
                      (dyhat2 - (df * (Y[j] - Y[i])).sum()).item())
        loss.backward()
        opt.step()
        return record

    for _ in range(2):
        epoch()
    t0 = time.perf_counter()
    for _ in range(epochs):
        epoch()
    return 1e3 * (time.perf_counter() - t0) / epochs


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--points", type=int, default=10000)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--tiny", action="store_true")
    ap.add_argument("--driver", default=os.environ.get(
        "REPSWEEP_NPOINT_DRIVER", str(REPO / "build" / "tests" / "npoint_driver")))
    args = ap.parse_args()
    if args.tiny:
        args.points, args.epochs = 200, 3
    if not Path(args.driver).is_file():
        sys.exit(f"bench_npoint: {args.driver} not built (cmake --build build)")
    print(f"driver {args.driver}; load average {os.getloadavg()[0]:.2f} "
          f"(wall-clock times: run on an idle machine)")
    peak = bench_epoch.fma_peak(str(REPO / "build" / "repsweep"))
    widths = [784] + [UNITS] * LAYERS + [10]
    fmas = epoch_fmas(args.points, widths)
    with tempfile.TemporaryDirectory(prefix="bench_npoint-") as tmp:
        data, lab = oracle.mnist_shaped(Path(tmp), args.points)
        pair = (int(np.argmax(lab == 0)), int(np.argmax(lab == 1)))
        print(f"{args.points} points, 784-{UNITS}x{LAYERS}-10 leaky ReLU, full batch, "
              f"float64, {args.epochs} epochs; {fmas / 1e6:.1f} M FMAs per epoch; "
              f"peak {peak['float64'] / 1e9:.2f} GFMA/s per core" if peak else
              f"{args.points} points; floor n/a (bench_fma not built)")
        print(f"{'thr':>3} {'repsweep ms/ep':>15} {'torch ms/ep':>12} {'ratio':>6} "
              f"{'floor ms':>9} {'floor/repsweep':>15}  result")
        for threads in [int(t) for t in args.threads.split(",")]:
            c_ms, c = run_c(args.driver, data, args.epochs, threads, pair, tmp)
            t_ms = run_torch(c, args.epochs, threads, pair)
            ratio = c_ms / t_ms
            if peak:
                floor_ms = 1e3 * fmas / peak["float64"] / threads
                frac = floor_ms / c_ms
                ok = ratio <= 1.0 and frac >= 0.6
                floor_txt = f"{floor_ms:9.3f} {frac:15.2f}"
            else:
                ok, floor_txt = ratio <= 1.0, f"{'n/a':>9} {'n/a':>15}"
            print(f"{threads:3d} {c_ms:15.3f} {t_ms:12.3f} {ratio:6.2f} {floor_txt}  "
                  f"{'PASS' if ok else 'MISS'}{' (tiny: not a measurement)' if args.tiny else ''}")


if __name__ == "__main__":
    main()
