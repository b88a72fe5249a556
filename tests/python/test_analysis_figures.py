"""`python3 -m analysis figures|summary` on results files made here with repsweep itself
(a small inline network over three gains x three target gaps, trajectories recorded; and a
per-stage file for the depth figure). Numbers, not pixels: every statistic the commands
print or plot is recomputed here from the raw netCDF variables (netCDF4, numpy) without the
analysis package, and Eq. 10 in numpy equals repsweep's own dh2_predicted."""
import re
import sys

import numpy as np
import pytest

from analysis_util import REF_GAP, analysis_cli, block, write_job
from sweep_util import REPO_ROOT, read_results, run

sys.path.insert(0, str(REPO_ROOT))
from analysis import load, measures, theory  # noqa: E402

GAINS, LRS = (0.7, 1.0, 1.6), (0.05, 0.02, 0.005)
OTHER_GAPS = (0.35, 1.0)   # target gaps besides sqrt(0.5)
INPUT_GAPS = (0.6, 1.0)    # input gaps of the comparison block
THEORY_BLOCK = ('  { name = "theory"; theory_only = true; rate_h = [1e-3, 1e-2, 0.5]; '
                'rate_y = [1e-3]; dh2_0 = [0.5, 0.02]; dyhat2_0 = [0.01]; '
                f'input_gaps = [0.5, 1.0]; target_gaps = [0.0, {REF_GAP!r}]; epochs = 400; }}')


@pytest.fixture(scope="module")
def files(repsweep_bin, tmp_path_factory):
    """main.nc: fixed-gap trials (3 seeds: a mean differs from a median) and two input x
    two other target gaps (2 seeds) per gain, trajectories every 25 epochs, a theory-only
    block; depth.nc: two gains with every stage fitted."""
    d = tmp_path_factory.mktemp("analysis")
    job = write_job(d / "main.cfg", "main",
                    [block("ref", GAINS, LRS, [REF_GAP], [0, 1, 2]),
                     block("gaps", GAINS, LRS, OTHER_GAPS, [0, 1], input_gaps=INPUT_GAPS),
                     THEORY_BLOCK],
                    record="trajectory_stride = 25;")
    main = d / "main.nc"
    proc = run(repsweep_bin, job, main)
    assert proc.returncode == 0, proc.stderr
    job = write_job(d / "depth.cfg", "depth", [block("ref", GAINS[1:], LRS[1:], [REF_GAP],
                                                     [0, 1])], record="all_layers = true;")
    depth = d / "depth.nc"
    proc = run(repsweep_bin, job, depth)
    assert proc.returncode == 0, proc.stderr
    return {"dir": d, "main": main, "depth": depth}


def eq10(rate_h, rate_y, input_gap, target_gap, dh2_0, dyhat2_0):
    """Eq. 10-11 written out plainly (NOTES.md erratum 3), independent of analysis.theory."""
    a_high = dh2_0 - (rate_h / rate_y) * input_gap ** 2 * dyhat2_0 / dh2_0
    a_low = np.sqrt(rate_h / rate_y) * input_gap * target_gap
    return a_high / 2 + np.sqrt(a_high ** 2 / 4 + a_low ** 2)


def independent_final_distance(r):
    """Fig. 5's numbers from the raw variables: rates averaged per gain over the trials at
    (1, sqrt(0.5)) with status 0 and final loss < 1e-2; the other gaps' converged trials
    compared with Eq. 10 at those rates."""
    net = r["arch"] >= 0
    at_ref = net & np.isclose(r["target_gap"], REF_GAP) & np.isclose(r["input_gap"], 1.0)
    pred, meas, n_not_conv = [], [], 0
    for g in GAINS:
        cal = at_ref & (r["gain"] == g) & (r["status"] == 0) & (r["loss_final"] < 1e-2)
        assert cal.sum() >= 1, f"gain {g}: no calibration trial; choose other lr"
        rh, ry = r["rate_h"][cal].mean(), r["rate_y"][cal].mean()
        cmp_ = net & ~at_ref & (r["gain"] == g)
        n_not_conv += int((cmp_ & (r["converged"] == 0)).sum())
        keep = cmp_ & (r["converged"] == 1)
        pred += list(eq10(rh, ry, r["input_gap"][keep], r["target_gap"][keep],
                          r["dh2_initial"][keep], r["dyhat2_initial"][keep]))
        meas += list(r["dh2_final"][keep])
    pred, meas = np.array(pred), np.array(meas)
    return (np.corrcoef(pred, meas)[0, 1], np.median(np.abs(pred - meas) / meas), len(pred),
            n_not_conv)


def test_eq10_port_equals_repsweep(files):
    """analysis.theory.fixed_point with a trial's own rates and initial values equals the
    C's A_high, A_low and dh2_predicted — network trials (fitted rates) and theory-only
    trials (given rates, including A_high < 0)."""
    r = read_results(files["main"])
    ok = np.isfinite(r["rate_h"]) & np.isfinite(r["rate_y"])
    assert ok.sum() >= 30 and (r["arch"][ok] < 0).sum() == 24
    a_high, a_low, fin = theory.fixed_point(r["rate_h"][ok], r["rate_y"][ok],
                                            r["input_gap"][ok], r["target_gap"][ok],
                                            r["dh2_initial"][ok], r["dyhat2_initial"][ok])
    assert (a_high < 0).any() and (a_high > 0).any()  # both branches of Eq. 10 exercised
    np.testing.assert_allclose(a_high, r["A_high"][ok], rtol=1e-12, atol=0)
    np.testing.assert_allclose(a_low, r["A_low"][ok], rtol=1e-12, atol=0)
    np.testing.assert_allclose(fin, r["dh2_predicted"][ok], rtol=1e-12, atol=1e-300)


