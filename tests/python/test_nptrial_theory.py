"""The N-point trial's pairwise predictions against an independent numpy implementation.

tests/npoint/nptrial_driver runs one N-point trial (include/repsweep/nptrial.h) and writes the
subset's data distances, epoch-0 dh2 / dyhat2 / w, final dh2, the theory's prediction (Eq. 10-11
per pair, and Eq. 50's exponential weighing of it) and the Pearson r's. Here the same quantities
are computed from the paper's formulas as written, in numpy:

    A_high = (dh2(0)/|dx|^2 - (tau_y/tau_h) dyhat2(0)/dh2(0)) |dx|^2          (Eq. 11)
    A_low  = sqrt(tau_y/tau_h) |dx| |dy|,  dh2(inf) = A_high/2 + sqrt(A_high^2/4 + A_low^2)  (Eq. 10)
    P_ij   = sum_kl exp(-T_ik) exp(-T_lj) T_kl, diagonal set to 0                 (Eq. 50)
    r      = numpy.corrcoef over the upper triangle without the diagonal (log: where both > 0)

with tau_y/tau_h = rate_h/rate_y. The data distances come from the data sets' definitions
(dataset.h), not from the driver. Eq. 10 written this way cancels when A_high < 0 (the merged
pairs), so it is compared to an absolute floor of 1e-12 x the largest prediction.
"""
import os
import subprocess

import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))


def _driver():
    path = os.environ.get("REPSWEEP_NPTRIAL_DRIVER")
    if not path:
        path = os.path.join(HERE, "..", "..", "build", "tests", "nptrial_driver")
    if not os.path.exists(path):
        pytest.fail(f"nptrial_driver not found at {path}: build it (cmake --build build)")
    return path


def _run(tmp_path, data, **keys):
    out = tmp_path / "out"
    out.mkdir()
    args = [_driver(), str(out), data] + [f"{k}={v}" for k, v in keys.items()]
    res = subprocess.run(args, capture_output=True, text=True, timeout=300,
                         env=dict(os.environ, OPENBLAS_NUM_THREADS="1"))
    assert res.returncode == 0, res.stderr
    meta = {}
    for line in (out / "meta.txt").read_text().splitlines():
        k, v = line.split()
        meta[k] = float(v)
    m = int(meta["m"])
    mats = {name: np.fromfile(out / f"{name}.bin").reshape(m, m)
            for name in ("input_gap2", "target_gap2", "dh2_initial", "dyhat2_initial",
                         "w_initial", "dh2_final", "dh2_predicted", "dh2_predicted_exp")}
    subset = np.fromfile(out / "subset.bin", dtype=np.int64)
    return meta, mats, subset


def eq10(dh2_0, dyhat2_0, gx2, gy2, rate_h, rate_y):
    """Eq. 10-11 as the paper writes them (0 where dh2(0) = 0: the same point)."""
    ratio = rate_h / rate_y  # tau_y / tau_h
    with np.errstate(divide="ignore", invalid="ignore"):
        a_high = (dh2_0 / gx2 - ratio * dyhat2_0 / dh2_0) * gx2
        a_low = np.sqrt(ratio) * np.sqrt(gx2) * np.sqrt(gy2)
        pred = a_high / 2 + np.sqrt(a_high ** 2 / 4 + a_low ** 2)
    return np.where(dh2_0 > 0, pred, 0.0)


def eq50(T):
    E = np.exp(-T)
    P = E @ T @ E
    np.fill_diagonal(P, 0.0)
    return P


def pearson(a, b, log=False):
    iu = np.triu_indices(a.shape[0], 1)
    u, v = a[iu], b[iu]
    if log:
        keep = (u > 0) & (v > 0)
        u, v = np.log(u[keep]), np.log(v[keep])
    return np.corrcoef(u, v)[0, 1], len(u)


