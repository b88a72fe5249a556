/* fit.c — least-squares fit of the theory's rates to a measured trajectory (see fit.h).
 *
 * Objective (Eq. 49 with dt = 1 epoch): the unweighted sum over the fitted epochs
 * k = 0, stride, 2 stride, ... < n of (dh2 - dh2_ode)^2 + (dyhat2 - dyhat2_ode)^2 +
 * (w - w_ode)^2, the ODE (Eq. 7) started from the measured epoch-0 values, over the
 * parameters x = (ln rate_h, ln rate_y). Steps:
 *  1. a coarse scan of a log-spaced grid of both rates (the authors' starting point), on a
 *     subsample of the epochs (below), one ODE solve per rate ratio (ratio_solve);
 *  2. a short Levenberg-Marquardt (gsl_multifit_nlinear, trust region) on the same
 *     subsample from several starts: the MAX_STARTS = 4 lowest cells of the grid at least
 *     two grid steps apart (scan_starts), and the
 *     best point of a 1-D scan along the rate ratio that Eq. 24 gives directly (see
 *     invariant_log_ratio). The cost of a trajectory still far from its fixed point (e.g.
 *     f2 - f1 starting with the wrong sign) has a narrow valley along rate_h/rate_y ~ const
 *     that can hold several minima, and the lowest grid cell need not lie in the global
 *     one's basin. Measured on random synthetic fits (T = 0.5, 1% noise, rates 3e-4..3e-2,
 *     half of them of the wrong sign): from the best cell alone 2 of 40 ended in a wrong
 *     minimum; with these starts 1 of 200 did (a trajectory passing within 1e-4 of
 *     dh2 = 0, whose cost is rugged at the 2% scale: 7% off, at 3x the noise-level cost);
 *     and the two corners of the rate plane where one rate sits at the floor, each the best
 *     point of a 1-D scan (corner_start), if it beats every grid cell: measured data need
 *     not come from the model, and a skip net's best fit is such a corner;
 *  3. Levenberg-Marquardt on every fitted epoch from the best result of step 2; its
 *     iterations, convergence and status are the ones reported.
 * The residuals handed to GSL are divided by one constant, the RMS of the fitted data,
 * which leaves the minimiser unchanged but puts the cost on a scale of order 1: GSL's
 * gradient test compares against max(cost, 1), which would otherwise misfire for data of
 * small magnitude (the rich regime, dh2 ~ 1e-4).
 * The loss rate 1/tau_ybar is then fitted the same way to the loss curve (Eq. 9), with
 * the ODE held at the fitted rates.
 *
 * Numerical choices, each for a reason:
 *  - Steps 1-2 integrate only every sub-th fitted epoch, sub chosen so that at most
 *    SCAN_MAX_EPOCHS = 300 remain, at the relative tolerance SCAN_REL_TOL = 1e-6 (or
 *    opt->rel_tol if looser): they only have to find the right basin. The scans (step 1
 *    and the ratio line) read their ~350 costs at every SCAN_EVERY = 3rd of those epochs,
 *    from solves at SCAN_RANK_TOL = 1e-4: they rank points half a decade apart (measured:
 *    SCAN_EVERY 5-7% less time per fit; SCAN_RANK_TOL ~20% less; with each, the same
 *    outcomes on the random samples below and the same rates to 9 digits on four networks'
 *    runs). Step 3 then starts next to the optimum and needs few (~5-10) full-resolution
 *    solves. A solve costs its solver steps (tens to a few hundred), whatever the number
 *    of epochs (theory.h: dense output). Measured at n = 6000 (this machine, 2 cores,
 *    shared): 5-7 ms per fit, ~90 ODE solves (33 of them the scan's, most of those stiff,
 *    i.e. msbdf's), against 11-19 ms with msbdf for every solve, and 0.08-0.19 s with ~450
 *    solves when every scan cell was a solve, every output epoch a solver step and every
 *    Jacobian two solves.
 *  - The Jacobian costs one ODE solve. Its ln rate_h column is a forward difference with
 *    step fd_step(rel_tol) ~ 1e-3, not GSL's ~1e-8: an adaptive ODE solution is only
 *    piecewise smooth in its parameters (jumps of the order of its tolerance when the step
 *    sequence changes), so the step must be large compared with rel_tol for the
 *    difference quotient to mean anything. Its ln rate_y column follows from the time
 *    scaling of Eq. 7 without a solve (time_derivative_column). The residual at the base
 *    point is reused from GSL's last evaluation when it matches (GSL evaluates f at a
 *    trial point and then asks for the Jacobian there).
 *  - In step 2, a run that comes within MERGE_DIST = 0.05 (5% in both rates) of where an
 *    earlier start's run ended, at a cost no lower than that end's, is in that run's
 *    basin and stops (measured on a narrow net's fit: all five starts ended within 1e-4
 *    of one point, and the last four spent 55 of the stage's 70 solves getting there).
 *  - GSL solves the Levenberg-Marquardt steps by Cholesky on the normal equations (2 x 2)
 *    rather than QR of the 3n x 2 Jacobian: ~15% less time in the last stage, with the
 *    same outcome on test_fit's random synthetic fits and on three samples of 200 more
 *    (optimiser failures 0, 1 and 0 either way; with Cholesky the one is 5e-6 above the
 *    true rates' cost).
 *  - A failed ODE solve (RS_E_ODE, RS_E_INVALID for overflowing rates) gives every scaled
 *    residual the value FAIL_RESIDUAL = 1e3, i.e. a cost about 1e6 times that of fitting
 *    nothing at all: finite, so GSL stays well defined, and large, so the trust region
 *    rejects the step and shrinks. A collapse (RS_S_COLLAPSED) is a valid solution: its
 *    filled-in zeros are the true limit.
 *  - Rates are held at or above a floor 6 decades below the scan's range (rate_of).
 *  - Levenberg's scaling (the identity) rather than GSL's default, Marquardt's (the
 *    diagonal of J^T J): both parameters are log rates, so steps in them are comparable
 *    as they are, while Marquardt's scaling lets a step run free along a direction the
 *    data barely constrain (measured: a first step of +4000 in ln rate_y, from a rate_y
 *    too slow to matter, into overflowing rates).
 *  - Levenberg-Marquardt stops, converged, when an accepted step lowers the cost by less
 *    than LM_COST_RTOL = 1e-6 of it (besides GSL's step and gradient tests). The solutions
 *    jump by ~rel_tol as the solver's step sequence changes with the rates, so the cost is
 *    rugged at ~1e-8 of itself: below that scale no trial step is reliably downhill, and
 *    GSL's trust region would reject 15 of them in a row before it gives up (GSL_ENOPROG,
 *    which also counts as converged). Measured on a narrow net's fit: the last useful
 *    step lowered the cost by 3e-7 of it, and the 16 rejected ones after it were 60% of
 *    the final stage's solves.
 * Allocation happens once per fit; a residual evaluation allocates nothing. */
