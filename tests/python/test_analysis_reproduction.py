"""analysis.reproduction's own definitions (the rest of REPRODUCTION.md's numbers come from
analysis.measures, tested in test_analysis_figures.py): the loss plateau's start and escape,
and the float32/float64 pairing."""
import re
import sys
from pathlib import Path

import numpy as np

from analysis_util import block, write_job
from sweep_util import read_results, run

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from analysis.reproduction import plateau, precision_section  # noqa: E402

TG = 0.7071067811865476
LP = TG ** 2 / 8  # the plateau level: the mean fitted, the two targets not yet told apart


def test_plateau_start_and_escape():
    epochs = np.arange(0, 3000, 20)
    loss = np.where(epochs < 100, 0.5, LP * 1.05)          # fast drop onto the plateau
    loss = np.where(epochs >= 1000, LP * 0.1, loss)          # escape at epoch 1000
    assert plateau(loss, epochs, TG) == (100, 1000)


def test_no_plateau_passes_both_levels_at_once():
    epochs = np.arange(0, 3000, 20)
    loss = np.where(epochs < 200, 0.5, 1e-4)
    assert plateau(loss, epochs, TG) == (200, 200)


def test_plateau_never_left_and_nan_tail():
    epochs = np.arange(0, 3000, 20)
    loss = np.where(epochs < 60, 0.5, LP)
    loss[-10:] = np.nan                                      # an early stop: NaN past the end
    assert plateau(loss, epochs, TG) == (60, None)


def test_plateau_level_follows_the_target_gap():
    epochs = np.arange(0, 100, 10, dtype=float)
    loss = np.full(epochs.size, 0.1)
    # 0.1 is below 0.5 L_p for target gap 1.5 (L_p = 0.28) but above 1.5 L_p for 0.5 (0.047)
    assert plateau(loss, epochs, 1.5) == (0, 0)
    assert plateau(loss, epochs, 0.5) == (None, None)


def test_precision_pairs_trial_by_trial_and_times_only_the_pairs(repsweep_bin, tmp_path, capsys):
    """float32 trials are paired with the float64 trials of the same coordinates; a float64
    file holding more trials (reproduce-table1 has both gap sets) must not add their
    training time to the comparison."""
    files = {}
    for prec, seeds in (("float64", (0, 1, 2)), ("float32", (0, 1))):
        job = write_job(tmp_path / f"{prec}.cfg", f"prec-{prec}",
                        [block("b", [1.0], [0.02], [TG], seeds)])
        job.write_text(f'precision = "{prec}";\n' + job.read_text())
        files[prec] = tmp_path / f"{prec}.nc"
        proc = run(repsweep_bin, job, files[prec])
        assert proc.returncode == 0, proc.stderr
    precision_section(files["float64"], files["float32"], tmp_path)
    out = capsys.readouterr().out
    assert "(2 paired trials)" in out, out
    m = re.search(r"training time of the 2 paired trials: float64 (\S+) s, float32 (\S+) s", out)
    assert m, out
    r64 = read_results(files["float64"], timings=True)
    paired = np.sum(r64["train_seconds"][np.isin(r64["seed"], [0, 1])])
    assert abs(float(m.group(1)) - paired) <= 1e-3 * paired, (m.group(0), paired)
    assert float(m.group(1)) < 0.95 * np.sum(r64["train_seconds"])  # the third trial is out
