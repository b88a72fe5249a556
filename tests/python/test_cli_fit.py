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
