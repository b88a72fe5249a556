/* test_structure.c — the theory's pairwise prediction is Eq. 10 pair by pair (symmetric,
 * zero diagonal, same input -> 0); Eq. 50's exponential weighing on a hand-computed case;
 * Pearson r on constructed cases (linear and log, diagonal and lower triangle unread). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "repsweep/status.h"
#include "repsweep/structure.h"
#include "repsweep/theory.h"

static void test_prediction_is_eq10_per_pair_symmetric_with_zero_diagonal(void)
{
    enum { M = 3 };
    /* points 0 and 1 share their input (gap 0, dh2 0); 2 is elsewhere */
    double gx[M * M] = {0, 0, 1.5, 0, 0, 1.5, 1.5, 1.5, 0};
    double gy[M * M] = {0, 0.25, 1, 0.25, 0, 0, 1, 0, 0};
    double dh[M * M] = {0, 0, 0.02, 0, 0, 0.03, 0.02, 0.03, 0};
    double dy[M * M] = {0, 0, 0.001, 0, 0, 0.002, 0.001, 0.002, 0};
    double w[M * M] = {0, 0, 0.0005, 0, 0, 0.002, 0.0005, 0.002, 0};
    double pred[M * M];
    memset(pred, 0xff, sizeof pred);
    CHECK_OK(rs_structure_predict(M, gx, gy, dh, dy, w, 0.02, 0.05, pred));
    for (int a = 0; a < M; a++) {
        CHECK(pred[a * M + a] == 0, "diagonal %d is %g", a, pred[a * M + a]);
        for (int b = 0; b < M; b++)
            CHECK(pred[a * M + b] == pred[b * M + a], "asymmetric at %d,%d", a, b);
    }
    CHECK(pred[0 * M + 1] == 0, "same input: predicted %g, want 0", pred[1]);
    int pairs[2][2] = {{0, 2}, {1, 2}};
    for (int k = 0; k < 2; k++) {
        int i = pairs[k][0] * M + pairs[k][1];
        rs_theory_params p = {0.02, 0.05, gx[i], gy[i]};
        rs_theory_state s = {dh[i], dy[i], w[i]};
        double want;
        rs_theory_fixed_point(&p, s, NULL, NULL, &want);
        CHECK(pred[i] == want, "pair %d: %g, Eq. 10 gives %g", k, pred[i], want);
        /* Eq. 10-11 by hand for this pair: tau_y/tau_h = 0.4 */
        double ah = dh[i] - 0.4 * gx[i] * dy[i] / dh[i], al2 = 0.4 * gx[i] * gy[i];
        CHECK_CLOSE(pred[i], ah / 2 + sqrt(ah * ah / 4 + al2), 1e-14, 0, "Eq. 10 by hand");
    }
    /* target gap 0 and A_high < 0 (small initial weights): merged, Eq. 10 gives 0 */
    CHECK(pred[1 * M + 2] == 0.0 || pred[1 * M + 2] < 1e-12, "same target: %g", pred[5]);
    CHECK(rs_structure_predict(M, gx, gy, dh, dy, w, 0, 0.05, pred) == RS_E_INVALID,
          "rate 0 accepted");
}