def test_final_distance_matches_independent_numbers(files):
    r = read_results(files["main"])
    want_r, want_err, want_n, want_nc = independent_final_distance(r)
    fd = measures.final_distance(load(files["main"]))
    assert fd["n_kept"] == want_n and fd["n_not_converged"] == want_nc
    assert fd["n_failed"] == 0 and fd["n_no_rates"] == 0
    assert fd["r"] == pytest.approx(want_r, rel=1e-10)
    assert fd["median_rel_err"] == pytest.approx(want_err, rel=1e-10)
    assert not any(g["in_sample"] for g in fd["groups"])


def test_figures_command_writes_all_and_prints_the_numbers(files):
    out = files["dir"] / "figs"
    proc = analysis_cli("figures", files["main"], "--out", out)
    assert proc.returncode == 0, proc.stderr
    wrote = re.findall(r"^wrote (.+)$", proc.stdout, re.M)
    want = {f"fig_{n}.{e}" for n in ("dynamics", "final_distance", "phase_diagram",
                                      "fit_quality") for e in ("png", "pdf")}
    assert {p.rsplit("/", 1)[-1] for p in wrote} == want, proc.stdout
    for p in wrote:
        assert (out / p.rsplit("/", 1)[-1]).stat().st_size > 1000, p
    assert "skipped depth: no per-stage results" in proc.stdout
    # the printed statistics are the independent ones (to the printed digits)
    want_r, want_err, want_n, want_nc = independent_final_distance(read_results(files["main"]))
    m = re.search(r"Pearson r = ([-\d.]+), median rel\. error = ([\d.]+) \(n = (\d+)\); left "
                  r"out (\d+): (\d+) not converged", proc.stdout)
    assert m, proc.stdout
    assert m.group(1) == f"{want_r:.3f}" and m.group(2) == f"{want_err:.3f}"
    assert int(m.group(3)) == want_n and int(m.group(5)) == want_nc

    proc = analysis_cli("figures", files["depth"], "--out", out, "--only", "depth")
    assert proc.returncode == 0, proc.stderr
    assert (out / "fig_depth.png").is_file() and (out / "fig_depth.pdf").is_file()


def test_phase_order_parameter_and_spread(files):
    """q = clip(A_high / dh2_final, 0, 1) per converged trial, median per cell; spread =
    sd/mean (ddof 1) of the converged seeds' final dh2."""
    r = read_results(files["main"])
    ph = measures.phase(load(files["main"]))
    net = r["arch"] >= 0
    checked = 0
    cells = [(1.0, REF_GAP)] + [(x, y) for x in INPUT_GAPS for y in OTHER_GAPS]
    for g in GAINS:
        for ig, tg in cells:
            cell = net & (r["gain"] == g) & np.isclose(r["target_gap"], tg) & \
                (r["input_gap"] == ig)
            conv = cell & (r["converged"] == 1)
            q = np.clip(r["A_high"][conv] / r["dh2_final"][conv], 0, 1)
            got = ph.sel(arch="small", input_gap=ig, gain=g).sel(target_gap=tg,
                                                                method="nearest")
            assert int(got["n_ran"]) == cell.sum() and int(got["n_converged"]) == conv.sum()
            if conv.any():
                assert float(got["q_median"]) == pytest.approx(np.median(q), rel=1e-12)
                checked += 1
            d = r["dh2_final"][conv]
            if conv.sum() >= 2:
                assert float(got["spread"]) == pytest.approx(d.std(ddof=1) / d.mean(),
                                                             rel=1e-10)
            else:
                assert np.isnan(float(got["spread"]))
    assert checked >= 12


def test_depth_medians_and_observed_stage(files):
    r = read_results(files["depth"])
    rows = measures.depth(load(files["depth"]))
    assert [row["gain"] for row in rows] == list(GAINS[1:])
    for row in rows:
        use = (r["gain"] == row["gain"]) & (r["status"] == 0)
        assert row["n"] == use.sum() == 2
        for name in ("stage_fit_loss_rel", "stage_rate_h", "stage_rate_y"):
            np.testing.assert_allclose(row[f"{name}_median"], np.median(r[name][use], axis=0),
                                       rtol=1e-12)
        # the observed layer of a 4-hidden-layer dense net is hidden layer 2 = stage 1
        assert row["observed"] == 1


def test_summary_counts_and_rates(files):
    r = read_results(files["main"])
    proc = analysis_cli("summary", files["main"])
    assert proc.returncode == 0, proc.stderr
    rows = {float(ln.split()[1]): ln.split() for ln in proc.stdout.splitlines()
            if ln.startswith("small ")}
    assert sorted(rows) == list(GAINS), proc.stdout
    for g in GAINS:
        m = (r["arch"] >= 0) & (r["gain"] == g)
        cols = rows[g]
        assert [int(x) for x in cols[2:6]] == [m.sum(), (m & (r["status"] == 0)).sum(),
                                              (m & (r["status"] != 0)).sum(),
                                              (m & (r["converged"] == 1)).sum()], cols
        fitted = m & np.isfinite(r["rate_h"])
        assert cols[6] == f"{r['rate_h'][fitted].mean():.3e}", cols
        assert cols[8] == f"{r['rate_h'][fitted].std(ddof=1):.2e}", cols
        own = m & (r["converged"] == 1)
        err = np.median(np.abs(r["dh2_predicted"][own] - r["dh2_final"][own]) /
                        r["dh2_final"][own])
        assert cols[-2] == f"{err:.3f}", cols
    assert "theory-only trials: 24" in proc.stdout
