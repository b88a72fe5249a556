/* test_theory.c — the effective theory (theory.h): the analytic Jacobian of Eq. 7, the
 * exact identical-target solution (Eq. 38-40 corrected), convergence to the fixed point of
 * Eq. 10-11, the collapse (dh2 -> 0), the loss of Eq. 9/22 (corrected) and bad arguments. */
#include "check.h"
#include "repsweep/status.h"
#include "repsweep/theory.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include <gsl/gsl_errno.h>

/* Internal entry points of theory.c, exposed for this test only. */
int rs_theory_rhs_(const rs_theory_params *p, const double y[3], double f[3]);
int rs_theory_jacobian_(const rs_theory_params *p, const double y[3], double dfdy[9]);
void rs_theory_set_stepper_(rs_theory_solver *s, int mode);
int rs_theory_used_msbdf_(const rs_theory_solver *s);

static int all_finite(const rs_theory_state *o, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(o[i].dh2) || !isfinite(o[i].dyhat2) || !isfinite(o[i].w))
            return 0;
    return 1;
}

/* (1) theory.c integrates Eq. 7 in the smooth variables (a, p, q), dh2 = a^2,
 * dyhat2 = a^2 p, w = a (a p - q) (see theory.c). Its analytic Jacobian against central
 * differences of its right-hand side: */
static void test_jacobian(void)
{
    const rs_theory_params ps[] = {
        {3e-3, 7e-3, 1.0, 0.5}, {0.2, 0.01, 2.5, 0.0}, {1e-4, 0.05, 0.3, 1.7}};
    const double ys[][3] = {
        {0.55, 0.17, 0.4}, {1.4, 0.35, 0.0}, {0.03, 0.2, -0.05}, {-2.2, 0.05, 0.3}};
    double worst = 0.0;
    for (size_t a = 0; a < sizeof ps / sizeof ps[0]; a++) {
        for (size_t b = 0; b < sizeof ys / sizeof ys[0]; b++) {
            double J[9], fp[3], fm[3], y[3];
            CHECK_OK(rs_theory_jacobian_(&ps[a], ys[b], J));
            double jscale = 0.0;
            for (int k = 0; k < 9; k++)
                jscale = fmax(jscale, fabs(J[k]));
            for (int j = 0; j < 3; j++) {
                const double h = 1e-5 * fmax(fabs(ys[b][j]), 0.1);
                for (int k = 0; k < 3; k++)
                    y[k] = ys[b][k];
                y[j] = ys[b][j] + h;
                CHECK_OK(rs_theory_rhs_(&ps[a], y, fp));
                y[j] = ys[b][j] - h;
                CHECK_OK(rs_theory_rhs_(&ps[a], y, fm));
                for (int i = 0; i < 3; i++) {
                    double fd = (fp[i] - fm[i]) / (2.0 * h);
                    double err = fabs(fd - J[3 * i + j]) / jscale;
                    worst = fmax(worst, err);
                    CHECK(err < 1e-8, "dfdy[%d][%d] set %zu state %zu: analytic %.12g fd %.12g",
                          i, j, a, b, J[3 * i + j], fd);
                }
            }
        }
    }
    double yn[3] = {NAN, 0.1, 0.1}, f[3], J[9];
    CHECK(rs_theory_rhs_(&ps[0], yn, f) == GSL_EBADFUNC, "rhs must refuse a NaN state");
    CHECK(rs_theory_jacobian_(&ps[0], yn, J) == GSL_EBADFUNC, "jacobian must refuse NaN");
    printf("jacobian: worst |analytic - central difference| / max|J| = %.2e (limit 1e-8)\n", worst);
}

/* ... and the smooth form is Eq. 7: by the chain rule, d/dt of (a^2, a^2 p, a (a p - q))
 * equals Eq. 7's right-hand side, written out here independently. */
static void eq7(const rs_theory_params *p, rs_theory_state s, double f[3])
{
    const double g = p->input_gap2, T = p->target_gap2, rh = p->rate_h, ry = p->rate_y;
    f[0] = -rh * g * s.w;
    f[1] = -s.w * (ry * s.dh2 + rh * g * s.dyhat2 / s.dh2);
    f[2] = -0.5 * ry * (3.0 * s.w - s.dyhat2 + T) * s.dh2 -
           0.5 * rh * g * (s.dyhat2 + s.w) * s.w / s.dh2;
}