#include "repsweep/fit.h"
#include "repsweep/status.h"
#include "repsweep/theory.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>

#include <gsl/gsl_errno.h>
#include <gsl/gsl_math.h>
#include <gsl/gsl_multifit_nlinear.h>
#include <gsl/gsl_vector.h>

#define SCAN_MAX_EPOCHS 300
#define SCAN_REL_TOL 1e-6
#define SCAN_EVERY 3
#define SCAN_RANK_TOL 1e-4
#define MAX_STARTS 4
#define START_SEPARATION 2
#define COARSE_XTOL 1e-4
#define MERGE_DIST 5e-2
#define FAIL_RESIDUAL 1e3
#define LM_XTOL 1e-8
#define LM_COST_RTOL 1e-6
#define LM_GTOL 1e-8
#define LM_FTOL 1e-8 /* GSL 2.7 ignores ftol; passed for completeness */

static double fd_step(double rel_tol)
{
    double h = 10.0 * sqrt(rel_tol);
    return h < 1e-6 ? 1e-6 : (h > 1e-2 ? 1e-2 : h);
}

void rs_fit_options_default(rs_fit_options *opt)
{
    if (!opt)
        return;
    opt->log10_rate_min = -6.0;
    opt->log10_rate_max = 2.0;
    opt->scan_points = 17;
    opt->stride = 1;
    opt->max_iterations = 200;
    opt->rel_tol = 1e-8;
}

static int options_ok(const rs_fit_options *o)
{
    return isfinite(o->log10_rate_min) && isfinite(o->log10_rate_max) &&
           o->log10_rate_min <= o->log10_rate_max && o->scan_points >= 1 && o->stride >= 1 &&
           o->max_iterations >= 1 && o->rel_tol > 0.0 && o->rel_tol < 1.0;
}

static int all_finite(const double *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i]))
            return 0;
    return 1;
}

/* log10 of grid point i of a scan with `points` points over [lo, hi]. */
static double grid(double lo, double hi, int points, int i)
{
    return points > 1 ? lo + (hi - lo) * i / (points - 1) : 0.5 * (lo + hi);
}

static double sum_sq(const double *f, size_t n)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++)
        s += f[i] * f[i];
    return s;
}

/* ---- the rate fit ---- */

/* One resolution of the problem: the epochs it integrates (k of them, epoch j sub stride),
 * the solver it uses, and a least-squares workspace sized for it. */
typedef struct {
    rs_theory_solver *solver;
    double *times;
    size_t k, sub;
    gsl_multifit_nlinear_fdf fdf;
    gsl_multifit_nlinear_workspace *work;
} level;

typedef struct {
    const double *data[3];  /* measured dh2, dyhat2, w */
    size_t stride, m;       /* epoch stride and number of fitted epochs */
    rs_theory_params par;
    rs_theory_state init;   /* measured epoch-0 values */
    double data_norm;       /* sum over the fitted epochs of dh2^2 + dyhat2^2 + w^2 */
    double inv_scale;       /* 1 / RMS of the fitted data */
    level full;             /* every fitted epoch at opt->rel_tol */
    level coarse;           /* the scan's subsample at max(opt->rel_tol, SCAN_REL_TOL) */
    level scan;             /* every SCAN_EVERY-th coarse epoch at max(opt->rel_tol,
                             * SCAN_RANK_TOL), no workspace: where the scans read costs */
    const level *lv;        /* the level the least-squares callbacks work on */
    rs_theory_state *model; /* m */
    double *scan_cost;      /* scan_points^2 */
    double *scaled_times;   /* scan.k: the scan's epochs times a rate (ratio_eval) */
    gsl_vector *x_last;     /* the last point lm_f or lm_df evaluated at ... */
    gsl_vector *f_last;     /* ... and its residuals (3m) */
    gsl_vector *f_work;     /* residuals at a perturbed point (3m) */
    int at_last;            /* f_last and model hold the residuals and states at x_last, on
                             * the level in use (any other solve or a new run clears it) */
    int model_ok;           /* the solve whose states model holds succeeded */
    double h_fd;
    double ln_floor;        /* ln of the smallest rate the model uses (see rate_of) */
    int ode_solves;
} rate_ctx;

/* The rate a parameter x = ln rate stands for. Rates below the floor (6 decades under the
 * scan's range, 1e-12 per epoch by default) are indistinguishable from 0 over any run
 * (under 1e-6 of a change in 1e6 epochs) and are held at the floor: Levenberg-Marquardt
 * otherwise drives a rate the data do not constrain towards 0 without end, into denormal
 * arithmetic (measured: rate_y -> 1e-271 made a solve 15x slower) and absurd reports. */
static double rate_of(const rate_ctx *c, double x)
{
    return exp(fmax(x, c->ln_floor));
}

/* Scaled residuals of level l against the model states in c->model (from a solve that
 * returned st) into f (3k), 3 per epoch; returns their sum of squares, or INFINITY if the
 * solve failed (f is then FAIL_RESIDUAL everywhere, the finite stand-in Levenberg-Marquardt
 * sees). */
static double residuals(rate_ctx *c, const level *l, int st, double *f)
{
    const int ok = st == RS_OK || st == RS_S_COLLAPSED;
    for (size_t j = 0; j < l->k; j++) {
        const size_t e = j * l->sub * c->stride;
        const rs_theory_state s = c->model[j];
        f[3 * j] = ok ? (c->data[0][e] - s.dh2) * c->inv_scale : FAIL_RESIDUAL;
        f[3 * j + 1] = ok ? (c->data[1][e] - s.dyhat2) * c->inv_scale : FAIL_RESIDUAL;
        f[3 * j + 2] = ok ? (c->data[2][e] - s.w) * c->inv_scale : FAIL_RESIDUAL;
    }
    return ok ? sum_sq(f, 3 * l->k) : INFINITY;
}

/* Scaled residuals of level l at x = (ln rate_h, ln rate_y) into f; see residuals(). */
static double eval(rate_ctx *c, const level *l, const double x[2], double *f)
{
    rs_theory_params p = c->par;
    p.rate_h = rate_of(c, x[0]);
    p.rate_y = rate_of(c, x[1]);
    c->ode_solves++;
    const int st = rs_theory_solve(l->solver, &p, c->init, l->times, l->k, c->model);
    c->model_ok = st == RS_OK || st == RS_S_COLLAPSED;
    c->at_last = 0;
    return residuals(c, l, st, f);
}

/* Eq. 7 depends on the rates only through rate_h/rate_y and the time rate_y t: in
 * s = rate_y t it is the system with rates (rate_h/rate_y, 1). So all rate pairs of one
 * ratio are one dense solve in s (to the largest rate_y's last epoch), read at
 * s = rate_y t. This prepares that solve on the scan level; it counts as one ODE solve. */
