"""Bad input, one case per line of a table: a job file, a flag or a file that is not what the
command expects. Every case must end with exit status 2, exactly ONE line on stderr naming the
file:line or the flag and the cause, and a finished results file and its journal unchanged
(each command is pointed at the directory of a finished sweep, and run's --out at its results).

Cases marked "(fails on 16b47a5)" misbehaved there: `units = 4294967346` ran silently as a
50-unit net, `units = 2147483648` / -5 / 50.5 were "not a non-negative integer" without the value
or the range, `units = 1000000000` passed check with a "7105.4 PiB" estimate and run started it (it
was killed, exit 137, out of memory), an integer literal above 2^31 elsewhere was wrapped, and `--out ""` (run, trial,
merge) and `--export-weights ""` were accepted and failed only after the work.
"""
import hashlib
import json
import os
import subprocess
from pathlib import Path

import pytest

from conftest import ARCH_FILE

# A job with one network block around an inline architecture; {arch} and {block} are
# replaced by a case's keys (the defaults make a valid job).
ARCH = ('name = "x"; activation = "relu"; hidden_layers = 2; units = 8; gain = 1.0; '
        'lr = 0.01; epochs = 10;')
BLOCK = 'gains = [1.0]; input_gaps = [1.0]; target_gaps = [0.5]; seeds = [0];'
JOB = """name = "bad";
architectures_file = "{archfile}";
{top}
blocks = ( {{ name = "b";
  architectures = ( {{ {arch} }} );
  {block}
}} );
"""
# line numbers in JOB: top-level extras on 3, the architecture on 5, the block's keys on 6

FINISHED = """name = "ok";
blocks = ( { name = "theory"; theory_only = true; rate_h = [1e-3]; rate_y = [1e-3];
  dh2_0 = [0.5]; dyhat2_0 = [0.01]; input_gaps = [1.0]; target_gaps = [0.5]; epochs = 100; } );
"""


def job_text(arch=ARCH, block=BLOCK, top=""):
    return JOB.format(archfile=ARCH_FILE, arch=arch, block=block, top=top)


def arch_with(key, value):
    """ARCH with `key = value;` replacing (or added to) its setting."""
    parts = [p for p in ARCH.split(";") if p.strip() and p.split("=")[0].strip() != key]
    return "; ".join(p.strip() for p in parts) + f"; {key} = {value};"


def block_with(key, value):
    parts = [p for p in BLOCK.split(";") if p.strip() and p.split("=")[0].strip() != key]
    text = "; ".join(p.strip() for p in parts) + ";"
    return text + (f" {key} = {value};" if value is not None else "")


