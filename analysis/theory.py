"""The closed forms of the effective theory that the figures need, in numpy, and the two
agreement statistics. The ODE itself (Eq. 7) is never solved here: repsweep solves it with
GSL and stores the fitted theory's curves in the results file (``*_theory_traj``).

Names follow NOTES.md: ``dh2`` = ||h(x2)-h(x1)||² at the observed layer, ``dyhat2`` the
squared *predicted* output difference, ``input_gap``/``target_gap`` the data's distances
|x2-x1| and |y2-y1| (not squared)."""
import numpy as np


def fixed_point(rate_h, rate_y, input_gap, target_gap, dh2_initial, dyhat2_initial):
    """Eq. 11 and Eq. 10 (NOTES.md erratum 3), elementwise over numpy arrays:

    A_high = dh2(0) - (tau_y/tau_h) ||x2-x1||² dyhat2(0)/dh2(0)   (tau_y/tau_h = rate_h/rate_y)
    A_low  = sqrt(tau_y/tau_h) ||x2-x1|| ||y2-y1||
    dh2(inf) = A_high/2 + sqrt(A_high²/4 + A_low²)

    Returns (A_high, A_low, dh2_inf). For A_high < 0 the final distance is evaluated as
    A_low² / (sqrt(A_high²/4 + A_low²) - A_high/2), the same number without cancellation
    (as repsweep's rs_theory_fixed_point does), and 0 when A_low = 0 as well."""
    rate_h, rate_y, gx, gy, d0, y0 = np.broadcast_arrays(
        *(np.asarray(v, dtype=float) for v in (rate_h, rate_y, input_gap, target_gap,
                                               dh2_initial, dyhat2_initial)))
    ratio = rate_h / rate_y
    a_high = d0 - ratio * gx ** 2 * y0 / d0
    low2 = ratio * gx ** 2 * gy ** 2
    root = np.sqrt(0.25 * a_high ** 2 + low2)
    with np.errstate(divide="ignore", invalid="ignore"):
        neg = np.where(low2 > 0, low2 / (root - 0.5 * a_high), 0.0)
    final = np.where(a_high >= 0, 0.5 * a_high + root, neg)
    return a_high, np.sqrt(low2), final


def order_parameter(dh2_final, A_high):
    """The lazy/rich order parameter q = A_high / dh2_final, clipped to [0, 1].

    Why: at the stable fixed point Eq. 10 reads dh2(inf) = A_high + A_low²/dh2(inf) — the
    final distance is a part A_high set by the initialisation plus a part A_low²/dh2(inf)
    set by the data. q is the initialisation's share of the *measured* final distance:
    q -> 1 lazy (the final distance is the initial one, A_high), q -> 0 rich (set by the
    data; A_high <= 0 gives 0). Where the theory holds, q = 1 - (A_low/dh2_final)² and it
    passes 1/2 where A_high = A_low/sqrt(2). NaN where dh2_final is not positive or either
    input is NaN."""
    d = np.asarray(dh2_final, dtype=float)
    a = np.asarray(A_high, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.where(d > 0, a / d, np.nan)
    return np.clip(q, 0.0, 1.0)


def pearson_r(x, y):
    """Pearson's correlation coefficient of two 1-D samples (NaN for fewer than 2 points
    or a constant sample)."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    if x.size < 2:
        return float("nan")
    dx, dy = x - x.mean(), y - y.mean()
    den = np.sqrt((dx * dx).sum() * (dy * dy).sum())
    return float((dx * dy).sum() / den) if den > 0 else float("nan")


def median_relative_error(predicted, measured):
    """median over trials of |predicted - measured| / |measured| (NaN for no trials; a
    measured value of 0 gives inf for that trial unless the prediction is 0 too)."""
    p = np.asarray(predicted, dtype=float)
    m = np.asarray(measured, dtype=float)
    if p.size == 0:
        return float("nan")
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(p == m, 0.0, np.abs(p - m) / np.abs(m))
    return float(np.median(rel))