static int ratio_solve(rate_ctx *c, double ln_ratio, double ln_rate_y_max)
{
    rs_theory_params p = c->par;
    p.rate_h = exp(ln_ratio);
    p.rate_y = 1.0;
    c->ode_solves++;
    const double s_end = exp(ln_rate_y_max) * c->coarse.times[c->coarse.k - 1];
    return rs_theory_solve_dense(c->scan.solver, &p, c->init, 0.0, s_end);
}

/* Scaled residuals of the scan's epochs at rate_y = exp(ln_rate_y) from the last
 * ratio_solve, into f; see residuals(). A failed ratio solve still serves the rates whose
 * epochs end before the failure. */
static double ratio_eval(rate_ctx *c, int solve_status, double ln_rate_y, double *f)
{
    if (solve_status == RS_E_NOMEM || solve_status == RS_E_INVALID)
        return residuals(c, &c->scan, RS_E_ODE, f);
    const double ry = exp(ln_rate_y);
    for (size_t j = 0; j < c->scan.k; j++)
        c->scaled_times[j] = ry * c->scan.times[j];
    const int st = rs_theory_dense_eval(c->scan.solver, c->scaled_times, c->scan.k, c->model);
    return residuals(c, &c->scan, st, f);
}

/* Evaluates level c->lv at x into f_last and remembers x as x_last. */
static void eval_last(rate_ctx *c, const gsl_vector *xv)
{
    const double x[2] = {gsl_vector_get(xv, 0), gsl_vector_get(xv, 1)};
    eval(c, c->lv, x, c->f_last->data);
    gsl_vector_memcpy(c->x_last, xv);
    c->at_last = 1;
}

static int lm_f(const gsl_vector *xv, void *params, gsl_vector *f)
{
    rate_ctx *c = params;
    eval_last(c, xv);
    for (size_t i = 0; i < f->size; i++) /* f_last is sized for the full level */
        f->data[i] = c->f_last->data[i]; /* f: GSL's own gsl_vector_alloc'ed vector, stride 1 */
    return GSL_SUCCESS;
}

/* Column j of the Jacobian at x0 by a forward difference (see the top of the file for the
 * step), against the residuals at x0 in f_last; one ODE solve. */
static void fd_column(rate_ctx *c, const double x0[2], size_t j, gsl_matrix *J)
{
    double x[2] = {x0[0], x0[1]};
    x[j] += c->h_fd;
    eval(c, c->lv, x, c->f_work->data);
    for (size_t i = 0; i < J->size1; i++)
        gsl_matrix_set(J, i, j, (c->f_work->data[i] - c->f_last->data[i]) / c->h_fd);
}

/* Column 1 (d/d ln rate_y) without a solve. A solution depends on the rates only through
 * u = ln(rate_h/rate_y) and rate_y t (see ratio_solve), so with x = (u + v, v):
 * d/dx_h = d/du and d/dx_y = -d/du + t d/dt, where d/dt is Eq. 7's right side
 * (rs_theory_rate_of_change). This sets column 1 to the residuals' t d/dt from the states
 * in c->model, which must be those at x0; lm_df subtracts column 0 once it has it. */
static void time_derivative_column(rate_ctx *c, const double x0[2], gsl_matrix *J)
{
    const level *l = c->lv;
    rs_theory_params p = c->par;
    p.rate_h = rate_of(c, x0[0]);
    p.rate_y = rate_of(c, x0[1]);
    for (size_t j = 0; j < l->k; j++) {
        const rs_theory_state d = c->model_ok ? rs_theory_rate_of_change(&p, c->model[j])
                                              : (rs_theory_state){0.0, 0.0, 0.0};
        const double tk = -l->times[j] * c->inv_scale; /* residual = (data - model) scale */
        gsl_matrix_set(J, 3 * j, 1, tk * d.dh2);
        gsl_matrix_set(J, 3 * j + 1, 1, tk * d.dyhat2);
        gsl_matrix_set(J, 3 * j + 2, 1, tk * d.w);
    }
}

/* The Jacobian in x = (ln rate_h, ln rate_y): one ODE solve (column 0 by a forward
 * difference, column 1 from the time scaling above), two when a rate sits below its floor
 * (rate_of holds it there, so the scaling does not apply: both columns by differences).
 * The residual at x is reused from GSL's last evaluation when it is at x (GSL evaluates f
 * at a trial point and then asks for the Jacobian there). */
static int lm_df(const gsl_vector *xv, void *params, gsl_matrix *J)
{
    rate_ctx *c = params;
    const double x0[2] = {gsl_vector_get(xv, 0), gsl_vector_get(xv, 1)};
    if (!c->at_last || gsl_vector_get(c->x_last, 0) != x0[0] ||
        gsl_vector_get(c->x_last, 1) != x0[1])
        eval_last(c, xv);
    if (x0[0] < c->ln_floor || x0[1] < c->ln_floor) {
        fd_column(c, x0, 0, J);
        fd_column(c, x0, 1, J);
        return GSL_SUCCESS;
    }
    time_derivative_column(c, x0, J); /* first: the solve for column 0 replaces c->model */
    fd_column(c, x0, 0, J);
    for (size_t i = 0; i < J->size1; i++)
        gsl_matrix_set(J, i, 1, gsl_matrix_get(J, i, 1) - gsl_matrix_get(J, i, 0));
    return GSL_SUCCESS;
}

/* Grid point (i, j) of the scan as x = (ln rate_h, ln rate_y). */
static void grid_x(const rs_fit_options *o, int i, int j, double x[2])
{
    x[0] = M_LN10 * grid(o->log10_rate_min, o->log10_rate_max, o->scan_points, i);
    x[1] = M_LN10 * grid(o->log10_rate_min, o->log10_rate_max, o->scan_points, j);
}

/* Coarse scan (step 1) into c->scan_cost, one ratio solve per diagonal of the grid (the
 * cells of one rate ratio; see ratio_solve). Returns 1 if some cell has a finite cost and
 * the costs are not all equal: a flat cost (a trajectory sitting at a fixed point from
 * epoch 0) means the rates are not identifiable. Costs are in units of the data's mean
 * square, so 3k is the cost of a model that is identically 0; "flat" is a spread below
 * 1e-12 of that, i.e. RMS differences below 1e-6 of the data. */
