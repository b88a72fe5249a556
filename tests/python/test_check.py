"""`repsweep check JOB`: every shipped job file passes and reports its trial counts; malformed
job files and flags each give exit 2 and one line "repsweep check: FILE:LINE: message" that
names the file, the line (the one marked `# <-` in the case, else the given line) and, for
flags, the flag."""
import re
from pathlib import Path

import pytest

from conftest import ARCH_FILE, REPO_ROOT

JOBS = REPO_ROOT / "jobs"
SHIPPED_TRIALS = {  # job file -> total trials (the grid's count)
    "quickstart.cfg": 15 + 5 * 2 * 2 + 6,
    "quickstart-depth.cfg": 2 * 2,
    "table1.cfg": 2 * 15 * 50,
    "final-distance.cfg": 15 * 50 + 15 * 25 * 50,
    "depth.cfg": 50,
    "phase-diagram.cfg": 6 * 6 * 20 + 7 * 3 * 6,
    "reproduce-table1.cfg": 2 * 15 * 3,
    "reproduce-precision.cfg": 15 * 3,
    "reproduce-depth.cfg": 3,
    "reproduce-final-distance.cfg": 2 * 5 + 2 * 25 * 5,
    "reproduce-final-distance-default.cfg": 3 + 25,
}


def test_every_shipped_job_is_listed():
    shipped = {p.name for p in JOBS.glob("*.cfg")} - {"architectures.cfg"}
    assert shipped == set(SHIPPED_TRIALS), shipped ^ set(SHIPPED_TRIALS)


@pytest.mark.parametrize("name", sorted(SHIPPED_TRIALS))
def test_shipped_job_passes_check(run_repsweep, name):
    proc = run_repsweep("check", JOBS / name)
    assert proc.stderr == ""
    total = [line for line in proc.stdout.splitlines() if line.split()[:1] == ["total"]]
    assert len(total) == 1, proc.stdout
    fields = total[0].split()
    assert int(fields[1]) == SHIPPED_TRIALS[name], proc.stdout
    core_hours = float(fields[2])
    assert core_hours > 0, proc.stdout


def test_check_several_files_at_once(run_repsweep):
    proc = run_repsweep("check", JOBS / "quickstart.cfg", JOBS / "depth.cfg")
    assert proc.stdout.count("is valid") == 2


def test_check_help(run_repsweep):
    proc = run_repsweep("check", "--help")
    assert "JOB" in proc.stdout and "core-hours" in proc.stdout


def test_check_without_job_exits_2(run_repsweep):
    proc = run_repsweep("check", check=False)
    assert proc.returncode == 2 and "job file" in proc.stderr


def test_table1_cost_is_dominated_by_wide_nets(run_repsweep):
    """The cost model orders architectures as measured: the narrow net's block of a job is
    far cheaper than the default net's."""
    out = run_repsweep("check", JOBS / "final-distance.cfg").stdout
    hours = {l.split()[0]: float(l.split()[3]) for l in out.splitlines()
             if l.strip().startswith("grid_")}
    assert hours["grid_default"] > 20 * hours["grid_narrow"], hours


A = f'architectures_file = "{ARCH_FILE}";'
BLOCK = """    architectures = ["narrow"];
    input_gaps = [1.0];
    target_gaps = [0.7071067811865476];
    seeds = [0, 1];"""


def job(blocks, top=""):
    return f'name = "bad";\n{A}\n{top}blocks = (\n{blocks}\n);\n'


