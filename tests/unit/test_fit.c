/* test_fit.c — fitting the theory's rates (fit.h): recovery of known rates from noisy
 * synthetic trajectories (Eq. 49), recovery of the loss rate (Eq. 9), degenerate inputs. */
#include "check.h"
#include "repsweep/fit.h"
#include "repsweep/status.h"
#include "repsweep/theory.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <gsl/gsl_errno.h>
#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>

enum { N = 6000 };

typedef struct {
    double dh2[N], dyhat2[N], w[N], loss[N];
} trajectory;

/* Wall-clock seconds (C11), for the printed timings. */
static double now(void)
{
    struct timespec ts;
    timespec_get(&ts, TIME_UTC);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* CPU seconds of this process, for the timing check (robust to a loaded machine). */
static double cpu(void)
{
    return (double)clock() / CLOCKS_PER_SEC;
}

/* The theory at epochs 0..N-1 into out[N], solved at rel_tol; returns the solve's status. */
static int solve_epochs(const rs_theory_params *p, rs_theory_state init, double rel_tol,
                        rs_theory_state *out)
{
    double *times = malloc(N * sizeof *times);
    rs_theory_solver *s = rs_theory_solver_alloc(rel_tol);
    if (!times || !s)
        abort();
    for (int i = 0; i < N; i++)
        times[i] = i;
    const int st = rs_theory_solve(s, p, init, times, N, out);
    rs_theory_solver_free(s);
    free(times);
    return st;
}

/* The theory's trajectory at epochs 0..N-1, and its loss (Eq. 9) with rate_ybar and
 * offset; 1% multiplicative Gaussian noise on every epoch but 0 if rng != NULL. */
static int synth(const rs_theory_params *p, rs_theory_state init, double rate_ybar,
                 double offset, gsl_rng *rng, trajectory *tr)
{
    rs_theory_state *out = malloc(N * sizeof *out);
    if (!out)
        abort();
    const int st = solve_epochs(p, init, 1e-11, out);
    for (int i = 0; i < N; i++) {
        double e[4] = {0.0, 0.0, 0.0, 0.0};
        for (int k = 0; k < 4 && rng && i > 0; k++)
            e[k] = gsl_ran_gaussian(rng, 0.01);
        tr->dh2[i] = out[i].dh2 * (1.0 + e[0]);
        tr->dyhat2[i] = out[i].dyhat2 * (1.0 + e[1]);
        tr->w[i] = out[i].w * (1.0 + e[2]);
        tr->loss[i] = rs_theory_loss(p, rate_ybar, offset, (double)i, out[i]) * (1.0 + e[3]);
    }
    free(out);
    return st;
}

/* A consistent epoch-0 state for 1-D outputs: |f2 - f1| = sqrt(dyhat2), of the target's
 * sign, so w = dyhat2 - sqrt(dyhat2) sqrt(target_gap2). */
static rs_theory_state start(double dh2, double dyhat2, double target_gap2)
{
    return (rs_theory_state){dh2, dyhat2, dyhat2 - sqrt(dyhat2 * target_gap2)};
}

static double rel(double got, double want)
{
    return fabs(got - want) / fabs(want);
}

/* Three rate pairs with rate_h/rate_y = tau_y/tau_h = 0.1, 1, 10 (100x), T = 0.5, g = 1;
 * the dynamics reach the fixed point within ~3000-5000 epochs. A fourth starts with
 * f2 - f1 of the wrong sign and A_high < 0, so the theory's dh2 passes through 0 (to
 * ~1e-6) before growing to its fixed point. */
static void test_recover_rates(gsl_rng *rng, trajectory *tr, rs_fit_result *keep)
{
    struct { double rh, ry, dh2, dy2, sign; } cs[] = {
        {1e-3, 1e-2, 0.3, 0.05, 1.0}, {3e-3, 3e-3, 0.1, 0.02, 1.0},
        {1e-2, 1e-3, 0.8, 0.08, 1.0}, {5e-3, 2e-3, 0.5, 0.2, -1.0}};
    rs_fit_options opt;
    rs_fit_options_default(&opt);
    for (size_t c = 0; c < sizeof cs / sizeof cs[0]; c++) {
        const rs_theory_params p = {cs[c].rh, cs[c].ry, 1.0, 0.5};
        rs_theory_state s0 = start(cs[c].dh2, cs[c].dy2, 0.5);
        if (cs[c].sign < 0.0) /* w = dyhat2 + sqrt(dyhat2) sqrt(T) */
            s0.w = 2.0 * cs[c].dy2 - s0.w;
        CHECK_OK(synth(&p, s0, 0.0, 0.0, rng, tr));
        rs_fit_result r;
        const double t0 = now(), c0 = cpu();
        int st = rs_fit_rates(tr->dh2, tr->dyhat2, tr->w, N, 1.0, 0.5, &opt, &r);
        const double dt = now() - t0, dc = cpu() - c0;
        const double eh = rel(r.rate_h, cs[c].rh), ey = rel(r.rate_y, cs[c].ry);
        printf("%s fit rates n=%d tau_y/tau_h=%g%s: rate_h true %.6g fitted %.6g (rel err %.2e), "
               "rate_y true %.6g fitted %.6g (rel err %.2e); status %d converged %d, "
               "%d iterations, %d ODE solves, %.3f s (%.3f s CPU), fit_loss %.4g (rel %.2e)\n",
               st == RS_OK && r.status == RS_OK && eh < 0.02 && ey < 0.02 ? "PASS" : "FAIL", N,
               cs[c].rh / cs[c].ry, cs[c].sign < 0.0 ? " (wrong sign)" : "", cs[c].rh,
               r.rate_h, eh, cs[c].ry, r.rate_y, ey, r.status,
               r.converged, r.iterations, r.ode_solves, dt, dc, r.fit_loss, r.fit_loss_rel);
        CHECK_OK(st);
        CHECK(r.status == RS_OK && r.converged, "case %zu: status %d (%s)", c, r.status,
              rs_strerror(r.status));
        CHECK(eh < 0.02, "case %zu: rate_h %g vs %g", c, r.rate_h, cs[c].rh);
        CHECK(ey < 0.02, "case %zu: rate_y %g vs %g", c, r.rate_y, cs[c].ry);
        /* 1% noise on values of order 0.1-2: fit_loss_rel ~ 1e-4 */
        CHECK(r.fit_loss_rel > 0.0 && r.fit_loss_rel < 1e-3, "case %zu: fit_loss_rel %g", c,
              r.fit_loss_rel);
        /* ~0.1-0.2 s CPU in a Release build; the bound only catches gross regressions. */
        CHECK(dc < 2.0, "case %zu: fit took %.3f s of CPU", c, dc);
        if (c == 1)
            *keep = r;
    }
}

/* Fitting every 10th epoch (stride) gives the same rates for much less work. */
static void test_stride(gsl_rng *rng, trajectory *tr)
{
    const rs_theory_params p = {3e-3, 3e-3, 1.0, 0.5};
    CHECK_OK(synth(&p, start(0.1, 0.02, 0.5), 0.0, 0.0, rng, tr));
    rs_fit_options opt;
    rs_fit_options_default(&opt);
    opt.stride = 10;
    rs_fit_result r;
    const double t0 = now();
    CHECK_OK(rs_fit_rates(tr->dh2, tr->dyhat2, tr->w, N, 1.0, 0.5, &opt, &r));
    const double dt = now() - t0;
    const double eh = rel(r.rate_h, p.rate_h), ey = rel(r.rate_y, p.rate_y);
    printf("%s fit rates stride 10: rate_h true %.6g fitted %.6g (rel err %.2e), rate_y true %.6g "
           "fitted %.6g (rel err %.2e); status %d, %d iterations, %d ODE solves, %.3f s\n",
           r.status == RS_OK && eh < 0.02 && ey < 0.02 ? "PASS" : "FAIL", p.rate_h, r.rate_h, eh,
           p.rate_y, r.rate_y, ey, r.status, r.iterations, r.ode_solves, dt);
    CHECK(r.status == RS_OK && eh < 0.02 && ey < 0.02, "stride 10 fit");
}

/* Eq. 9: 1/tau_ybar from a noisy loss curve, the ODE at the rates of a previous fit. */
static void test_loss_rate(gsl_rng *rng, trajectory *tr, const rs_fit_result *fitted)
{
    const rs_theory_params p = {3e-3, 3e-3, 1.0, 0.5};
    const double rybar[] = {4e-3, 5e-4};
    for (int c = 0; c < 2; c++) {
        CHECK_OK(synth(&p, start(0.1, 0.02, 0.5), rybar[c], 0.35, rng, tr));
        rs_fit_loss_result r;
        const double t0 = now();
        int st = rs_fit_loss_rate(tr->loss, tr->dh2, tr->dyhat2, tr->w, N, 1.0, 0.5, 0.35, fitted,
                                  NULL, &r);
        const double dt = now() - t0;
        const double e = rel(r.rate_ybar, rybar[c]);
        printf("%s fit loss rate: rate_ybar true %.6g fitted %.6g (rel err %.2e); status %d, "
               "%.3f s, fit_loss_rel %.2e\n",
               st == RS_OK && r.status == RS_OK && e < 0.02 ? "PASS" : "FAIL", rybar[c],
               r.rate_ybar, e, r.status, dt, r.fit_loss_rel);
        CHECK_OK(st);
        CHECK(r.status == RS_OK, "loss fit status %d", r.status);
        CHECK(e < 0.02, "rate_ybar %g vs %g", r.rate_ybar, rybar[c]);
    }
}

/* Eq. 49's cost (unscaled) of the rates in p against tr, from a fresh solve at 1e-10 into
 * out[N]; INFINITY if the solve fails. */
static double cost_of(const rs_theory_params *p, rs_theory_state init, const trajectory *tr,
                      rs_theory_state *out)
{
    const int st = solve_epochs(p, init, 1e-10, out);
    if (st != RS_OK && st != RS_S_COLLAPSED)
        return INFINITY;
    double c = 0.0;
    for (int i = 0; i < N; i++) {
        const double d[3] = {tr->dh2[i] - out[i].dh2, tr->dyhat2[i] - out[i].dyhat2,
                             tr->w[i] - out[i].w};
        c += d[0] * d[0] + d[1] * d[1] + d[2] * d[2];
    }
    return c;
}

/* Random synthetic fits (T = 0.5, g = 1, 1% noise; rates log-uniform in 3e-4..3e-2,
 * dh2(0) in 0.01..1, dyhat2(0) in 1e-3..0.1; every second one starts with f2 - f1 of the
 * wrong sign). The optimiser's job is the cost's global minimum, so the main check is the
 * cost: a fit that ends more than 0.1% above the cost of the true rates has found a wrong
 * basin. Rates can be off where the data barely constrain one of them (rate_y too slow to
 * move the decoder before the encoder settles) at a cost at or below the true rates':
 * those are counted and printed. Measured on this sample: the fit before dense output and
 * the ratio scan (~0.13 s per fit) ended 1 of 200 fits above the true cost (case 189, a
 * wrong-sign trajectory through dh2 ~ 0, whose cost is rugged: 1.74x) and had 3 with a
 * rate > 2% off; with dense output and the ratio scan (~0.02 s) case 189 was at 1.38x;
 * with the one-solve Jacobian and merged starts (~0.012 s) no fit is above (worst 1.0000)
 * and two rates are off (cases 77 and 107, both at a cost below the true rates'). On three
 * more seeds of a similar sample the older versions had 0-1 fits above the true cost, the
 * current one 0-1 (the one 5e-6 above). Allowed: none above, none failed, 4 off. A coarse
 * stage that makes no progress (measured: a bug that left GSL's residual vector at 0)
 * fails here with one fit 0.2% above. */
static void test_random_fits(trajectory *tr)
{
    enum { CASES = 200 };
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(rng, 7UL);
    rs_theory_state *out = malloc(N * sizeof *out);
    if (!out)
        abort();
    int off = 0, above = 0, failed = 0;
    double worst_ratio = 0.0, seconds = 0.0;
    for (int c = 0; c < CASES; c++) {
        const double rh = 3e-4 * pow(100.0, gsl_rng_uniform(rng));
        const double ry = 3e-4 * pow(100.0, gsl_rng_uniform(rng));
        const double dh2 = 1e-2 * pow(100.0, gsl_rng_uniform(rng));
        const double dy2 = 1e-3 * pow(100.0, gsl_rng_uniform(rng));
        rs_theory_state s0 = start(dh2, dy2, 0.5);
        if (c % 2) /* wrong sign: w = dyhat2 + sqrt(dyhat2) sqrt(T) */
            s0.w = 2.0 * dy2 - s0.w;
        const rs_theory_params p = {rh, ry, 1.0, 0.5};
        CHECK_OK(synth(&p, s0, 0.0, 0.0, rng, tr));
        rs_fit_result r;
        const double t0 = now();
        CHECK_OK(rs_fit_rates(tr->dh2, tr->dyhat2, tr->w, N, 1.0, 0.5, NULL, &r));
        seconds += now() - t0;
        const rs_theory_params q = {r.rate_h, r.rate_y, 1.0, 0.5};
        const double truth = cost_of(&p, s0, tr, out);
        const double got = r.status == RS_OK ? cost_of(&q, s0, tr, out) : INFINITY;
        const double e = fmax(rel(r.rate_h, rh), rel(r.rate_y, ry));
        failed += r.status != RS_OK;
        above += !(got <= 1.001 * truth);
        worst_ratio = fmax(worst_ratio, got / truth);
        if (e > 0.02 || !(got <= 1.001 * truth)) {
            off += e > 0.02;
            printf("  random fit %d%s: rate_h %.4g -> %.4g, rate_y %.4g -> %.4g (off %.2g), "
                   "status %d, cost / true rates' cost %.6f\n",
                   c, c % 2 ? " (wrong sign)" : "", rh, r.rate_h, ry, r.rate_y, e, r.status,
                   got / truth);
        }
    }
    printf("%s random fits: %d cases, %d with a cost > 0.1%% above the true rates', %d not ok, "
           "%d with a rate > 2%% off; worst cost ratio %.4f; mean %.3f s per fit\n",
           above == 0 && failed == 0 && off <= 4 ? "PASS" : "FAIL", CASES, above, failed, off,
           worst_ratio,
           seconds / CASES);
    CHECK(above == 0 && failed == 0, "random fits: %d above the true cost, %d failed", above,
          failed);
    CHECK(off <= 4, "random fits: %d of %d with a rate > 2%% off", off, CASES);
    free(out);
    gsl_rng_free(rng);
}

/* A measured trajectory whose best fit is in a corner of the rate plane: the skip net
 * (seed 1, float64, Table 1 settings; tests/unit/data, every 10th epoch, interpolated
 * linearly to every epoch here). Its dh2 (~480) falls 4 % in the first ~200 epochs while
 * dyhat2 and w settle. The best fit found (rate_h 0.063, rate_y at the floor: the decoder
 * frozen) has a relative loss of 5.0e-4; the best interior start (rate_h at the floor,
 * rate_y 3.8e-5) ends at 2.2e-3, and that is where the fit ended before it had corner starts
 * (the grid's rate ratios reach 1e8 at most). */
static void test_corner_fit(trajectory *tr)
{
    FILE *f = fopen(REPSWEEP_SOURCE_DIR "/tests/unit/data/skip_seed1_trajectory.txt", "r");
    CHECK(f != NULL, "cannot open the skip trajectory");
    if (!f)
        return;
    char line[512];
    double e[N / 10], v[3][N / 10];
    size_t k = 0;
    while (k < N / 10 && fgets(line, sizeof line, f))
        if (line[0] != '#' && sscanf(line, "%lf %lf %lf %lf", &e[k], &v[0][k], &v[1][k],
                                     &v[2][k]) == 4)
            k++;
    fclose(f);
    CHECK(k == N / 10, "skip trajectory: %zu rows", k);
    const size_t n = 10 * (k - 1) + 1;
    for (size_t i = 0; i < n; i++) {
        const size_t a = i / 10, b = a + 1 < k ? a + 1 : a;
        const double u = (double)(i % 10) / 10.0;
        tr->dh2[i] = (1 - u) * v[0][a] + u * v[0][b];
        tr->dyhat2[i] = (1 - u) * v[1][a] + u * v[1][b];
        tr->w[i] = (1 - u) * v[2][a] + u * v[2][b];
    }
    rs_fit_result r;
    CHECK_OK(rs_fit_rates(tr->dh2, tr->dyhat2, tr->w, n, 1.0, 0.5, NULL, &r));
    printf("%s corner fit (skip net): rate_h %.6g, rate_y %.6g, at_floor %d, status %d, "
           "fit_loss_rel %.4g, %d ODE solves\n",
           r.fit_loss_rel < 1e-3 && r.rate_y <= 1e-11 ? "PASS" : "FAIL", r.rate_h, r.rate_y,
           r.at_floor, r.status, r.fit_loss_rel, r.ode_solves);
    CHECK(r.status == RS_OK && r.fit_loss_rel < 1e-3, "skip: status %d, fit_loss_rel %g",
          r.status, r.fit_loss_rel);
    CHECK(r.rate_y <= 1e-11 && r.at_floor && rel(r.rate_h, 0.063) < 0.05,
          "skip: rate_h %g, rate_y %g", r.rate_h, r.rate_y);
}

/* Degenerate inputs give a status, never a crash. */
static void test_degenerate(void)
{
    trajectory *t = malloc(sizeof *t);
    double *a = t->dh2, *b = t->dyhat2, *w = t->w, *l = t->loss;
    rs_fit_options opt;
    rs_fit_options_default(&opt);
    rs_fit_result r;

    /* Constant at a fixed point (w = 0, dyhat2 = T): every rate pair fits exactly. */
    for (int i = 0; i < N; i++)
        a[i] = 0.4, b[i] = 0.5, w[i] = 0.0, l[i] = 0.01;
    CHECK_OK(rs_fit_rates(a, b, w, N, 1.0, 0.5, &opt, &r));
    printf("%s degenerate: constant trajectory at a fixed point -> status %d (%s), %d ODE solves\n",
           r.status == RS_S_FIT_FAILED ? "PASS" : "FAIL", r.status, rs_strerror(r.status),
           r.ode_solves);
    CHECK(r.status == RS_S_FIT_FAILED, "flat cost: status %d", r.status);

    /* Constant but not at a fixed point: whatever comes out is a status with finite rates
     * or a failure, not a crash. */
    for (int i = 0; i < 300; i++)
        a[i] = 0.3, b[i] = 0.05, w[i] = -0.1;
    rs_fit_options quick = opt;
    quick.max_iterations = 30;
    CHECK_OK(rs_fit_rates(a, b, w, 300, 1.0, 0.5, &quick, &r));
    printf("PASS degenerate: constant trajectory off the fixed point -> status %d (%s), rate_h %g "
           "rate_y %g, %d iterations\n",
           r.status, rs_strerror(r.status), r.rate_h, r.rate_y, r.iterations);
    CHECK(r.status == RS_OK || r.status == RS_S_NOT_CONVERGED || r.status == RS_S_FIT_FAILED,
          "status %d", r.status);

    /* Too short, NULLs, non-positive dh2(0), NaN data, bad options. */
    CHECK(rs_fit_rates(a, b, w, 2, 1.0, 0.5, &opt, &r) == RS_E_INVALID, "n = 2");
    CHECK(rs_fit_rates(NULL, b, w, N, 1.0, 0.5, &opt, &r) == RS_E_INVALID, "NULL dh2");
    CHECK(rs_fit_rates(a, b, w, N, 1.0, 0.5, &opt, NULL) == RS_E_INVALID, "NULL result");
    a[0] = 0.0;
    CHECK(rs_fit_rates(a, b, w, N, 1.0, 0.5, &opt, &r) == RS_E_INVALID, "dh2[0] = 0");
    a[0] = 0.3, b[7] = NAN;
    CHECK(rs_fit_rates(a, b, w, 300, 1.0, 0.5, &opt, &r) == RS_E_INVALID, "NaN in data");
    b[7] = 0.05;
    rs_fit_options bad = opt;
    bad.stride = 0;
    CHECK(rs_fit_rates(a, b, w, 300, 1.0, 0.5, &bad, &r) == RS_E_INVALID, "stride 0");
    bad = opt, bad.stride = 200;
    CHECK(rs_fit_rates(a, b, w, 300, 1.0, 0.5, &bad, &r) == RS_E_INVALID, "< 3 fitted epochs");
    bad = opt, bad.rel_tol = 0.0;
    CHECK(rs_fit_rates(a, b, w, 300, 1.0, 0.5, &bad, &r) == RS_E_INVALID, "rel_tol 0");

    /* Loss fit: no mean-output offset means nothing to fit. */
    rs_fit_result f = {.status = RS_OK, .rate_h = 3e-3, .rate_y = 3e-3, .converged = 1,
                       .iterations = 1, .ode_solves = 1};
    rs_fit_loss_result lr;
    CHECK_OK(rs_fit_loss_rate(l, a, b, w, 300, 1.0, 0.5, 0.0, &f, &opt, &lr));
    printf("%s degenerate loss fit (offset 0) -> status %d (%s)\n",
           lr.status == RS_S_FIT_FAILED ? "PASS" : "FAIL", lr.status, rs_strerror(lr.status));
    CHECK(lr.status == RS_S_FIT_FAILED, "loss fit with zero offset: status %d", lr.status);
    CHECK(rs_fit_loss_rate(l, a, b, w, 2, 1.0, 0.5, 0.1, &f, &opt, &lr) == RS_E_INVALID, "n = 2");
    f.rate_h = NAN;
    CHECK(rs_fit_loss_rate(l, a, b, w, 300, 1.0, 0.5, 0.1, &f, &opt, &lr) == RS_E_INVALID,
          "NaN fitted rate");
    free(t);
}

static void test_defaults(void)
{
    rs_fit_options o;
    rs_fit_options_default(&o);
    CHECK(o.log10_rate_min == -6.0 && o.log10_rate_max == 2.0 && o.scan_points == 17 &&
              o.stride == 1 && o.max_iterations == 200 && o.rel_tol == 1e-8,
          "defaults");
}

int main(void)
{
    gsl_set_error_handler_off();
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(rng, 20240611UL);
    trajectory *tr = malloc(sizeof *tr);
    rs_fit_result kept = {0};
    test_defaults();
    test_recover_rates(rng, tr, &kept);
    test_stride(rng, tr);
    test_loss_rate(rng, tr, &kept);
    test_degenerate();
    test_corner_fit(tr);
    test_random_fits(tr);
    free(tr);
    gsl_rng_free(rng);
    return CHECK_REPORT("test_fit");
}