static int scan_rates(rate_ctx *c, const rs_fit_options *o)
{
    const int P = o->scan_points;
    double lo = INFINITY, hi = -INFINITY;
    for (int d = -(P - 1); d <= P - 1; d++) {
        const int j0 = d < 0 ? -d : 0, j1 = d > 0 ? P - 1 - d : P - 1; /* i = j + d */
        double first[2], top[2];
        grid_x(o, j0 + d, j0, first);
        grid_x(o, j1 + d, j1, top);
        const int st = ratio_solve(c, first[0] - first[1], top[1]);
        for (int j = j0; j <= j1; j++) {
            double x[2];
            grid_x(o, j + d, j, x);
            const double cost = ratio_eval(c, st, x[1], c->f_work->data);
            c->scan_cost[(j + d) * P + j] = cost;
            if (isfinite(cost)) {
                lo = fmin(lo, cost);
                hi = fmax(hi, cost);
            }
        }
    }
    return isfinite(lo) && hi - lo > 1e-12 * 3.0 * (double)c->scan.k;
}

/* The starting cells: the MAX_STARTS lowest finite cells of the scan, lowest first, each at
 * least START_SEPARATION grid steps (in rate_h or rate_y) from the ones before it. Not
 * just the lowest one, nor only local minima of the grid: the cost of a trajectory still
 * far from its fixed point (e.g. f2 - f1 starting with the wrong sign) has a narrow valley
 * along rate_h/rate_y ~ const holding several minima less than a grid step apart, and the
 * global one's basin may contain no grid minimum at all. Not adjacent cells: when one rate
 * barely matters (rate_y too slow to move the decoder), the lowest cells line up along it
 * as one flat valley, and four neighbours there are one start, not four (measured on
 * random synthetic fits: with the four lowest cells, one fit in 200 ran along such a valley
 * into overflowing rates, and test_fit's sample has one that ends 0.2% above the true
 * rates' cost; with separated cells neither did). */
static int scan_starts(const rate_ctx *c, const rs_fit_options *o, int start[MAX_STARTS])
{
    const int P = o->scan_points, cells = P * P;
    int n = 0;
    while (n < MAX_STARTS) {
        int best = -1;
        for (int i = 0; i < cells; i++) {
            if (!isfinite(c->scan_cost[i]) ||
                (best >= 0 && !(c->scan_cost[i] < c->scan_cost[best])))
                continue;
            int apart = 1;
            for (int k = 0; k < n && apart; k++) {
                const int di = abs(i / P - start[k] / P), dj = abs(i % P - start[k] % P);
                apart = (di > dj ? di : dj) >= START_SEPARATION;
            }
            if (apart)
                best = i;
        }
        if (best < 0)
            break;
        start[n++] = best;
    }
    return n;
}

typedef struct {
    double x[2];
    double cost;  /* sum of squared scaled residuals at x */
    int gsl;      /* the driver's status, GSL_ENOPROG folded into GSL_SUCCESS */
    int iterations;
} lm_out;

/* 1 if x is within MERGE_DIST of where one of the runs ends[0..n) ended, at a cost no
 * lower than that run's end. */
static int near_an_end(const double x[2], double cost, const lm_out *ends, int n)
{
    for (int i = 0; i < n; i++)
        if (fabs(x[0] - ends[i].x[0]) < MERGE_DIST && fabs(x[1] - ends[i].x[1]) < MERGE_DIST &&
            cost >= ends[i].cost)
            return 1;
    return 0;
}

/* Levenberg-Marquardt on level l from x0: GSL's iteration, with GSL's tests (xtol on the
 * step, gtol on the gradient) and one more, LM_COST_RTOL on the cost (see the top of the
 * file), which is the loop gsl_multifit_nlinear_driver runs plus that test. A run that
 * comes within MERGE_DIST of where an earlier one (ends[0..nends)) ended stops there:
 * it is in that run's basin (see fit_from_starts). */
static void run_lm(rate_ctx *c, level *l, const double x0[2], int max_iter, double xtol,
                   const lm_out *ends, int nends, lm_out *out)
{
    c->lv = l;
    c->at_last = 0;
    gsl_vector_const_view xv = gsl_vector_const_view_array(x0, 2);
    const gsl_vector *f = gsl_multifit_nlinear_residual(l->work);
    const gsl_vector *xpos = gsl_multifit_nlinear_position(l->work);
    int st = gsl_multifit_nlinear_init(&xv.vector, &l->fdf, l->work);
    double cost = st == GSL_SUCCESS ? sum_sq(f->data, f->size) : INFINITY;
    for (int it = 0; st == GSL_SUCCESS; it++) {
        if (it == max_iter) {
            st = GSL_EMAXITER;
            break;
        }
        st = gsl_multifit_nlinear_iterate(l->work);
        if (st == GSL_ENOPROG) {
            st = GSL_SUCCESS; /* no step lowers the cost: a minimum to within ODE noise */
            break;
        }
        if (st != GSL_SUCCESS)
            break;
        int info = 0;
        const double prev = cost;
        cost = sum_sq(f->data, f->size);
        if (gsl_multifit_nlinear_test(xtol, LM_GTOL, 0.0, &info, l->work) == GSL_SUCCESS &&
            info != 0)
            break;
        if (prev - cost <= LM_COST_RTOL * prev)
            break; /* converged to within the ODE's noise */
        const double x[2] = {gsl_vector_get(xpos, 0), gsl_vector_get(xpos, 1)};
        if (near_an_end(x, cost, ends, nends))
            break;
    }
    out->x[0] = gsl_vector_get(xpos, 0);
    out->x[1] = gsl_vector_get(xpos, 1);
    out->cost = sum_sq(f->data, f->size);
    out->gsl = st;
    out->iterations = (int)gsl_multifit_nlinear_niter(l->work);
}

/* R^2 of each curve at the states in c->model (the full level's, from a successful solve):
 * 1 - residual sum of squares / the curve's sum of squares about its mean, over the
 * fitted epochs; NaN for a constant curve. */
static void curve_r2(const rate_ctx *c, rs_fit_result *res)
{
    double *r2[3] = {&res->r2_dh2, &res->r2_dyhat2, &res->r2_w};
    for (int q = 0; q < 3; q++) {
        double mean = 0.0, ss = 0.0, rss = 0.0;
        for (size_t j = 0; j < c->m; j++)
            mean += c->data[q][j * c->stride];
        mean /= (double)c->m;
        for (size_t j = 0; j < c->m; j++) {
            const double d = c->data[q][j * c->stride];
            const rs_theory_state s = c->model[j];
            const double model = q == 0 ? s.dh2 : q == 1 ? s.dyhat2 : s.w;
            ss += (d - mean) * (d - mean);
            rss += (d - model) * (d - model);
        }
        *r2[q] = ss > 0.0 ? 1.0 - rss / ss : NAN;
    }
}

/* Eq. 49 at the final rates, unscaled, and relative to the data's sum of squares, and the
 * per-curve R^2. Returns the scaled cost (INFINITY when the fit failed). */