# (id, job text or None for a missing file, expected substring of the message)
# The line the message must name is the one marked "# <-".
CASES = [
    ("syntax_error", job(f'  {{ name = "x";\n    gains = [1.0 1.5];  # <-\n{BLOCK} }}'),
     "syntax error"),
    ("unknown_top_level_key", job(f'  {{ name = "x";\n{BLOCK} }}', 'colour = "red";  # <-\n'),
     "unknown key 'colour'"),
    ("unknown_block_key", job(f'  {{ name = "x";\n    gainz = [1.0];  # <-\n{BLOCK} }}'),
     "unknown key 'gainz'"),
    ("string_gain", job(f'  {{ name = "x";\n    gains = ["big"];  # <-\n{BLOCK} }}'),
     "'gains' must be a number > 0, got the string"),
    ("negative_gain", job(f'  {{ name = "x";\n    gains = [1.0,\n      -0.5];  # <-\n{BLOCK} }}'),
     "element 2 of 'gains' must be a number > 0"),
    ("empty_gains", job(f'  {{ name = "x";\n    gains = [];  # <-\n{BLOCK} }}'),
     "'gains' is empty"),
    ("duplicate_key", job(f'  {{ name = "x";\n    seeds = [0];\n{BLOCK} }}'.replace(
        "    seeds = [0, 1];", "    seeds = [0, 1];  # <-")),
     "duplicate setting name 'seeds'"),
    ("empty_grid", f'name = "bad";\n{A}\nblocks = ( );  # <-\n', "no trials"),
    ("unknown_architecture",
     job('  { name = "x";\n    architectures = ["narrow", "nonesuch"];  # <-\n'
         '    input_gaps = [1.0]; target_gaps = [0.5]; seeds = [0]; }'),
     "unknown architecture 'nonesuch'"),
    ("lr_length_mismatch",
     job(f'  {{ name = "x";\n    gains = [0.8, 1.0, 1.2];\n    lr = [0.01, 0.02];  # <-\n{BLOCK} }}'),
     "'lr' has 2 values but 'gains' has 3"),
    ("duplicate_block_name",
     job(f'  {{ name = "x";\n{BLOCK} }},\n  {{ name = "x";  # <-\n{BLOCK} }}'),
     "block name 'x' is used twice"),
    ("negative_seed_count",
     job('  { name = "x"; architectures = ["narrow"];\n    input_gaps = [1.0]; target_gaps = [0.5];\n'
         '    seeds = { first = 0;\n      count = -3; }; }  # <-'),
     "'count' of 'seeds' must be an integer >= 1, got -3"),
    ("negative_target_gap",
     job('  { name = "x"; architectures = ["narrow"]; input_gaps = [1.0];\n'
         '    target_gaps = [-0.5];  # <-\n    seeds = [0]; }'),
     "'target_gaps' must be a number >= 0"),
    ("missing_input_gaps",
     job('  { name = "x";  # <-\n    architectures = ["narrow"]; target_gaps = [0.5]; seeds = [0]; }'),
     "needs 'input_gaps'"),
    ("theory_block_with_network_key",
     job('  { name = "t"; theory_only = true; rate_h = [1e-3]; rate_y = [1e-3];\n'
         '    dh2_0 = [0.5]; dyhat2_0 = [0.0]; input_gaps = [1.0]; target_gaps = [0.5];\n'
         '    epochs = 100;\n    gains = [1.0];  # <-\n  }'),
     "unknown key 'gains' in theory-only block"),
    ("unreadable_architectures_file",
     'name = "bad";\narchitectures_file = "no/such/architectures.cfg";  # <-\n'
     f'blocks = (\n  {{ name = "x";\n{BLOCK} }}\n);\n',
     "cannot open the architectures file"),
    ("mixed_int_float_array", job(f'  {{ name = "x";\n    gains = [1, 1.5];  # <-\n{BLOCK} }}'),
     "write 1.0, not 1"),
    ("bad_precision", job(f'  {{ name = "x";\n{BLOCK} }}', 'precision = "float16";  # <-\n'),
     "'precision' must be \"float64\" or \"float32\""),
    ("unknown_record_key",
     job(f'  {{ name = "x";\n{BLOCK} }}', 'record = { all_layers = true;\n  layers = 3; };  # <-\n'),
     "unknown key 'layers' in 'record'"),
    ("negative_stride",
     job(f'  {{ name = "x";\n{BLOCK} }}', 'record = { trajectory_stride = -1; };  # <-\n'),
     "'trajectory_stride' must be an integer >= 0"),
    ("duplicate_seed",
     job('  { name = "x"; architectures = ["narrow"]; input_gaps = [1.0]; target_gaps = [0.5];\n'
         '    seeds = [0, 1,\n      1]; }  # <-'),
     "'seeds' lists 1 twice"),
    ("duplicate_gain",
     job(f'  {{ name = "x";\n    gains = [1.4, 0.7,\n      1.4];  # <-\n{BLOCK} }}'),
     "'gains' lists 1.4 twice"),
    ("lr_list_without_gains", job(f'  {{ name = "x";\n    lr = [0.01, 0.02];  # <-\n{BLOCK} }}'),
     "'lr' is a list but the block has no 'gains'"),
    ("zero_input_gap",
     job('  { name = "x"; architectures = ["narrow"];\n    input_gaps = [0.0];  # <-\n'
         '    target_gaps = [0.5]; seeds = [0]; }'),
     "'input_gaps' must be a number > 0"),
    ("fractional_epochs", job(f'  {{ name = "x";\n    epochs = 100.5;  # <-\n{BLOCK} }}'),
     "'epochs' must be an integer"),
    ("inline_arch_bad_key",
     job('  { name = "x";\n    architectures = ( { name = "w"; hidden_layers = 2; units = 4;\n'
         '      gain = 1.0; lr = 0.01; epochs = 10; width = 3; } );  # <-\n'
         '    input_gaps = [1.0]; target_gaps = [0.5]; seeds = [0]; }'),
     "unknown key 'width' in architecture"),
    ("same_arch_twice",
     job('  { name = "x";\n    architectures = ["narrow", "narrow"];  # <-\n'
         '    input_gaps = [1.0]; target_gaps = [0.5]; seeds = [0]; }'),
     "appears twice"),
    ("theory_missing_epochs",
     job('  { name = "t"; theory_only = true;  # <-\n    rate_h = [1e-3]; rate_y = [1e-3];'
         ' dh2_0 = [0.5]; dyhat2_0 = [0.0];\n    input_gaps = [1.0]; target_gaps = [0.5]; }'),
     "needs 'epochs'"),
    ("missing_name", f'{A}\nblocks = ( {{ name = "x";\n{BLOCK} }} );\n', "missing required key 'name'"),
    ("missing_job_file", None, "cannot open the job file"),
]


