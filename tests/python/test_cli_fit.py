"""`repsweep fit`'s input checks: a bad CSV is named with its line and cause, exits 2, and
nothing is fitted or written; the gaps must come from somewhere."""
import json

import pytest

GOOD = "# input_gap = 1\n# target_gap = 0.5\nepoch,dh2,dyhat2,w\n" + "".join(
    f"{e},{2.0 - 0.01 * e},{0.1 + 0.01 * e},{0.05 - 0.001 * e}\n" for e in range(20))


@pytest.mark.parametrize("text,needle", [
    ("epoch,dh2,dyhat2\n0,1,1\n", "no column 'w'"),
    ("# input_gap = 1\n# target_gap = 1\nepoch,dh2,dyhat2,w\n0,1,1,1\n1,1,x,1\n2,1,1,1\n",
     ":5: column 'dyhat2'"),
    ("# input_gap = 1\n# target_gap = 1\nepoch,dh2,dyhat2,w\n0,1,1,1\n2,1,1,1\n3,1,1,1\n",
     ":6: epoch 3"),
    ("epoch,dh2,dyhat2,w\n0,1,1,1\n1,1,1,1\n2,1,1,1\n", "no input_gap"),
    ("# input_gap = 1\n# target_gap = 1\ntrajectory,epoch,dh2,dyhat2,w\na,0,1,1,1\na,1,1,1,1\n"
     "a,2,1,1,1\nb,0,1,1,1\nb,1,1,1,1\nb,2,1,1,1\na,3,1,1,1\n", ":10: trajectory 'a' again"),
])
def test_bad_csv_exits_2_naming_the_line(run_repsweep, tmp_path, text, needle):
    good, bad, out = tmp_path / "good.csv", tmp_path / "bad.csv", tmp_path / "out.csv"
    good.write_text(GOOD)
    bad.write_text(text)
    proc = run_repsweep("fit", "--out", out, good, bad, check=False)
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert needle in proc.stderr and "bad.csv" in proc.stderr, proc.stderr
    assert not out.exists(), "nothing is written when an input is bad"


def test_gaps_from_flags_and_json_output(run_repsweep, tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("epoch,dh2,dyhat2,w\n" + GOOD.split("w\n", 1)[1])
    rows = json.loads(run_repsweep("fit", "--json", "--input-gap", "1", "--target-gap", "0.5",
                                   path).stdout)
    assert len(rows) == 1 and rows[0]["input_gap"] == 1 and rows[0]["target_gap"] == 0.5
    assert rows[0]["trajectory"] == "0" and rows[0]["samples"] == 20


def test_fit_of_a_trial_file_gives_the_trials_numbers(run_repsweep, repsweep_bin, tmp_path):
    """`repsweep fit` on a `trial --out` file reproduces the trial's fit to the last digit,
    whatever OpenBLAS's thread count in the environment (an ill-conditioned case, where
    OpenBLAS's threaded sums moved 1/tau_h from 110.53209000 to 110.53208998)."""
    import os
    import subprocess
    out = tmp_path / "t.nc"
    trial = json.loads(run_repsweep(
        "trial", "--arch", "narrow", "--gain", "1.6", "--lr", "0.0003", "--target-gap", "1.0",
        "--seed", "1", "--out", out, "--json").stdout)
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_NUM_THREADS",
                                                           "OMP_NUM_THREADS")}
    proc = subprocess.run([repsweep_bin, "fit", "--json", str(out)], capture_output=True,
                          text=True, env=env, timeout=300, check=True)
    (row,) = json.loads(proc.stdout)
    for k in ("rate_h", "rate_y", "rate_ybar", "fit_loss", "fit_loss_rel", "A_high", "A_low",
              "dh2_predicted", "se_ln_rate_h", "r2_dh2", "r2_dyhat2", "r2_w"):
        assert row[k] == trial[k], (k, row[k], trial[k])
    assert row["rate_h_determination"] == trial["rate_h_determination"] == "unbounded_above"