static void test_smooth_form_is_eq7(void)
{
    const rs_theory_params ps[] = {
        {3e-3, 7e-3, 1.0, 0.5}, {0.2, 0.01, 2.5, 0.0}, {1e-4, 0.05, 0.3, 1.7}};
    const double ys[][3] = {
        {0.55, 0.17, 0.4}, {1.4, 0.35, 0.0}, {0.03, 0.2, -0.05}, {-2.2, 0.05, 0.3}};
    double worst = 0.0;
    for (size_t i = 0; i < sizeof ps / sizeof ps[0]; i++) {
        for (size_t j = 0; j < sizeof ys / sizeof ys[0]; j++) {
            const double a = ys[j][0], p = ys[j][1], q = ys[j][2];
            double f[3], g[3];
            CHECK_OK(rs_theory_rhs_(&ps[i], ys[j], f));
            const rs_theory_state s = {a * a, a * a * p, a * (a * p - q)};
            eq7(&ps[i], s, g);
            const double chain[3] = {2.0 * a * f[0], 2.0 * a * p * f[0] + a * a * f[1],
                                     2.0 * a * p * f[0] + a * a * f[1] - q * f[0] - a * f[2]};
            const double sc = fabs(g[0]) + fabs(g[1]) + fabs(g[2]);
            for (int k = 0; k < 3; k++) {
                worst = fmax(worst, fabs(chain[k] - g[k]) / sc);
                CHECK_CLOSE(chain[k], g[k], 1e-13, sc, "chain rule vs Eq. 7");
            }
        }
    }
    printf("smooth form vs Eq. 7 (chain rule): worst rel diff %.2e (limit 1e-13)\n", worst);
}

/* (2) identical targets (T = 0, w = dyhat2), A_high > 0: the solver reproduces the exact
 * solution. dh2 stays near A_high, so it is compared purely relatively; dyhat2 decays to 0
 * (as e^{-A_high rate_y t}, through tens of orders of magnitude for the faster sets; the
 * solver is relative only down to 1e-24 dyhat2(0)), so it is compared relative to
 * max(|exact|, 1e-6 dyhat2(0)). */
static void test_exact_identical(void)
{
    struct { rs_theory_params p; rs_theory_state s; } cs[] = {
        {{1e-2, 1e-1, 1.0, 0.0}, {1.0, 0.1, 0.1}},
        {{1e-4, 1e-2, 1.0, 0.0}, {0.01, 1e-3, 1e-3}},
        {{1e-3, 1e-3, 1.0, 0.0}, {0.05, 1e-3, 1e-3}},
        {{1e-1, 1e-2, 2.0, 0.0}, {5.0, 1.0, 1.0}},
        {{5e-2, 1e-1, 1.0, 0.0}, {2.0, 0.5, 0.5}},
        {{3e-2, 4e-3, 0.5, 0.0}, {0.2, 0.005, 0.005}},
    };
    enum { NT = 120 };
    double times[NT];
    rs_theory_state out[NT];
    for (int i = 0; i < NT; i++) /* 0, then log-spaced from 0.1 to 6000 */
        times[i] = i == 0 ? 0.0 : 0.1 * pow(60000.0, (i - 1) / (double)(NT - 2));
    rs_theory_solver *s = rs_theory_solver_alloc(1e-12);
    CHECK(s != NULL, "solver alloc");
    for (size_t c = 0; c < sizeof cs / sizeof cs[0]; c++) {
        double A;
        rs_theory_fixed_point(&cs[c].p, cs[c].s, &A, NULL, NULL);
        CHECK(A > 0.0, "case %zu needs A_high > 0 (got %g)", c, A);
        int st = rs_theory_solve(s, &cs[c].p, cs[c].s, times, NT, out);
        CHECK(st == RS_OK, "case %zu: status %d", c, st);
        double e_dh = 0.0, e_dy = 0.0, e_w = 0.0;
        for (int i = 0; i < NT; i++) {
            rs_theory_state x = rs_theory_exact_identical_targets(&cs[c].p, cs[c].s, times[i]);
            const double fl = 1e-6 * cs[c].s.dyhat2;
            e_dh = fmax(e_dh, fabs(out[i].dh2 - x.dh2) / x.dh2);
            e_dy = fmax(e_dy, fabs(out[i].dyhat2 - x.dyhat2) / fmax(x.dyhat2, fl));
            e_w = fmax(e_w, fabs(out[i].w - x.w) / fmax(x.w, fl));
        }
        rs_theory_state xe = rs_theory_exact_identical_targets(&cs[c].p, cs[c].s, 6000.0);
        printf("exact identical targets %zu: A_high=%.6g dh2(6000)=%.10g (exact %.10g) "
               "dyhat2(6000)=%.4g; max rel err dh2 %.2e dyhat2 %.2e w %.2e (limit 1e-8)\n",
               c, A, out[NT - 1].dh2, xe.dh2, out[NT - 1].dyhat2, e_dh, e_dy, e_w);
        CHECK(e_dh <= 1e-8 && e_dy <= 1e-8 && e_w <= 1e-8,
              "case %zu: rel err dh2 %.3g dyhat2 %.3g w %.3g", c, e_dh, e_dy, e_w);
    }
    rs_theory_solver_free(s);
}

/* The exact solution itself against Eq. 39 as written (with the corrected exponent) and
 * Eq. 24 as written, away from where they lose precision; A_high <= 0 included. */