static double final_loss(rate_ctx *c, const double x[2], rs_fit_result *res)
{
    const double cost = eval(c, &c->full, x, c->f_work->data);
    if (!isfinite(cost) || !(res->rate_h > 0.0) || !(res->rate_y > 0.0) ||
        !isfinite(res->rate_h) || !isfinite(res->rate_y)) {
        res->status = RS_S_FIT_FAILED;
        res->converged = 0;
        res->fit_loss = res->fit_loss_rel = INFINITY;
        return INFINITY;
    }
    res->fit_loss = cost / (c->inv_scale * c->inv_scale);
    res->fit_loss_rel = res->fit_loss / c->data_norm;
    curve_r2(c, res);
    return cost;
}

/* Standard errors of x = (ln rate_h, ln rate_y) from the Jacobian J of the scaled residuals
 * at the optimum (the final stage's, which GSL keeps at its position): the linearised
 * covariance s^2 (J^T J)^-1 with s^2 = cost / (3m - 2) the residual variance (the scale
 * cancels). Chosen over a profile likelihood because it costs no solve and needs no
 * second optimisation; its limits: the residuals are a smooth model misfit, correlated
 * from epoch to epoch, not independent noise, so s^2 / (3m) understates the variance of a
 * mean -- read these as a lower bound on the uncertainty, and the determination below
 * does not rest on them alone. A direction J does not see (a rate at the floor, a rate so
 * fast that the curves it drives settle within an epoch) has an infinite error. */
static void rate_errors(const rate_ctx *c, const gsl_matrix *J, double cost, rs_fit_result *res)
{
    double a = 0.0, b = 0.0, d = 0.0;
    for (size_t i = 0; i < J->size1; i++) {
        const double j0 = gsl_matrix_get(J, i, 0), j1 = gsl_matrix_get(J, i, 1);
        a += j0 * j0, b += j0 * j1, d += j1 * j1;
    }
    const double s2 = cost / (double)(3 * c->m - 2), det = a * d - b * b;
    res->se_ln_rate_h = res->se_ln_rate_y = INFINITY;
    res->corr_ln_rates = NAN;
    if (a > 0.0 && d > 0.0 && det > 1e-12 * a * d) {
        res->se_ln_rate_h = sqrt(s2 * d / det);
        res->se_ln_rate_y = sqrt(s2 * a / det);
        res->corr_ln_rates = -b / sqrt(a * d);
    } else if (a > 0.0 && !(d > 0.0)) {
        res->se_ln_rate_h = sqrt(s2 / a); /* rate_y does not act: rate_h alone */
    } else if (d > 0.0 && !(a > 0.0)) {
        res->se_ln_rate_y = sqrt(s2 / d);
    }
}

/* 1 if moving x[q] by `step` (the other rate held) raises the scaled cost by less than
 * RS_RATE_PROBE_MIN_RISE of cost (and less than the residual variance s^2): the data do
 * not tell the two rates apart. One ODE solve; a failed solve is not flat. */
static int flat_towards(rate_ctx *c, const double x[2], int q, double step, double cost)
{
    double xp[2] = {x[0], x[1]};
    xp[q] += step;
    const double rise = eval(c, &c->full, xp, c->f_work->data) - cost;
    const double s2 = cost / (double)(3 * c->m - 2);
    return rise < fmax(RS_RATE_PROBE_MIN_RISE * cost, s2);
}

/* determined_h, determined_y (see rs_rate_determination in fit.h), checks in its order. */
static void determine_rates(rate_ctx *c, const rs_fit_options *o, const double x[2],
                            double cost, rs_fit_result *res)
{
    int *det[2] = {&res->determined_h, &res->determined_y};
    const double se[2] = {res->se_ln_rate_h, res->se_ln_rate_y};
    const double ln_top = M_LN10 * o->log10_rate_max;
    for (int q = 0; q < 2; q++) {
        if (x[q] <= c->ln_floor)
            *det[q] = RS_RATE_AT_FLOOR;
        else if (x[q] > ln_top || flat_towards(c, x, q, M_LN10, cost))
            *det[q] = RS_RATE_UNBOUNDED_ABOVE;
        else if (flat_towards(c, x, q, -M_LN10, cost))
            *det[q] = RS_RATE_UNBOUNDED_BELOW;
        else if (!(se[q] <= RS_RATE_SE_MAX))
            *det[q] = RS_RATE_UNCERTAIN;
        else
            *det[q] = RS_RATE_DETERMINED;
    }
}

const char *rs_rate_determination_name(int determination)
{
    switch (determination) {
    case RS_RATE_NO_FIT: return "no_fit";
    case RS_RATE_DETERMINED: return "determined";
    case RS_RATE_AT_FLOOR: return "at_floor";
    case RS_RATE_UNBOUNDED_ABOVE: return "unbounded_above";
    case RS_RATE_UNBOUNDED_BELOW: return "unbounded_below";
    case RS_RATE_UNCERTAIN: return "uncertain";
    default: return "unknown";
    }
}

int rs_fit_rates_determined(const rs_fit_result *res)
{
    return (res->status == RS_OK || res->status == RS_S_NOT_CONVERGED) &&
           res->determined_h == RS_RATE_DETERMINED && res->determined_y == RS_RATE_DETERMINED;
}

/* Eq. 24: dyhat2/dh2 - (rate_y/rate_h)/input_gap2 * dh2 is constant along any solution,
 * so the slope of a least-squares line through the measured (dh2, dyhat2/dh2) estimates
 * rate_y/rate_h: the direction of the cost valley, which the grid resolves only to half a
 * decade. Returns ln(rate_y/rate_h), or NAN when dh2 barely moves (lazy trajectories), the
 * slope is not positive or input_gap2 == 0. */
static double invariant_log_ratio(const rate_ctx *c)
{
    double sx = 0.0, sy = 0.0, sxx = 0.0, sxy = 0.0, k = 0.0;
    for (size_t j = 0; j < c->m; j++) {
        const double d = c->data[0][j * c->stride];
        if (!(d > 0.0))
            continue;
        const double q = c->data[1][j * c->stride] / d;
        sx += d, sy += q, sxx += d * d, sxy += d * q, k += 1.0;
    }
    if (k < 3.0 || !(c->par.input_gap2 > 0.0))
        return NAN;
    const double vx = sxx / k - (sx / k) * (sx / k), cxy = sxy / k - (sx / k) * (sy / k);
    if (!(vx > 1e-6 * (sx / k) * (sx / k)) || !(cxy > 0.0))
        return NAN;
    return log(cxy / vx * c->par.input_gap2);
}

/* The best point of a 1-D scan along rate_y = rate_h * exp(log_ratio), at the scan's epochs:
 * one ratio solve, read at four points per grid step (eight per decade by default) of the
 * scan's range of rate_h, or of rate_y if along_y. The point goes into x; returns its cost
 * on the scan level (INFINITY if none is finite). */