def marked_line(text):
    for i, line in enumerate(text.splitlines(), 1):
        if "# <-" in line:
            return i
    return None


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_malformed_job_exits_2_naming_file_and_line(run_repsweep, tmp_path, case):
    name, text, expected = case
    path = tmp_path / f"{name}.cfg"
    if text is not None:
        path.write_text(text)
    proc = run_repsweep("check", path, check=False)
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    line = marked_line(text) if text is not None else None
    prefix = f"repsweep check: {path}:{line}: " if line else f"repsweep check: {path}: "
    assert lines[0].startswith(prefix), (prefix, lines[0])
    assert expected in lines[0][len(prefix):], (expected, lines[0])


@pytest.mark.parametrize("flag", ["--frobnicate", "-x", "--help=yes"])
def test_unknown_check_flag_exits_2_naming_it(run_repsweep, flag):
    proc = run_repsweep("check", flag, JOBS / "quickstart.cfg", check=False)
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and f"'{flag}'" in lines[0], proc.stderr
    assert proc.stdout == ""


def test_job_file_that_is_a_directory(run_repsweep, tmp_path):
    proc = run_repsweep("check", tmp_path, check=False)
    assert proc.returncode == 2
    assert re.match(rf"repsweep check: {re.escape(str(tmp_path))}: cannot read the job file",
                    proc.stderr), proc.stderr


def test_one_bad_file_among_good_ones_exits_2(run_repsweep, tmp_path):
    bad = tmp_path / "bad.cfg"
    bad.write_text('name = "bad";\nblocks = ( );\n')
    proc = run_repsweep("check", JOBS / "quickstart.cfg", bad, check=False)
    assert proc.returncode == 2
    assert "is valid" in proc.stdout and f"{bad}:2:" in proc.stderr