def _check_against_numpy(meta, mats, x, y):
    gx2 = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    gy2 = ((y[:, None, :] - y[None, :, :]) ** 2).sum(-1)
    np.testing.assert_allclose(mats["input_gap2"], gx2, rtol=1e-15, atol=0)
    np.testing.assert_allclose(mats["target_gap2"], gy2, rtol=1e-15, atol=0)
    for name in ("dh2_initial", "dyhat2_initial", "w_initial", "dh2_final", "dh2_predicted",
                 "dh2_predicted_exp"):
        M = mats[name]
        assert np.array_equal(M, M.T), name
        assert np.all(np.diag(M) == 0), name
    pred = eq10(mats["dh2_initial"], mats["dyhat2_initial"], gx2, gy2, meta["rate_h"],
                meta["rate_y"])
    floor = 1e-12 * np.abs(pred).max()
    err = np.abs(mats["dh2_predicted"] - pred)
    assert np.all(err <= 1e-12 * np.abs(pred) + floor), err.max()
    P = eq50(mats["dh2_predicted"])
    np.testing.assert_allclose(mats["dh2_predicted_exp"], P, rtol=1e-12,
                               atol=1e-14 * np.abs(P).max())
    for key, pm, log in (("r_linear", "dh2_predicted", False), ("r_log", "dh2_predicted", True),
                         ("r_exp_linear", "dh2_predicted_exp", False),
                         ("r_exp_log", "dh2_predicted_exp", True)):
        r, n = pearson(mats[pm], mats["dh2_final"], log)
        assert abs(meta[key] - r) <= 1e-12, (key, meta[key], r)
        if log:
            assert meta[key + "_pairs"] == n
    return pred


def test_xor_predictions_match_numpy(tmp_path):
    """XOR at the paper's small gain 0.7 (a 12 x 50 net, lr 0.1, 3000 epochs; calibration: the
    mean of the six pairs' fitted rates): the theory merges the same-target pairs (0,0)-(1,1)
    and (1,0)-(0,1) (predicted below 1 % of every different-target pair)."""
    meta, mats, subset = _run(tmp_path, "xor", layers=12, units=50, gain=0.7, lr=0.1,
                              epochs=3000, stride=10)
    assert list(subset) == [0, 1, 2, 3]
    x = np.array([[0, 0], [1, 0], [0, 1], [1, 1]], float)
    y = np.array([[0], [1], [1], [0]], float)
    pred = _check_against_numpy(meta, mats, x, y)
    same = [pred[0, 3], pred[1, 2]]
    diff = [pred[0, 1], pred[0, 2], pred[1, 3], pred[2, 3]]
    fin = mats["dh2_final"]
    print(f"\nxor: calibration rate_h {meta['rate_h']:.4g} rate_y {meta['rate_y']:.4g}; "
          f"predicted same-target {same}, different-target {diff}; measured same-target "
          f"{[fin[0, 3], fin[1, 2]]}, different-target "
          f"{[fin[0, 1], fin[0, 2], fin[1, 3], fin[2, 3]]}; r {meta['r_linear']:.4f} "
          f"(log {meta['r_log']:.4f}), Eq. 50 r {meta['r_exp_linear']:.4f}")
    assert max(same) < 0.01 * min(diff)


def test_orthogonal_features_predictions_match_numpy(tmp_path):
    """18 points (orthogonal features on a 3 x 3 grid), no tracked pairs, a given calibration:
    Eq. 10 and Eq. 50 over a larger subset, and the four r's."""
    meta, mats, subset = _run(tmp_path, "orthogonal_features:3", activation="tanh", layers=4,
                              units=30, gain=0.5, lr=0.05, epochs=200, track=0,
                              calib="0.001:0.02")
    assert meta["rate_h"] == 0.001 and meta["rate_y"] == 0.02
    m = len(subset)
    assert m == 18
    # dataset.h: 5 x 5 blobs, centres -1..1 at 0.5 spacing, sigma 0.5, positions evenly over
    # [-1, 1]; point index c*P*P + iy*P + ix; output mx in context 0, my in context 1
    P_, s = 3, 0.5
    pos = np.linspace(-1, 1, P_)
    pix = np.linspace(-1, 1, 5)
    x, y = [], []
    for c in range(2):
        for iy in range(P_):
            for ix in range(P_):
                img = np.exp(-((pix[None, :] - pos[ix]) ** 2 + (pix[:, None] - pos[iy]) ** 2)
                             / (2 * s * s))
                x.append(np.concatenate([img.ravel(), np.eye(2)[c]]))
                y.append([pos[ix] if c == 0 else pos[iy]])
    x, y = np.array(x)[subset], np.array(y)[subset]
    _check_against_numpy(meta, mats, x, y)