static void test_exact_formula(void)
{
    const rs_theory_params p[] = {{1e-2, 1e-1, 1.0, 0.0}, {1e-2, 1e-3, 1.0, 0.0},
                                  {1e-2, 1e-2, 1.0, 0.0}};
    const rs_theory_state s[] = {{1.0, 0.1, 0.1}, {0.1, 0.05, 0.05}, {0.1, 1e-2, 1e-2}};
    for (int c = 0; c < 3; c++) {
        double A;
        rs_theory_fixed_point(&p[c], s[c], &A, NULL, NULL);
        for (double t = 0.0; t <= 300.0; t += 37.5) {
            rs_theory_state x = rs_theory_exact_identical_targets(&p[c], s[c], t);
            const double E0 = exp(-A * p[c].rate_y * t);
            double dh2 = fabs(A) > 1e-12 ? A / (1.0 + (A / s[c].dh2 - 1.0) * E0)
                                         : s[c].dh2 / (1.0 + s[c].dh2 * p[c].rate_y * t);
            const double k = p[c].rate_y / p[c].rate_h / p[c].input_gap2;
            const double dy2 = k * dh2 * (dh2 - A); /* Eq. 24, cancels as dh2 -> A_high */
            const double E = exp(-A * p[c].rate_y * t), den = 1.0 + (A / s[c].dh2 - 1.0) * E;
            const double dy2_40 = k * A * A * (1.0 - A / s[c].dh2) * E / (den * den); /* Eq. 40 */
            CHECK_CLOSE(x.dh2, dh2, 1e-12, 0.0, "Eq. 39 dh2");
            CHECK_CLOSE(x.dyhat2, dy2, 1e-10, 1e-3 * s[c].dyhat2, "Eq. 24 dyhat2");
            if (fabs(A) > 1e-12)
                CHECK_CLOSE(x.dyhat2, dy2_40, 1e-12, 0.0, "Eq. 40 dyhat2");
        }
    }
}

/* (3) T > 0: dh2 -> Eq. 10's dh2(inf), dyhat2 -> T, w -> 0; Eq. 24's invariant
 * dyhat2/dh2 - (rate_y/rate_h) dh2/input_gap2 holds along the way. */
static void test_fixed_point(void)
{
    struct { const char *name; rs_theory_params p; rs_theory_state s; double t_end; } cs[] = {
        {"paper-like", {3e-3, 3e-3, 1.0, 0.5}, {0.3, 0.05, 0.05 - sqrt(0.05 * 0.5)}, 3e4},
        {"lazy-like", {2e-3, 1e-3, 1.0, 0.5}, {5.0, 1.0, 1.0 - sqrt(0.5)}, 3e4},
        {"rich-like", {1e-2, 1e-2, 1.0, 0.5}, {1e-4, 1e-6, 1e-6 - sqrt(0.5e-6)}, 2e5},
        {"rich, fast decoder", {1e-3, 1e-1, 1.0, 1.0}, {1e-3, 1e-5, 1e-5 - sqrt(1e-5)}, 2e5},
        /* f2 - f1 of the wrong sign: with A_high > 0 the decoder factor flips (dyhat2
         * touches 0); with A_high < 0 it cannot (Eq. 24), so dh2 touches 0 and recovers. */
        {"wrong sign A>0", {2e-3, 5e-3, 1.0, 0.5}, {2.0, 0.3, 0.3 + sqrt(0.15)}, 3e4},
        {"wrong sign A<0", {5e-3, 2e-3, 2.0, 0.3}, {0.5, 0.2, 0.2 + sqrt(0.2 * 0.3)}, 5e4},
        {"rich, wrong sign", {1e-2, 1e-2, 1.0, 0.5}, {1e-4, 1e-6, 1e-6 + sqrt(0.5e-6)}, 2e5},
        {"fast rates", {1.0, 2.0, 1.0, 0.5}, {0.4, 0.3, 0.3 - sqrt(0.15)}, 2e3},
    };
    enum { NT = 400 };
    double times[NT];
    rs_theory_state out[NT];
    rs_theory_solver *s = rs_theory_solver_alloc(1e-10);
    for (size_t c = 0; c < sizeof cs / sizeof cs[0]; c++) {
        for (int i = 0; i < NT; i++)
            times[i] = i == 0 ? 0.0 : cs[c].t_end * pow(1e-6, (NT - 1.0 - i) / (NT - 2.0));
        double A, L, fin;
        rs_theory_fixed_point(&cs[c].p, cs[c].s, &A, &L, &fin);
        int st = rs_theory_solve(s, &cs[c].p, cs[c].s, times, NT, out);
        CHECK(st == RS_OK, "%s: status %d", cs[c].name, st);
        CHECK(all_finite(out, NT), "%s: non-finite output", cs[c].name);
        const rs_theory_state e = out[NT - 1];
        const double k = cs[c].p.rate_y / cs[c].p.rate_h / cs[c].p.input_gap2;
        const double inv0 = cs[c].s.dyhat2 / cs[c].s.dh2 - k * cs[c].s.dh2;
        double inv_err = 0.0, dh2_min = cs[c].s.dh2, dy2_min = cs[c].s.dyhat2;
        for (int i = 0; i < NT; i++) {
            dh2_min = fmin(dh2_min, out[i].dh2);
            dy2_min = fmin(dy2_min, out[i].dyhat2);
            double inv = out[i].dyhat2 / out[i].dh2 - k * out[i].dh2;
            double sc = fabs(out[i].dyhat2 / out[i].dh2) + fabs(k * out[i].dh2);
            inv_err = fmax(inv_err, fabs(inv - inv0) / sc);
        }
        const double wscale = cs[c].p.target_gap2;
        printf("fixed point %-18s A_high=%.5g A_low=%.5g: dh2(%g)=%.10g Eq.10 %.10g rel err %.1e; "
               "dyhat2 %.8g (T=%g); |w|/T %.1e; Eq.24 invariant rel err %.1e; "
               "min dh2 %.2g dyhat2 %.2g\n",
               cs[c].name, A, L, cs[c].t_end, e.dh2, fin, fabs(e.dh2 - fin) / fin, e.dyhat2,
               cs[c].p.target_gap2, fabs(e.w) / wscale, inv_err, dh2_min, dy2_min);
        CHECK_CLOSE(e.dh2, fin, 1e-6, 0.0, cs[c].name);
        CHECK_CLOSE(e.dyhat2, cs[c].p.target_gap2, 1e-6, 0.0, cs[c].name);
        CHECK(fabs(e.w) <= 1e-6 * wscale, "%s: w(end) = %g", cs[c].name, e.w);
        CHECK(inv_err <= 1e-7, "%s: Eq. 24 invariant drifts by %g", cs[c].name, inv_err);
    }
    rs_theory_solver_free(s);
}

