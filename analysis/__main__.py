"""Command line: ``/usr/bin/python3 -m analysis COMMAND ...``. A file that is not a
readable results file (or trial directory), an --out directory that cannot be written, or a
figure asked for with --only that the file cannot give, gives a message naming it on stderr
and exit status 2."""
import argparse
import sys

from . import figures as figures_mod
from . import results as results_mod
from . import summary as summary_mod
from . import trials as trials_mod

EXIT_BAD_INPUT = 2


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python3 -m analysis",
                                     description="Tables and figures from repsweep output.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("figures", help="write every figure a `repsweep run` results file "
                       "allows (PNG and PDF) and print their paths")
    p.add_argument("results", help="FILE.nc written by `repsweep run JOB --out FILE.nc`")
    p.add_argument("--out", default=".", help="where to write the figures (default: .)")
    p.add_argument("--only", nargs="+", choices=figures_mod.FIGURES, metavar="NAME",
                   help="only these figures: " + ", ".join(figures_mod.FIGURES))
    p.add_argument("--dpi", type=float, default=figures_mod.DPI,
                   help=f"resolution of the PNGs (default {figures_mod.DPI:g}; PDFs are vector)")
    p = sub.add_parser("summary", help="plain-text table per architecture x gain of a "
                       "`repsweep run` results file")
    p.add_argument("results", help="FILE.nc written by `repsweep run`")
    p = sub.add_parser("sweep", help="the older short form: per arch x gain table and the "
                       "final distance against gain (sweep_final_distance.png/.pdf)")
    p.add_argument("results", help="FILE.nc written by `repsweep run JOB --out FILE.nc`")
    p.add_argument("--out", default=".", help="where to write the figure (default: .)")
    p = sub.add_parser("trials", help="table and dynamics figure of repsweep trial files")
    p.add_argument("directory", help="directory of *.nc files written by `repsweep trial --out`")
    p.add_argument("--out", default=".", help="where to write the figures (default: .)")
    args = parser.parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except results_mod.ResultsFileError as exc:
        print(f"analysis: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except OSError as exc:  # --out cannot be made or written
        print(f"analysis: --out: {exc.filename or args.out}: {exc.strerror or exc}",
              file=sys.stderr)
        return EXIT_BAD_INPUT


def figures(args):
    missing = []
    for name, paths, lines, skipped in figures_mod.write_all(args.results, args.out,
                                                             args.only, dpi=args.dpi):
        if skipped:
            print(f"skipped {name}: {skipped}")
            missing.append(name)
            continue
        for line in lines:
            print(line)
        for p in paths:
            print(f"wrote {p}")
    if args.only and missing:  # asked for by name: not drawing it is an error
        print(f"analysis: {args.results}: cannot draw {', '.join(missing)} (see 'skipped' "
              f"above)", file=sys.stderr)
        return EXIT_BAD_INPUT
    return 0


def summary(args):
    for line in summary_mod.summary_lines(args.results):
        print(line)
    return 0


def sweep(args):
    rows = results_mod.table(args.results)
    paths = results_mod.plot_final_distance(args.results, args.out)
    for row in rows:
        print(row)
    for p in paths:
        print(f"wrote {p}")
    return 0


def trials(args):
    ts = trials_mod.load_trials(args.directory)
    for row in trials_mod.table(ts):
        print(row)
    for path in trials_mod.plot_dynamics(ts, args.out):
        print(f"wrote {path}")
    return 0


COMMANDS = {"figures": figures, "summary": summary, "sweep": sweep, "trials": trials}

if __name__ == "__main__":
    sys.exit(main())
