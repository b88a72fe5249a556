"""analysis.reproduction's own definitions (the rest of REPRODUCTION.md's numbers come from
analysis.measures, tested in test_analysis_figures.py): the loss plateau's start and escape."""
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from analysis.reproduction import plateau  # noqa: E402

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