/* (4) T = 0 and A_high < 0: dh2 -> 0 exponentially; the solver reports the collapse (or
 * finishes first) and never returns NaN, Inf or a negative dh2. Before the collapse the
 * solution follows the exact one. */
static void test_collapse(void)
{
    struct { rs_theory_params p; rs_theory_state s; double t_end; } cs[] = {
        {{1e-2, 1e-3, 1.0, 0.0}, {0.01, 0.1, 0.1}, 1e5},
        {{1e-3, 1e-3, 1.0, 0.0}, {0.05, 0.01, 0.01}, 1e9},
        {{1e-1, 1e-4, 1.0, 0.0}, {1e-3, 1e-3, 1e-3}, 1e7},
        {{1.0, 1.0, 1.0, 0.0}, {0.5, 0.3, 0.3}, 1e12},
        /* A_high = 0 (to rounding): algebraic decay dh2 ~ 1/(rate_y t), the marginal case.
         * dh2(t) is ill-conditioned in A_high there (relative sensitivity rate_y t / 2 =
         * 5e5 per unit of A_high at t = 1e8), so the solver's drift in Eq. 24's invariant
         * (~1e-10 at rel_tol 1e-10) shows up as ~1e-4; checked to 1e-3. */
        {{1e-2, 1e-2, 1.0, 0.0}, {0.1, 0.01, 0.01}, 1e8},
    };
    enum { NT = 300 };
    double times[NT];
    rs_theory_state out[NT];
    rs_theory_solver *s = rs_theory_solver_alloc(1e-10);
    for (size_t c = 0; c < sizeof cs / sizeof cs[0]; c++) {
        for (int i = 0; i < NT; i++)
            times[i] = i == 0 ? 0.0 : cs[c].t_end * pow(1e-8, (NT - 1.0 - i) / (NT - 2.0));
        double A;
        rs_theory_fixed_point(&cs[c].p, cs[c].s, &A, NULL, NULL);
        int st = rs_theory_solve(s, &cs[c].p, cs[c].s, times, NT, out);
        CHECK(st == RS_OK || st == RS_S_COLLAPSED, "collapse %zu: status %d", c, st);
        CHECK(all_finite(out, NT), "collapse %zu: non-finite output", c);
        int neg = 0, ncol = 0;
        double err = 0.0;
        for (int i = 0; i < NT; i++) {
            neg += out[i].dh2 < 0.0;
            ncol += out[i].dh2 == 0.0;
            rs_theory_state x = rs_theory_exact_identical_targets(&cs[c].p, cs[c].s, times[i]);
            if (out[i].dh2 > 0.0 && x.dh2 > 1e-100 * cs[c].s.dh2)
                err = fmax(err, fabs(out[i].dh2 - x.dh2) / x.dh2);
        }
        CHECK(neg == 0, "collapse %zu: %d negative dh2", c, neg);
        CHECK(err < (fabs(A) < 1e-12 ? 1e-3 : 1e-6), "collapse %zu: rel err vs exact %g", c, err);
        if (st == RS_S_COLLAPSED)
            CHECK(ncol > 0 && out[NT - 1].dyhat2 == 0.0 && out[NT - 1].w == 0.0,
                  "collapse %zu: tail not (0,0,0)", c);
        printf("collapse %zu: A_high=%.4g t_end=%g status %d (%s), %d of %d outputs at the limit, "
               "max rel err vs exact before the collapse %.1e\n",
               c, A, cs[c].t_end, st, rs_strerror(st), ncol, NT, err);
    }
    rs_theory_solver_free(s);
}

/* (5) Eq. 9/22 at t = 0 against 1/2 mean_i (f_i - y_i)^2 for 1-D outputs: pins the
 * erratum (the mean-output term, and the 1/4 (w + (T - dyhat2)/2) term). */