static void test_exp_weighing_matches_a_hand_computed_case(void)
{
    /* Two points at theory distance a: E = [[1, e], [e, 1]], e = exp(-a); by hand,
     * E T E = [[2 a e, a (1 + e^2)], [a (1 + e^2), 2 a e]]. With a = ln 2 (e = 1/2):
     * P01 = 1.25 ln 2. The diagonal (2 a e = ln 2 as summed) is set to 0. */
    double a = log(2.0), T[4] = {0, a, a, 0}, P[4];
    CHECK_OK(rs_structure_exp_weigh(2, T, P));
    CHECK_CLOSE(P[1], 1.25 * log(2.0), 1e-15, 0, "P01 = 1.25 ln 2");
    CHECK(P[2] == P[1] && P[0] == 0 && P[3] == 0, "symmetric, zero diagonal: %g %g %g", P[2],
          P[0], P[3]);
    /* Three points at distances 1 (0-1), 2 (0-2), 3 (1-2). By hand (e_k = exp(-k)):
     * P01 = sum_kl E0k Tkl El1 with E0 = (1, e1, e2), E.1 = (e1, 1, e3):
     * k=0: 1*(T00 e1 + T01 1 + T02 e3)    = 1 + 2 e3
     * k=1: e1*(T10 e1 + T11 1 + T12 e3)   = e1 (e1 + 3 e3)
     * k=2: e2*(T20 e1 + T21 1 + T22 e3)   = e2 (2 e1 + 3) */
    double T3[9] = {0, 1, 2, 1, 0, 3, 2, 3, 0}, P3[9];
    double e1 = exp(-1.0), e2 = exp(-2.0), e3 = exp(-3.0);
    CHECK_OK(rs_structure_exp_weigh(3, T3, P3));
    CHECK_CLOSE(P3[1], 1 + 2 * e3 + e1 * (e1 + 3 * e3) + e2 * (2 * e1 + 3), 1e-14, 0,
                "3 points: P01 by hand");
    /* P02: E0 = (1, e1, e2), E.2 = (e2, e3, 1):
     * k=0: T01 e3 + T02 = e3 + 2; k=1: e1 (T10 e2 + T12) = e1 (e2 + 3);
     * k=2: e2 (T20 e2 + T21 e3) = e2 (2 e2 + 3 e3) */
    CHECK_CLOSE(P3[2], e3 + 2 + e1 * (e2 + 3) + e2 * (2 * e2 + 3 * e3), 1e-14, 0,
                "3 points: P02 by hand");
    /* The weighing lifts the close pair 0-1 (1 -> P01) relative to the far pair 1-2. */
    printf("Eq. 50, 3 points: T (1, 2, 3) -> P (%.6f, %.6f, %.6f)\n", P3[1], P3[2], P3[5]);
    double bad[4] = {0, NAN, NAN, 0};
    CHECK(rs_structure_exp_weigh(2, bad, P) == RS_E_INVALID, "NaN accepted");
}

static void test_pearson_on_constructed_cases(void)
{
    enum { M = 4 };
    /* upper triangle (6 pairs) a = 1..6; b = 3 a - 2 -> r = 1; the diagonal and the lower
     * triangle hold garbage that must not be read */
    double a[M * M], b[M * M], c[M * M];
    for (int k = 0; k < M * M; k++)
        a[k] = b[k] = c[k] = 1e6 * (k + 1);
    double u[6] = {1, 2, 3, 4, 5, 6};
    double v[6] = {2, 1, 4, 3, 6, 5}; /* r by hand: sum dx dy / sum dx^2 = 14.5 / 17.5 */
    for (int i = 0, k = 0; i < M; i++)
        for (int j = i + 1; j < M; j++, k++) {
            a[i * M + j] = u[k];
            b[i * M + j] = 3 * u[k] - 2;
            c[i * M + j] = v[k];
        }
    size_t used = 0;
    CHECK_CLOSE(rs_structure_pearson(M, a, b, 0, &used), 1.0, 1e-15, 0, "r of a line");
    CHECK(used == 6, "used %zu pairs, want 6", used);
    CHECK_CLOSE(rs_structure_pearson(M, a, c, 0, NULL), 14.5 / 17.5, 1e-15, 0, "r by hand");
    /* log: b = a^2 is a line in logs (r_log = 1) but not in values (r < 1) */
    for (int i = 0; i < M; i++)
        for (int j = i + 1; j < M; j++)
            b[i * M + j] = a[i * M + j] * a[i * M + j];
    double r_lin = rs_structure_pearson(M, a, b, 0, NULL);
    CHECK_CLOSE(rs_structure_pearson(M, a, b, 1, &used), 1.0, 1e-14, 0, "log r of a power");
    CHECK(r_lin < 0.99, "linear r of a square %.6f", r_lin);
    /* a merged pair (0) drops out of the log r only */
    b[0 * M + 1] = 0;
    rs_structure_pearson(M, a, b, 1, &used);
    CHECK(used == 5, "log r used %zu pairs, want 5", used);
    rs_structure_pearson(M, a, b, 0, &used);
    CHECK(used == 6, "linear r used %zu pairs, want 6", used);
    double k1[4] = {0, 1, 1, 0}, k2[4] = {0, 2, 2, 0};
    CHECK(isnan(rs_structure_pearson(2, k1, k2, 0, &used)) && used == 1, "one pair: not NaN");
    printf("pearson: r(u, v) = %.6f (14.5/17.5), linear r(a, a^2) = %.6f\n",
           rs_structure_pearson(M, a, c, 0, NULL), r_lin);
}

int main(void)
{
    test_prediction_is_eq10_per_pair_symmetric_with_zero_diagonal();
    test_exp_weighing_matches_a_hand_computed_case();
    test_pearson_on_constructed_cases();
    return CHECK_REPORT("test_structure");
}