static double ratio_line_best(rate_ctx *c, const rs_fit_options *o, double log_ratio,
                              int along_y, double x[2])
{
    const int points = 4 * (o->scan_points - 1) + 1;
    const double top = M_LN10 * o->log10_rate_max + (along_y ? 0.0 : log_ratio); /* rate_y */
    const int st = ratio_solve(c, -log_ratio, top);
    double best = INFINITY;
    for (int i = 0; i < points; i++) {
        const double r = M_LN10 * grid(o->log10_rate_min, o->log10_rate_max, points, i);
        const double xt[2] = {along_y ? r - log_ratio : r, along_y ? r : r + log_ratio};
        const double cost = ratio_eval(c, st, xt[1], c->f_work->data);
        if (cost < best)
            best = cost, x[0] = xt[0], x[1] = xt[1];
    }
    return best;
}

/* The corners of the rate plane that the grid cannot reach: one rate at the floor. There the
 * other rate alone sets the time scale (Eq. 7 keeps only its terms), so the model is a
 * one-parameter family: the line at rate_y/rate_h = exp(-+CORNER_LN_RATIO), 14 decades,
 * which puts the slow rate at or under the floor for every fast rate in the scan's range,
 * read along the fast rate (ratio_line_best). Returns the best point's cost.
 * Measured: a skip net's dh2 (~460, falling 4 % early) is fitted to 0.050 % with rate_y at
 * the floor and rate_h 0.063, against 0.22 % at the best interior start (rate_h at the floor);
 * the grid's ratios (at most 1e8) never come close. */
#define CORNER_LN_RATIO (14.0 * M_LN10)

static double corner_start(rate_ctx *c, const rs_fit_options *o, int slow_y, double x[2])
{
    return slow_y ? ratio_line_best(c, o, -CORNER_LN_RATIO, 0, x)
                  : ratio_line_best(c, o, CORNER_LN_RATIO, 1, x);
}

/* Steps 2-3: a short Levenberg-Marquardt on the coarse level from each start (stopping
 * where an earlier start's run ended, see run_lm), then the full-resolution one from the
 * best of them. */
static void fit_from_starts(rate_ctx *c, const rs_fit_options *o, double (*x0)[2],
                            int nstart, rs_fit_result *res)
{
    lm_out best = {{0.0, 0.0}, INFINITY, GSL_FAILURE, 0}, out, ends[MAX_STARTS + 3];
    for (int s = 0; s < nstart; s++) {
        run_lm(c, &c->coarse, x0[s], o->max_iterations, COARSE_XTOL, ends, s, &out);
        ends[s] = out;
        if (out.cost < best.cost)
            best = out;
    }
    if (!isfinite(best.cost))
        return; /* res->status stays RS_S_FIT_FAILED */
    run_lm(c, &c->full, best.x, o->max_iterations, LM_XTOL, NULL, 0, &out);
    res->rate_h = rate_of(c, out.x[0]);
    res->rate_y = rate_of(c, out.x[1]);
    res->at_floor = out.x[0] <= c->ln_floor || out.x[1] <= c->ln_floor;
    res->iterations = out.iterations;
    res->converged = out.gsl == GSL_SUCCESS;
    res->status = res->converged ? RS_OK
                  : out.gsl == GSL_EMAXITER ? RS_S_NOT_CONVERGED
                                            : RS_S_FIT_FAILED;
    const double cost = final_loss(c, out.x, res);
    if (res->status == RS_S_FIT_FAILED)
        return;
    rate_errors(c, gsl_multifit_nlinear_jac(c->full.work), cost, res);
    determine_rates(c, o, out.x, cost, res);
}

/* Steps 1-3. */
static void fit(rate_ctx *c, const rs_fit_options *o, rs_fit_result *res)
{
    int cell[MAX_STARTS];
    double x0[MAX_STARTS + 3][2];
    if (!scan_rates(c, o))
        return;
    int n = 0;
    const double lr = invariant_log_ratio(c);
    if (isfinite(lr) && isfinite(ratio_line_best(c, o, lr, 0, x0[0])))
        n++;
    const int ncell = scan_starts(c, o, cell);
    for (int s = 0; s < ncell; s++, n++)
        grid_x(o, cell[s] / o->scan_points, cell[s] % o->scan_points, x0[n]);
    /* a corner is a start only where it beats the whole grid: elsewhere nothing changes */
    const double grid_best = ncell > 0 ? c->scan_cost[cell[0]] : INFINITY;
    for (int slow_y = 0; slow_y < 2; slow_y++)
        if (corner_start(c, o, slow_y, x0[n]) < grid_best)
            n++;
    fit_from_starts(c, o, x0, n, res);
}

static void level_free(level *l)
{
    rs_theory_solver_free(l->solver);
    free(l->times);
    if (l->work)
        gsl_multifit_nlinear_free(l->work);
}

static void rate_ctx_free(rate_ctx *c)
{
    level_free(&c->full);
    level_free(&c->coarse);
    level_free(&c->scan);
    free(c->model);
    free(c->scan_cost);
    free(c->scaled_times);
    gsl_vector_free(c->x_last);
    gsl_vector_free(c->f_last);
    gsl_vector_free(c->f_work);
}

/* k epochs j * sub * stride and a solver at rel_tol (the scans' level: no workspace). */
static int level_epochs_init(level *l, rate_ctx *c, size_t sub, double rel_tol)
{
    *l = (level){.solver = rs_theory_solver_alloc(rel_tol), .sub = sub,
                 .k = (c->m - 1) / sub + 1};
    l->times = malloc(l->k * sizeof *l->times);
    if (!l->solver || !l->times)
        return RS_E_NOMEM;
    for (size_t j = 0; j < l->k; j++)
        l->times[j] = (double)(j * sub * c->stride);
    return RS_OK;
}

/* k epochs j * sub * stride, a solver at rel_tol and a trust-region LM workspace. */
static int level_init(level *l, rate_ctx *c, size_t sub, double rel_tol)
{
    const int st = level_epochs_init(l, c, sub, rel_tol);
    if (st != RS_OK)
        return st;
    l->fdf = (gsl_multifit_nlinear_fdf){.f = &lm_f, .df = &lm_df, .fvv = NULL,
                                        .n = 3 * l->k, .p = 2, .params = c};
    gsl_multifit_nlinear_parameters fp = gsl_multifit_nlinear_default_parameters();
    fp.trs = gsl_multifit_nlinear_trs_lm;
    fp.scale = gsl_multifit_nlinear_scale_levenberg; /* see the top of the file */
    fp.solver = gsl_multifit_nlinear_solver_cholesky; /* p = 2: see the top of the file */
    l->work = gsl_multifit_nlinear_alloc(gsl_multifit_nlinear_trust, &fp, 3 * l->k, 2);
    return l->work ? RS_OK : RS_E_NOMEM;
}