static void test_loss(void)
{
    const double f1 = 0.31, f2 = -0.47, y1 = 0.6, y2 = 0.6 + sqrt(0.5);
    const double dyh = f2 - f1, dy = y2 - y1;
    const rs_theory_params p = {1e-2, 2e-2, 1.0, dy * dy};
    const rs_theory_state st = {0.7, dyh * dyh, dyh * dyh - dyh * dy};
    const double off = 0.5 * (f1 + f2) - 0.5 * (y1 + y2);
    const double direct = 0.5 * 0.5 * ((f1 - y1) * (f1 - y1) + (f2 - y2) * (f2 - y2));
    const double L0 = rs_theory_loss(&p, 0.37, off, 0.0, st);
    printf("loss at t=0: Eq. 9 %.15g, direct 1/2 mean (f-y)^2 %.15g\n", L0, direct);
    CHECK_CLOSE(L0, direct, 1e-13, 0.0, "loss at t = 0");
    /* The mean term decays with rate_ybar only (Eq. 18), at twice the rate in L. */
    const double t = 13.0, rb = 0.05;
    const double Lt = rs_theory_loss(&p, rb, off, t, st);
    CHECK_CLOSE(Lt - (L0 - 0.5 * off * off), 0.5 * off * off * exp(-2.0 * rb * t), 1e-12, 0.0,
                "mean-output term at t");
    rs_theory_params q = p;
    q.rate_y = 5.0; /* must not enter */
    CHECK(rs_theory_loss(&q, rb, off, t, st) == Lt, "loss must not depend on rate_y");
}

/* Dense output: rs_theory_solve interpolates the outputs inside msbdf's steps (theory.c).
 * Each output of a solve asked for every epoch is compared with a separate solve that ends
 * at that epoch (its last output is where a step lands, not an interpolation). The two
 * differ by the interpolation error plus the difference of two step sequences' global
 * errors; each component's error is relative to its largest magnitude on the trajectory
 * (w and, for the wrong sign, a cross 0). */
static void test_dense_output(void)
{
    static const struct {
        const char *name;
        rs_theory_params p;
        rs_theory_state s;
        int epochs;
    } cs[] = {
        {"paper-like", {1e-3, 3e-2, 1.0, 0.5}, {2.3e-3, 3.5e-8, -1.3e-4}, 6000},
        {"fast decoder", {5e-3, 5e-1, 1.0, 0.5}, {0.3, 0.05, -0.1}, 3000},
        {"wrong sign A<0", {2e-3, 2e-3, 1.0, 0.3}, {1e-2, 5e-2, 0.1}, 6000},
        {"lazy", {1e-4, 1e-4, 1.0, 0.5}, {4.6, 0.5, 0.2}, 6000},
    };
    enum { NMAX = 6001, PROBES = 24 };
    double *times = malloc(NMAX * sizeof *times);
    rs_theory_state *dense = malloc(NMAX * sizeof *dense);
    rs_theory_solver *s = rs_theory_solver_alloc(1e-8);
    for (size_t c = 0; c < sizeof cs / sizeof cs[0]; c++) {
        const int n = cs[c].epochs + 1;
        for (int i = 0; i < n; i++)
            times[i] = i;
        CHECK_OK(rs_theory_solve(s, &cs[c].p, cs[c].s, times, (size_t)n, dense));
        double scale[3] = {0.0, 0.0, 0.0}, err[3] = {0.0, 0.0, 0.0};
        for (int i = 0; i < n; i++) {
            scale[0] = fmax(scale[0], fabs(dense[i].dh2));
            scale[1] = fmax(scale[1], fabs(dense[i].dyhat2));
            scale[2] = fmax(scale[2], fabs(dense[i].w));
        }
        for (int k = 1; k <= PROBES; k++) {
            /* epochs spread over the run, off any regular pattern of the steps */
            const int e = (int)((double)(n - 1) * k / (PROBES + 0.37));
            const double two[2] = {0.0, (double)e};
            rs_theory_state end[2];
            CHECK_OK(rs_theory_solve(s, &cs[c].p, cs[c].s, two, 2, end));
            err[0] = fmax(err[0], fabs(end[1].dh2 - dense[e].dh2) / scale[0]);
            err[1] = fmax(err[1], fabs(end[1].dyhat2 - dense[e].dyhat2) / scale[1]);
            err[2] = fmax(err[2], fabs(end[1].w - dense[e].w) / scale[2]);
        }
        printf("dense output %-15s max rel err vs landed solves: dh2 %.1e dyhat2 %.1e w %.1e "
               "(limit 1e-6)\n", cs[c].name, err[0], err[1], err[2]);
        CHECK(err[0] < 1e-6 && err[1] < 1e-6 && err[2] < 1e-6, "dense output off (%s)",
              cs[c].name);
    }
    /* Rates so large that derivatives overflow: a status, never a NaN. */
    const rs_theory_params huge = {1e200, 1e200, 1.0, 0.5};
    const int st = rs_theory_solve(s, &huge, cs[0].s, times, 11, dense);
    printf("dense output, rates 1e200: status %d (%s), outputs finite: %d\n", st, rs_strerror(st),
           all_finite(dense, 11));
    CHECK(all_finite(dense, 11), "rates 1e200: NaN in the output");
    rs_theory_solver_free(s);
    free(times);
    free(dense);
}