# (id, job text, the words the one line must hold)
JOB_CASES = [
    # integers read in full width (fails on 16b47a5: ran as 50 units)
    ("units_wraps_to_50", job_text(arch=arch_with("units", "4294967346")),
     ["bad.cfg:5", "'units'", "4294967346", "2147483647"]),
    # (fails on 16b47a5: "must be a non-negative integer", no value, no range)
    ("units_2pow31", job_text(arch=arch_with("units", "2147483648")),
     ["bad.cfg:5", "'units'", "2147483648", "2147483647"]),
    ("units_int64_literal", job_text(arch=arch_with("units", "4294967346L")),
     ["bad.cfg:5", "'units'", "4294967346", "[0, 2147483647]"]),
    ("units_negative", job_text(arch=arch_with("units", "-5")),
     ["bad.cfg:5", "'units'", "-5", "[0, 2147483647]"]),
    ("units_fraction", job_text(arch=arch_with("units", "50.5")),
     ["bad.cfg:5", "'units'", "50.5", "[0, 2147483647]"]),
    ("units_huge_float", job_text(arch=arch_with("units", "1e20")),
     ["bad.cfg:5", "'units'", "1e+20", "[0, 2147483647]"]),
    ("units_string", job_text(arch=arch_with("units", '"fifty"')),
     ["bad.cfg:5", "'units' must be a number"]),
    ("units_zero", job_text(arch=arch_with("units", "0")),
     ["bad.cfg:5", "units must be >= 1"]),
    # (fails on 16b47a5: checked as valid, "7105.4 PiB" per rank; run was killed, exit 137)
    ("net_beyond_memory", job_text(arch=arch_with("units", "1000000000")),
     ["bad.cfg:5", "architecture 'x'", "GiB of memory", "limit of 1024 GiB"]),
    ("hidden_layers_huge", job_text(arch=arch_with("hidden_layers", "1000000")),
     ["bad.cfg:5", "hidden_layers must be in [1, 100000]"]),
    ("conv_width_overflow",
     job_text(arch=arch_with("units", "100000") + " conv_channels = 100000; conv_kernel = 3;"),
     ["bad.cfg:5", "conv_channels x units"]),
    ("arch_epochs_huge", job_text(arch=arch_with("epochs", "3000000000")),
     ["bad.cfg:5", "'epochs'", "3000000000"]),
    ("arch_unknown_key", job_text(arch=ARCH + " width = 3;"),
     ["bad.cfg:5", "unknown key 'width'"]),
    ("arch_bad_activation", job_text(arch=arch_with("activation", '"sigmoid"')),
     ["bad.cfg:5", "unknown activation 'sigmoid'"]),
    ("block_epochs_zero", job_text(block=block_with("epochs", "0")),
     ["bad.cfg:6", "'epochs'", "got 0"]),
    ("seed_negative", job_text(block=block_with("seeds", "[-1]")),
     ["bad.cfg:6", "seeds", "[0, 2147483647]", "-1"]),
    # (fails on 16b47a5: 3000000000 wrapped to a negative count)
    ("seed_count_wraps", job_text(block=block_with("seeds", "{ count = 3000000000; }")),
     ["bad.cfg:6", "'count'", "3000000000"]),
    ("seed_count_zero", job_text(block=block_with("seeds", "{ count = 0; }")),
     ["bad.cfg:6", "'count' of 'seeds'", "got 0"]),
    ("gain_zero", job_text(block=block_with("gains", "[0.0]")),
     ["bad.cfg:6", "gains", "> 0"]),
    ("gains_string", job_text(block=block_with("gains", '"one"')),
     ["bad.cfg:6", "'gains' must be a list of numbers"]),
    ("input_gaps_empty", job_text(block=block_with("input_gaps", "[]")),
     ["bad.cfg:6", "'input_gaps' is empty"]),
    ("seeds_missing", job_text(block=block_with("seeds", None)),
     ["bad.cfg:4", "needs 'seeds'"]),
    ("block_unknown_key", job_text(block=block_with("bogus", "1")),
     ["bad.cfg:6", "unknown key 'bogus'"]),
    ("unknown_architecture", job_text().replace(f"{{ {ARCH} }}", '"no_such_net"'),
     ["bad.cfg:5", "unknown architecture 'no_such_net'"]),
    # (fails on 16b47a5: the stride wrapped to 1215752191)
    ("stride_wraps", job_text(top="record = { trajectory_stride = 99999999999; };"),
     ["bad.cfg:3", "'trajectory_stride'", "99999999999"]),
    ("syntax_error", job_text(top="oops = [1.0,, 2.0];"), ["bad.cfg:3", "syntax error"]),
]