static int rate_ctx_init(rate_ctx *c, const double *dh2, const double *dyhat2, const double *w,
                         size_t n, double input_gap2, double target_gap2,
                         const rs_fit_options *o)
{
    *c = (rate_ctx){0};
    c->data[0] = dh2, c->data[1] = dyhat2, c->data[2] = w;
    c->stride = o->stride;
    c->m = (n - 1) / o->stride + 1;
    c->par = (rs_theory_params){1.0, 1.0, input_gap2, target_gap2};
    c->init = (rs_theory_state){dh2[0], dyhat2[0], w[0]};
    c->h_fd = fd_step(o->rel_tol);
    c->ln_floor = M_LN10 * fmax(o->log10_rate_min - 6.0, -100.0);
    for (size_t j = 0; j < c->m; j++)
        for (int q = 0; q < 3; q++)
            c->data_norm += c->data[q][j * c->stride] * c->data[q][j * c->stride];
    c->inv_scale = 1.0 / sqrt(c->data_norm / (3.0 * c->m));
    c->model = malloc(c->m * sizeof *c->model);
    c->scan_cost = malloc((size_t)o->scan_points * (size_t)o->scan_points * sizeof(double));
    c->scaled_times = malloc(c->m * sizeof *c->scaled_times);
    c->x_last = gsl_vector_alloc(2);
    c->f_last = gsl_vector_alloc(3 * c->m);
    c->f_work = gsl_vector_alloc(3 * c->m);
    const size_t sub = (c->m + SCAN_MAX_EPOCHS - 1) / SCAN_MAX_EPOCHS;
    int st = level_init(&c->full, c, 1, o->rel_tol);
    if (st == RS_OK)
        st = level_init(&c->coarse, c, sub, fmax(o->rel_tol, SCAN_REL_TOL));
    if (st == RS_OK)
        st = level_epochs_init(&c->scan, c, sub * SCAN_EVERY, fmax(o->rel_tol, SCAN_RANK_TOL));
    if (st != RS_OK || !c->model || !c->scan_cost || !c->scaled_times || !c->x_last ||
        !c->f_last || !c->f_work) {
        rate_ctx_free(c);
        return RS_E_NOMEM;
    }
    return RS_OK;
}

int rs_fit_rates(const double *dh2, const double *dyhat2, const double *w, size_t n,
                 double input_gap2, double target_gap2, const rs_fit_options *opt,
                 rs_fit_result *res)
{
    rs_fit_options defaults;
    rs_fit_options_default(&defaults);
    const rs_fit_options *o = opt ? opt : &defaults;
    if (!dh2 || !dyhat2 || !w || !res || n < 3 || !options_ok(o) || !(dh2[0] >= DBL_MIN) ||
        !all_finite(dh2, n) || !all_finite(dyhat2, n) || !all_finite(w, n) ||
        !(input_gap2 >= 0.0 && isfinite(input_gap2)) ||
        !(target_gap2 >= 0.0 && isfinite(target_gap2)) || (n - 1) / o->stride + 1 < 3)
        return RS_E_INVALID;

    *res = (rs_fit_result){.status = RS_S_FIT_FAILED, .rate_h = NAN, .rate_y = NAN,
                           .fit_loss = INFINITY, .fit_loss_rel = INFINITY,
                           .se_ln_rate_h = NAN, .se_ln_rate_y = NAN, .corr_ln_rates = NAN,
                           .determined_h = RS_RATE_NO_FIT, .determined_y = RS_RATE_NO_FIT,
                           .r2_dh2 = NAN, .r2_dyhat2 = NAN, .r2_w = NAN};
    rate_ctx c;
    int st = rate_ctx_init(&c, dh2, dyhat2, w, n, input_gap2, target_gap2, o);
    if (st != RS_OK)
        return st;
    fit(&c, o, res);
    res->ode_solves = c.ode_solves;
    rate_ctx_free(&c);
    return RS_OK;
}

/* ---- the loss rate (Eq. 9) ---- */

typedef struct {
    const double *loss;
    size_t stride, m;    /* epoch stride of the fitted epochs, their number */
    size_t sub, k;       /* the epochs in use: every sub-th fitted one, k of them */
    double *base;        /* m: 1/4 (w + 1/2 (T - dyhat2)) from the ODE at the fitted rates */
    double half_off2;    /* 1/2 ybar0_offset^2 */
    double inv_scale;    /* 1 / RMS of the fitted loss */
} loss_ctx;

/* Uses every sub-th fitted epoch from now on. */
static void loss_use(loss_ctx *c, size_t sub)
{
    c->sub = sub;
    c->k = (c->m - 1) / sub + 1;
}

/* residual_j = (L_j - 1/2 off^2 e^{-2 t r} - base_j) / scale at the j-th epoch in use,
 * x = ln r; and, if J is not NULL, its derivative in x. The epochs in use are equally
 * spaced, so e^{-2 t r} is a geometric sequence: one exp per call, not one per epoch (its
 * rounding grows like j * DBL_EPSILON, ~1e-12 relative at j = 6000). */
static void loss_residuals(const loss_ctx *c, double x, double *f, double *J)
{
    const double r = exp(x), dt = (double)(c->sub * c->stride), q = exp(-2.0 * dt * r);
    double decay = 1.0; /* e^{-2 t r} */
    for (size_t j = 0; j < c->k; j++, decay *= q) {
        const size_t i = j * c->sub; /* fitted epoch i, at t = i stride */
        const double t = (double)(i * c->stride), e = c->half_off2 * decay;
        if (f)
            f[j] = (c->loss[i * c->stride] - e - c->base[i]) * c->inv_scale;
        if (J)
            J[j] = 2.0 * t * r * e * c->inv_scale;
    }
}

static int loss_f(const gsl_vector *xv, void *params, gsl_vector *f)
{
    loss_residuals(params, gsl_vector_get(xv, 0), f->data, NULL); /* GSL's own: stride 1 */
    return GSL_SUCCESS;
}

static int loss_df(const gsl_vector *xv, void *params, gsl_matrix *J)
{
    loss_residuals(params, gsl_vector_get(xv, 0), NULL, J->data); /* k x 1, contiguous */
    return GSL_SUCCESS;
}

/* The scaled cost at x over the epochs in use; f holds c->k values. */
static double loss_cost(const loss_ctx *c, double x, double *f)
{
    loss_residuals(c, x, f, NULL);
    return sum_sq(f, c->k);
}

/* Levenberg-Marquardt (p = 1, analytic Jacobian) on the epochs in use from x0 into x_out.
 * Returns RS_OK if it ended at x0 or an improvement on it (converged, no further progress
 * or the iteration limit), RS_S_FIT_FAILED otherwise, RS_E_NOMEM. */