/* rs_theory_rate_of_change is Eq. 7 (eq7 above), and the identity the fit's Jacobian rests
 * on: Eq. 7 depends on the rates only through rate_h/rate_y and rate_y t, so a solution's
 * derivative in ln rate_y is minus its derivative in ln rate_h plus t d/dt. Derivatives in
 * the log rates by central differences (step 1e-3) of solves at rel_tol 1e-11, compared
 * at every 50th epoch relative to each component's largest |derivative| on the run. A
 * dropped term (either one) gives errors of order 1. */
static void test_rate_scaling(void)
{
    static const struct {
        const char *name;
        rs_theory_params p;
        rs_theory_state s;
    } cs[] = {
        {"paper-like", {1e-3, 3e-2, 1.0, 0.5}, {2.3e-3, 3.5e-8, -1.3e-4}},
        {"fast decoder", {5e-3, 5e-1, 1.0, 0.5}, {0.3, 0.05, -0.1}},
        {"wrong sign A<0", {2e-3, 2e-3, 1.0, 0.3}, {1e-2, 5e-2, 0.1}},
        {"identical targets", {3e-3, 1e-2, 1.0, 0.0}, {0.8, 0.3, 0.3}},
    };
    enum { N = 3001, EVERY = 50 };
    const double d = 1e-3;
    double times[N];
    static rs_theory_state base[N], hp[N], hm[N], yp[N], ym[N];
    for (int i = 0; i < N; i++)
        times[i] = i;
    rs_theory_solver *s = rs_theory_solver_alloc(1e-11);
    double worst_eq7 = 0.0;
    for (size_t c = 0; c < sizeof cs / sizeof cs[0]; c++) {
        const rs_theory_params p = cs[c].p;
        rs_theory_params ph = p, pm = p, qy = p, my = p;
        ph.rate_h *= exp(d), pm.rate_h *= exp(-d), qy.rate_y *= exp(d), my.rate_y *= exp(-d);
        CHECK_OK(rs_theory_solve(s, &p, cs[c].s, times, N, base));
        CHECK_OK(rs_theory_solve(s, &ph, cs[c].s, times, N, hp));
        CHECK_OK(rs_theory_solve(s, &pm, cs[c].s, times, N, hm));
        CHECK_OK(rs_theory_solve(s, &qy, cs[c].s, times, N, yp));
        CHECK_OK(rs_theory_solve(s, &my, cs[c].s, times, N, ym));
        double scale[3] = {0.0, 0.0, 0.0}, err[3] = {0.0, 0.0, 0.0};
        for (int i = 0; i < N; i += EVERY) {
            const rs_theory_state r = rs_theory_rate_of_change(&p, base[i]);
            double g[3];
            eq7(&p, base[i], g);
            const double rv[3] = {r.dh2, r.dyhat2, r.w};
            const double sc = fabs(g[0]) + fabs(g[1]) + fabs(g[2]);
            for (int k = 0; k < 3; k++)
                worst_eq7 = fmax(worst_eq7, fabs(rv[k] - g[k]) / sc);
            const double dy[3] = {(yp[i].dh2 - ym[i].dh2) / (2 * d),
                                  (yp[i].dyhat2 - ym[i].dyhat2) / (2 * d),
                                  (yp[i].w - ym[i].w) / (2 * d)};
            const double dh[3] = {(hp[i].dh2 - hm[i].dh2) / (2 * d),
                                  (hp[i].dyhat2 - hm[i].dyhat2) / (2 * d),
                                  (hp[i].w - hm[i].w) / (2 * d)};
            for (int k = 0; k < 3; k++) {
                const double want = -dh[k] + times[i] * rv[k];
                scale[k] = fmax(scale[k], fmax(fabs(dy[k]), fabs(times[i] * rv[k])));
                err[k] = fmax(err[k], fabs(dy[k] - want));
            }
        }
        for (int k = 0; k < 3; k++)
            err[k] /= scale[k];
        printf("d/d ln rate_y = -d/d ln rate_h + t d/dt, %-17s max rel err: dh2 %.1e "
               "dyhat2 %.1e w %.1e (limit 1e-4)\n", cs[c].name, err[0], err[1], err[2]);
        CHECK(err[0] < 1e-4 && err[1] < 1e-4 && err[2] < 1e-4, "rate scaling off (%s)",
              cs[c].name);
    }
    const rs_theory_state z = rs_theory_rate_of_change(&cs[0].p, (rs_theory_state){0, 0, 0});
    printf("rate of change vs Eq. 7: worst rel diff %.1e (limit 1e-14); at dh2 = 0: "
           "(%g, %g, %g)\n", worst_eq7, z.dh2, z.dyhat2, z.w);
    CHECK(worst_eq7 < 1e-14, "rs_theory_rate_of_change is not Eq. 7");
    CHECK(z.dh2 == 0.0 && z.dyhat2 == 0.0 && z.w == 0.0, "rate of change at dh2 = 0");
    rs_theory_solver_free(s);
}