def digest(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def finished(tmp_path_factory, run_repsweep):
    """A directory with a finished sweep's results.nc and journal, a non-repsweep netCDF
    file and a garbage .nc file; returns (dir, {file: sha256})."""
    d = tmp_path_factory.mktemp("bad_inputs")
    (d / "ok.cfg").write_text(FINISHED)
    run_repsweep("run", d / "ok.cfg", "--out", d / "results.nc")
    import netCDF4  # python3-netcdf4

    with netCDF4.Dataset(d / "foreign.nc", "w") as nc:
        nc.createDimension("x", 3)
        nc.createVariable("v", "f8", ("x",))[:] = [1.0, 2.0, 3.0]
    (d / "garbage.nc").write_bytes(b"\x00\x01 not netCDF at all\n" * 4)
    (d / "binary.cfg").write_bytes(b"name = \x00\xff\xfe;\n")
    (d / "a_directory.cfg").mkdir()
    files = ["results.nc", "results.nc.journal", "foreign.nc"]
    assert (d / "results.nc.journal").exists()
    return d, {f: digest(d / f) for f in files}


def check_bad(proc, finished, needles):
    d, digests = finished
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert len(lines) == 1, f"expected one line on stderr, got:\n{proc.stderr}"
    for needle in needles:
        assert needle in lines[0], f"{needle!r} not in: {lines[0]}"
    for f, h in digests.items():
        assert digest(d / f) == h, f"{f} changed"
    assert not (d / "out.nc").exists()


@pytest.mark.parametrize("text,needles", [c[1:] for c in JOB_CASES],
                         ids=[c[0] for c in JOB_CASES])
@pytest.mark.parametrize("command", ["check", "run"])
def test_bad_job_file_is_refused_with_its_line(finished, run_repsweep, text, needles, command):
    d, _ = finished
    (d / "bad.cfg").write_text(text)
    args = ["run", "bad.cfg", "--out", "results.nc"] if command == "run" else ["check", "bad.cfg"]
    check_bad(run_repsweep(*args, check=False, cwd=d), finished, needles)


def test_the_job_template_is_valid(finished, run_repsweep):
    """The cases' template itself passes check (a case fails for its own key only)."""
    d, _ = finished
    (d / "good.cfg").write_text(job_text())
    run_repsweep("check", "good.cfg", cwd=d)


# (id, argv, the words the one line must hold)
FILE_AND_FLAG_CASES = [
    ("job_missing", ["run", "no_such.cfg", "--out", "results.nc"],
     ["no_such.cfg", "cannot open the job file", "No such file"]),
    ("job_is_directory", ["check", "a_directory.cfg"], ["a_directory.cfg", "cannot read"]),
    ("job_binary", ["run", "binary.cfg", "--out", "results.nc"],
     ["binary.cfg", "not a text file"]),
    ("job_empty_path", ["check", ""], ["job file"]),
    ("threads_zero", ["run", "ok.cfg", "--out", "out.nc", "--threads", "0"],
     ["--threads", "[1, 1024]", "'0'"]),
    ("threads_huge", ["run", "ok.cfg", "--out", "out.nc", "--threads", "99999999999"],
     ["--threads", "'99999999999'"]),
    ("threads_junk", ["run", "ok.cfg", "--out", "out.nc", "--threads", "2x"],
     ["--threads", "'2x'"]),
    ("chunk_negative", ["run", "ok.cfg", "--out", "out.nc", "--chunk", "-1"],
     ["--chunk", "'-1'"]),
    ("progress_word", ["run", "ok.cfg", "--out", "out.nc", "--progress", "abc"],
     ["--progress", "'abc'"]),
    ("save_every_huge", ["run", "ok.cfg", "--out", "out.nc", "--save-every", "1e99"],
     ["--save-every", "'1e99'"]),
    ("shard_past_count", ["run", "ok.cfg", "--out", "out.nc", "--shard", "3/2"],
     ["--shard", "'3/2'"]),
    ("unknown_flag", ["run", "ok.cfg", "--out", "out.nc", "--bogus"], ["'--bogus'"]),
    # (fails on 16b47a5: run/trial did the work, then could not create "")
    ("run_out_empty", ["run", "ok.cfg", "--out", ""], ["--out", "empty path"]),
    ("run_out_directory", ["run", "ok.cfg", "--out", "a_directory.cfg"],
     ["--out", "a directory"]),
    ("trial_out_empty", ["trial", "--arch", "narrow", "--epochs", "5", "--no-fit", "--out", ""],
     ["--out", "empty path"]),
    ("trial_export_empty", ["trial", "--arch", "narrow", "--epochs", "5", "--no-fit",
                            "--export-weights", ""], ["--export-weights", "empty path"]),
    ("merge_out_empty", ["merge", "--out", "", "results.nc"], ["--out", "empty path"]),
    ("trial_epochs_huge", ["trial", "--arch", "narrow", "--epochs", "99999999999"],
     ["--epochs", "'99999999999'"]),
    ("trial_seed_negative", ["trial", "--arch", "narrow", "--seed", "-1"], ["--seed", "'-1'"]),
    ("status_foreign_netcdf", ["status", "foreign.nc"],
     ["foreign.nc", "not a repsweep results file"]),
    ("merge_foreign_netcdf", ["merge", "--out", "out.nc", "results.nc", "foreign.nc"],
     ["foreign.nc", "not a repsweep results file"]),
    ("status_garbage", ["status", "garbage.nc"], ["garbage.nc", "Unknown file format"]),
    ("run_out_foreign_netcdf", ["run", "ok.cfg", "--out", "foreign.nc"],
     ["foreign.nc", "journal", "use another --out"]),
]


@pytest.mark.parametrize("argv,needles", [c[1:] for c in FILE_AND_FLAG_CASES],
                         ids=[c[0] for c in FILE_AND_FLAG_CASES])
def test_bad_file_or_flag_is_refused_in_one_line(finished, run_repsweep, argv, needles):
    d, _ = finished
    check_bad(run_repsweep(*argv, check=False, cwd=d), finished, needles)


def test_trial_json_escapes_an_architecture_name(tmp_path, run_repsweep):
    """An architecture named with a quote, a backslash and a tab gives valid JSON with that
    name (fails on 16b47a5: its --json printed the name unescaped)."""
    name = 'a "quoted"\\name\twith tab'
    escaped = name.replace("\\", "\\\\").replace('"', '\\"').replace("\t", "\\t")
    (tmp_path / "archs.cfg").write_text(
        f'architectures = ( {{ name = "{escaped}"; activation = "relu"; hidden_layers = 2; '
        'units = 4; gain = 1.0; lr = 0.01; epochs = 5; } );\n')
    proc = run_repsweep("trial", "--arch-file", tmp_path / "archs.cfg", "--arch", name,
                        "--no-fit", "--json")
    doc = json.loads(proc.stdout)
    assert doc["arch"] == name
    assert doc["epochs_run"] == 5