static int loss_lm(loss_ctx *c, const rs_fit_options *o, double x0, double *x_out)
{
    gsl_multifit_nlinear_fdf fdf = {0};
    fdf.f = &loss_f;
    fdf.df = &loss_df;
    fdf.n = c->k;
    fdf.p = 1;
    fdf.params = c;
    gsl_multifit_nlinear_parameters fp = gsl_multifit_nlinear_default_parameters();
    fp.trs = gsl_multifit_nlinear_trs_lm;
    /* p = 1: Cholesky, as for the rates (measured: 0.86-0.92 ms -> 0.63 ms per loss fit on
     * a narrow net, the same rate_ybar to 6 digits) */
    fp.solver = gsl_multifit_nlinear_solver_cholesky;
    gsl_multifit_nlinear_workspace *w =
        gsl_multifit_nlinear_alloc(gsl_multifit_nlinear_trust, &fp, fdf.n, fdf.p);
    if (!w)
        return RS_E_NOMEM;
    gsl_vector_const_view xv = gsl_vector_const_view_array(&x0, 1);
    int info = 0;
    int st = gsl_multifit_nlinear_init(&xv.vector, &fdf, w);
    if (st == GSL_SUCCESS)
        st = gsl_multifit_nlinear_driver((size_t)o->max_iterations, LM_XTOL, LM_GTOL, LM_FTOL,
                                         NULL, NULL, &info, w);
    *x_out = gsl_vector_get(gsl_multifit_nlinear_position(w), 0);
    gsl_multifit_nlinear_free(w);
    return st == GSL_SUCCESS || st == GSL_ENOPROG || st == GSL_EMAXITER ? RS_OK : RS_S_FIT_FAILED;
}

/* A 1-D scan of ln rate_ybar (four points per step of the rate scan, i.e. eight per decade
 * by default, over the same range) and a first Levenberg-Marquardt on the scan's subsample
 * of epochs (as for the rates: at most SCAN_MAX_EPOCHS of them), then Levenberg-Marquardt
 * on every fitted epoch, which starts next to its optimum (measured on a narrow net: 7
 * iterations on 6000 epochs from the scan's best point, 5 from the subsample's optimum). A flat scan
 * (spread below 1e-12 of the number of epochs scanned, the scaled cost of a zero model:
 * the mean-output term is too small to matter, e.g. ybar0_offset = 0) means there is
 * nothing to fit. f holds m values. */
static int fit_loss_lm(loss_ctx *c, const rs_fit_options *o, double *f, double *x_out)
{
    const int points = 4 * (o->scan_points - 1) + 1;
    loss_use(c, (c->m + SCAN_MAX_EPOCHS - 1) / SCAN_MAX_EPOCHS);
    double best = INFINITY, worst = -INFINITY, x0 = 0.0, x1 = 0.0;
    for (int i = 0; i < points; i++) {
        const double x = M_LN10 * grid(o->log10_rate_min, o->log10_rate_max, points, i);
        const double cost = loss_cost(c, x, f);
        if (cost < best)
            best = cost, x0 = x;
        worst = fmax(worst, cost);
    }
    if (!isfinite(best) || !(worst - best > 1e-12 * (double)c->k))
        return RS_S_FIT_FAILED;
    int st = loss_lm(c, o, x0, &x1);
    loss_use(c, 1);
    return st == RS_OK ? loss_lm(c, o, x1, x_out) : st;
}

static int loss_rate_from_ode(const double *loss, size_t m, size_t stride, const double *times,
                              const rs_theory_state *ode, const rs_theory_params *p,
                              double ybar0_offset, const rs_fit_options *o, double *base,
                              rs_fit_loss_result *res)
{
    double norm = 0.0;
    for (size_t k = 0; k < m; k++) {
        base[k] = rs_theory_loss(p, 0.0, 0.0, times[k], ode[k]);
        norm += loss[k * stride] * loss[k * stride];
    }
    loss_ctx c = {loss, stride, m, 1, m, base, 0.5 * ybar0_offset * ybar0_offset,
                  norm > 0.0 ? 1.0 / sqrt(norm / m) : 1.0};
    double x = 0.0, *f = malloc(m * sizeof *f);
    if (!f)
        return RS_E_NOMEM;
    int st = fit_loss_lm(&c, o, f, &x);
    if (st == RS_OK) {
        res->rate_ybar = exp(x);
        res->fit_loss = loss_cost(&c, x, f) / (c.inv_scale * c.inv_scale);
        res->fit_loss_rel = norm > 0.0 ? res->fit_loss / norm : INFINITY;
        res->status = isfinite(res->rate_ybar) && res->rate_ybar > 0.0 ? RS_OK : RS_S_FIT_FAILED;
    }
    free(f);
    return st == RS_S_FIT_FAILED ? RS_OK : st; /* a failed fit: res->status says so */
}

int rs_fit_loss_rate(const double *loss, const double *dh2, const double *dyhat2,
                     const double *w, size_t n, double input_gap2, double target_gap2,
                     double ybar0_offset, const rs_fit_result *fit, const rs_fit_options *opt,
                     rs_fit_loss_result *res)
{
    rs_fit_options defaults;
    rs_fit_options_default(&defaults);
    const rs_fit_options *o = opt ? opt : &defaults;
    if (!loss || !dh2 || !dyhat2 || !w || !fit || !res || n < 3 || !options_ok(o) ||
        !all_finite(loss, n) || !isfinite(ybar0_offset) || !(fit->rate_h > 0.0) ||
        !(fit->rate_y > 0.0) || !isfinite(fit->rate_h) || !isfinite(fit->rate_y) ||
        (n - 1) / o->stride + 1 < 3)
        return RS_E_INVALID;
    *res = (rs_fit_loss_result){RS_S_FIT_FAILED, NAN, INFINITY, INFINITY};

    const size_t m = (n - 1) / o->stride + 1;
    const rs_theory_params p = {fit->rate_h, fit->rate_y, input_gap2, target_gap2};
    double *times = malloc(m * sizeof *times), *base = malloc(m * sizeof *base);
    rs_theory_state *ode = malloc(m * sizeof *ode);
    rs_theory_solver *s = rs_theory_solver_alloc(o->rel_tol);
    int st = RS_E_NOMEM;
    if (times && base && ode && s) {
        for (size_t k = 0; k < m; k++)
            times[k] = (double)(k * o->stride);
        st = rs_theory_solve(s, &p, (rs_theory_state){dh2[0], dyhat2[0], w[0]}, times, m, ode);
        if (st == RS_OK || st == RS_S_COLLAPSED)
            st = loss_rate_from_ode(loss, m, o->stride, times, ode, &p, ybar0_offset, o, base,
                                    res);
        else if (st == RS_E_ODE)
            st = RS_OK; /* the ODE failed at the fitted rates: res->status says so */
    }
    rs_theory_solver_free(s);
    free(times);
    free(base);
    free(ode);
    return st;
}