/* Reuse: the same solve before and after a different one gives the same numbers. */
static void test_reuse(void)
{
    const rs_theory_params p1 = {3e-3, 5e-3, 1.0, 0.5}, p2 = {1e-1, 1e-4, 2.0, 0.0};
    const rs_theory_state s1 = {0.3, 0.05, -0.1}, s2 = {1e-3, 1e-3, 1e-3};
    double times[50];
    rs_theory_state a[50], b[50], c[50];
    for (int i = 0; i < 50; i++)
        times[i] = 100.0 * i;
    rs_theory_solver *s = rs_theory_solver_alloc(1e-9);
    CHECK_OK(rs_theory_solve(s, &p1, s1, times, 50, a));
    rs_theory_solve(s, &p2, s2, times, 50, b);
    CHECK_OK(rs_theory_solve(s, &p1, s1, times, 50, c));
    int same = 1;
    for (int i = 0; i < 50; i++)
        same &= a[i].dh2 == c[i].dh2 && a[i].dyhat2 == c[i].dyhat2 && a[i].w == c[i].w;
    CHECK(same, "solver reuse changes results");
    rs_theory_solver_free(s);
}

/* (6) bad arguments. */
static void test_invalid(void)
{
    const rs_theory_params p = {1e-2, 1e-2, 1.0, 0.5};
    const rs_theory_state s0 = {0.3, 0.05, -0.1};
    double times[3] = {0.0, 1.0, 2.0}, bad_times[3] = {0.0, 2.0, 1.0};
    rs_theory_state out[3];
    rs_theory_solver *s = rs_theory_solver_alloc(1e-8);
    rs_theory_params q;
    rs_theory_state r;

    CHECK(rs_theory_solver_alloc(0.0) == NULL, "rel_tol 0 accepted");
    CHECK(rs_theory_solver_alloc(NAN) == NULL, "rel_tol NaN accepted");
    CHECK(rs_theory_solve(NULL, &p, s0, times, 3, out) == RS_E_INVALID, "NULL solver");
    CHECK(rs_theory_solve(s, NULL, s0, times, 3, out) == RS_E_INVALID, "NULL params");
    CHECK(rs_theory_solve(s, &p, s0, NULL, 3, out) == RS_E_INVALID, "NULL times");
    CHECK(rs_theory_solve(s, &p, s0, times, 3, NULL) == RS_E_INVALID, "NULL out");
    CHECK(rs_theory_solve(s, &p, s0, times, 0, out) == RS_E_INVALID, "n = 0");
    CHECK(rs_theory_solve(s, &p, s0, bad_times, 3, out) == RS_E_INVALID, "decreasing times");
    q = p, q.rate_h = 0.0;
    CHECK(rs_theory_solve(s, &q, s0, times, 3, out) == RS_E_INVALID, "rate_h = 0");
    q = p, q.rate_y = -1.0;
    CHECK(rs_theory_solve(s, &q, s0, times, 3, out) == RS_E_INVALID, "rate_y < 0");
    q = p, q.target_gap2 = -0.1;
    CHECK(rs_theory_solve(s, &q, s0, times, 3, out) == RS_E_INVALID, "target_gap2 < 0");
    q = p, q.input_gap2 = NAN;
    CHECK(rs_theory_solve(s, &q, s0, times, 3, out) == RS_E_INVALID, "input_gap2 NaN");
    r = s0, r.dh2 = 0.0;
    CHECK(rs_theory_solve(s, &p, r, times, 3, out) == RS_E_INVALID, "dh2 = 0");
    r = s0, r.dh2 = -1.0;
    CHECK(rs_theory_solve(s, &p, r, times, 3, out) == RS_E_INVALID, "dh2 < 0");
    r = s0, r.w = INFINITY;
    CHECK(rs_theory_solve(s, &p, r, times, 3, out) == RS_E_INVALID, "w = Inf");
    CHECK(rs_theory_solve(s, &p, s0, times, 1, out) == RS_OK && out[0].dh2 == s0.dh2, "n = 1");
    /* An integration it cannot finish (steps no longer advance t near 1e300) fails with
     * RS_E_ODE and NaN-free output. */
    double far[3] = {0.0, 1e300, 2e300};
    int st = rs_theory_solve(s, &p, s0, far, 3, out);
    printf("integration to t = 2e300: status %d (%s), out[2] = (%g, %g, %g)\n", st,
           rs_strerror(st), out[2].dh2, out[2].dyhat2, out[2].w);
    CHECK(st == RS_E_ODE || st == RS_OK, "t = 2e300: status %d", st);
    CHECK(all_finite(out, 3), "t = 2e300: non-finite output");
    rs_theory_solver_free(s);
    rs_theory_solver_free(NULL);
}

