"""Command line: ``/usr/bin/python3 -m analysis COMMAND ...``."""
import argparse
import sys

from . import results as results_mod
from . import trials as trials_mod


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python3 -m analysis",
                                     description="Tables and figures from repsweep output.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("trials", help="table and dynamics figure of repsweep trial files")
    p.add_argument("directory", help="directory of *.nc files written by `repsweep trial --out`")
    p.add_argument("--out", default=".", help="where to write the figures (default: .)")
    p = sub.add_parser("sweep", help="table per architecture x gain and the final-distance "
                       "figure of a `repsweep run` results file")
    p.add_argument("results", help="FILE.nc written by `repsweep run JOB --out FILE.nc`")
    p.add_argument("--out", default=".", help="where to write the figure (default: .)")
    args = parser.parse_args(argv)
    if args.command == "sweep":
        return sweep(args.results, args.out)
    try:
        ts = trials_mod.load_trials(args.directory)
    except ValueError as exc:
        print(f"analysis: {exc}", file=sys.stderr)
        return 1
    for row in trials_mod.table(ts):
        print(row)
    for path in trials_mod.plot_dynamics(ts, args.out):
        print(f"wrote {path}")
    return 0


def sweep(path, out_dir):
    try:
        rows = results_mod.table(path)
        paths = results_mod.plot_final_distance(path, out_dir)
    except ValueError as exc:
        print(f"analysis: {exc}", file=sys.stderr)
        return 1
    for row in rows:
        print(row)
    for p in paths:
        print(f"wrote {p}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