/* The stepper choice (theory.c, rs_theory_solve_dense): an explicit Runge-Kutta stepper
 * where the estimate says the problem is not stiff, msbdf where it is or where the explicit
 * one runs out of steps. Each solve at rel_tol 1e-8 is compared with msbdf alone at 1e-12
 * (each component relative to its largest magnitude, as in test_dense_output); msbdf alone
 * at 1e-8 is printed beside it. The scan cases are cells of the fit's rate scan (theory
 * time s = rate_y t, rate_y = 1). expect[m]: 1 if msbdf should end up doing the solve, by
 * the estimate (m = 0) and with the explicit stepper tried first (m = 1). */
static void test_stepper_choice(void)
{
    static const struct {
        const char *name;
        rs_theory_params p;
        rs_theory_state s;
        double t_end;
        int expect[2];
    } cs[] = {
        {"paper-like", {1e-3, 3e-2, 1.0, 0.5}, {2.3e-3, 3.5e-8, -1.3e-4}, 6000, {0, 0}},
        {"fast decoder", {5e-3, 5e-1, 1.0, 0.5}, {0.3, 0.05, -0.1}, 3000, {0, 0}},
        {"wrong sign A<0", {2e-3, 2e-3, 1.0, 0.3}, {1e-2, 5e-2, 0.1}, 6000, {0, 0}},
        {"identical targets", {2e-3, 3e-2, 1.0, 0.0}, {0.01, 0.002, 0.002}, 6000, {0, 0}},
        /* the estimate (rates at the start and at Eq. 10's fixed point) is conservative:
         * this one the explicit stepper finishes when made to try */
        {"scan, ratio 1e-8", {1e-8, 1.0, 1.0, 0.5}, {2.3e-3, 3.5e-6, -1.1e-4}, 6e5, {1, 0}},
        {"scan, ratio 1e6", {1e6, 1.0, 1.0, 0.5}, {2.3e-3, 3.5e-6, -1.1e-4}, 0.6, {0, 0}},
        /* stiff: decoder relaxation ~1.5 per unit of s against an encoder rate of 1e-8 over
         * s = 6e5; tried first, the explicit stepper hits its step cap and msbdf takes over */
        {"stiff", {1e-8, 1.0, 1.0, 0.5}, {1.0, 0.4, 0.1}, 6e5, {1, 1}},
    };
    enum { NOUT = 301 };
    double times[NOUT];
    rs_theory_state ref[NOUT], out[NOUT];
    rs_theory_solver *s = rs_theory_solver_alloc(1e-8), *fine = rs_theory_solver_alloc(1e-12);
    rs_theory_set_stepper_(fine, 2);
    for (size_t c = 0; c < sizeof cs / sizeof cs[0]; c++) {
        for (int i = 0; i < NOUT; i++)
            times[i] = cs[c].t_end * i / (NOUT - 1);
        CHECK_OK(rs_theory_solve(fine, &cs[c].p, cs[c].s, times, NOUT, ref));
        double scale[3] = {0.0, 0.0, 0.0}, err[3];
        for (int i = 0; i < NOUT; i++) {
            scale[0] = fmax(scale[0], fabs(ref[i].dh2));
            scale[1] = fmax(scale[1], fabs(ref[i].dyhat2));
            scale[2] = fmax(scale[2], fabs(ref[i].w));
        }
        int used[2];
        for (int mode = 0; mode <= 2; mode++) { /* by the estimate, explicit first, msbdf */
            rs_theory_set_stepper_(s, mode);
            CHECK_OK(rs_theory_solve(s, &cs[c].p, cs[c].s, times, NOUT, out));
            err[mode] = 0.0;
            for (int i = 0; i < NOUT; i++) {
                err[mode] = fmax(err[mode], fabs(out[i].dh2 - ref[i].dh2) / scale[0]);
                err[mode] = fmax(err[mode], fabs(out[i].dyhat2 - ref[i].dyhat2) / scale[1]);
                err[mode] = fmax(err[mode], fabs(out[i].w - ref[i].w) / scale[2]);
            }
            if (mode < 2)
                used[mode] = rs_theory_used_msbdf_(s);
        }
        printf("stepper %-17s by the estimate: %-8s (max rel err %.1e); explicit first: %-8s "
               "(%.1e); msbdf alone %.1e (limit 1e-5)\n",
               cs[c].name, used[0] ? "msbdf" : "explicit", err[0],
               used[1] ? "msbdf" : "explicit", err[1], err[2]);
        CHECK(err[0] < 1e-5 && err[1] < 1e-5, "%s: off the reference", cs[c].name);
        CHECK(used[0] == cs[c].expect[0] && used[1] == cs[c].expect[1],
              "%s: stepper taken (%d, %d), expected (%d, %d)", cs[c].name, used[0], used[1],
              cs[c].expect[0], cs[c].expect[1]);
    }
    rs_theory_solver_free(s);
    rs_theory_solver_free(fine);
}

int main(void)
{
    gsl_set_error_handler_off();
    test_jacobian();
    test_smooth_form_is_eq7();
    test_exact_formula();
    test_exact_identical();
    test_fixed_point();
    test_collapse();
    test_loss();
    test_dense_output();
    test_stepper_choice();
    test_rate_scaling();
    test_reuse();
    test_invalid();
    return CHECK_REPORT("test_theory");
}
