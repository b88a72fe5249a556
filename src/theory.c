/* theory.c — the effective theory of the two-point interaction (see theory.h).
 *
 * Eq. 7 in (dh2, dyhat2, w), with g = input_gap2, T = target_gap2, rh = rate_h, ry = rate_y:
 *   dh2'    = -rh g w
 *   dyhat2' = -w (ry dh2 + rh g dyhat2/dh2)
 *   w'      = -ry/2 (3w - dyhat2 + T) dh2 - rh/2 g (dyhat2 + w) w/dh2
 *
 * What is integrated. Eq. 7 rests on Eq. 19 (dh moves along itself): dh = a u with a fixed
 * unit vector u and a signed scalar a. Writing v = D_y u (so dyhat = a v), Eq. 17 gives
 * v' = -ry/2 (a v - dy) a and a' = u.(d dh/dt) = -rh/2 g (a |v|^2 - v.dy), where
 * dy = y2 - y1. The scalars
 *   a,   p = |v|^2 = dyhat2/dh2,   q = v.dy = (dyhat2 - w)/a
 * then obey a closed *polynomial* system, equivalent to Eq. 7 wherever dh2 > 0:
 *   a' = -rh g/2 (a p - q)
 *   p' = -ry a (a p - q)
 *   q' = -ry/2 a (a q - T)
 * and dh2 = a^2, dyhat2 = a^2 p, w = a (a p - q). This is what is integrated (an explicit
 * Runge-Kutta stepper, or msbdf with the analytic Jacobian where that is stiff; see
 * rs_theory_solve_dense). Why not Eq. 7 itself: Eq. 7 is singular at dh2 = 0 (its 1/dh2 terms),
 * and trajectories of the theory reach dh2 = 0 in finite time: when A_high < 0 the decoder
 * factor cannot change sign (Eq. 24: p = (ry/rh)/g (dh2 - A_high) > 0), so an initial
 * output difference of the wrong sign (f2 - f1 opposite to y2 - y1; with small initial
 * weights A_high < 0 is the rule and either sign is equally likely) can only flip through
 * a = 0: dh2 touches 0 and grows again to Eq. 10's fixed point. In (dh2, dyhat2, w) the
 * state at that instant is (0, 0, 0) and the continuation is lost; in (a, p, q) it is an
 * ordinary point (a' = rh g q/2 != 0 there). The collapse of identical targets (T = 0,
 * A_high < 0) is regular here too (a -> 0 exponentially, p -> const, q = 0); it is stopped
 * at a floor (below) where the error control stops being relative, and reported.
 *
 * Error control: relative (rel_tol) on all three, down to an absolute floor of
 * rel_tol * ABS_FRAC times each variable's initial scale. For T > 0 none of a, p, q tends to
 * 0 (the fixed point has a^2 = dh2(inf) > 0, p = T/dh2(inf), q = a p), so the floor only
 * matters where a or q cross zero; w = a (a p - q) -> 0 comes out to an absolute accuracy
 * ~ rel_tol * T, its natural scale. For T = 0 the shrinking quantities (a in a collapse, p
 * when A_high > 0) keep their relative accuracy until they are ABS_FRAC = 1e-12 of their
 * start (dh2 or dyhat2 at 1e-24 of theirs), and cost nothing to follow below that. GSL's
 * stock controllers take one absolute tolerance (or a per-component scale fixed when they
 * are allocated), so this file supplies a small control type whose per-component absolute
 * tolerances are set for every solve. */
#include "repsweep/theory.h"
#include "repsweep/status.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_errno.h>
#include <gsl/gsl_odeiv2.h>

#define DIM 3

/* Collapse floor (documented in theory.h): dh2 <= max(FLOOR_ABS, FLOOR_REL * dh2(t0)), i.e.
 * |a| <= 1e-12 |a(t0)|, where the error control below stops being relative. */
#define FLOOR_ABS 1e-300
#define FLOOR_REL 1e-24

/* Absolute tolerances: rel_tol * ABS_FRAC * (initial scale) + TINY_ABS. TINY_ABS keeps every
 * error level positive (msbdf divides by it) when a scale is 0. */
#define ABS_FRAC 1e-12
#define TINY_ABS 1e-300

/* Step cap per solve (our loop counts): a pathological rate pair fails with RS_E_ODE
 * instead of hanging. A regular solve takes tens (explicit) to a few thousand (msbdf) steps,
 * however many output times it has (dense output, below). */
#define MAX_STEPS 100000UL

/* The explicit stepper tried before msbdf, and its step cap (see rs_theory_solve_dense). */
#define EXPLICIT_STEPPER gsl_odeiv2_step_rkck
#define EXPLICIT_MAX_STEPS 600UL

/* Dense output: a step longer than HERMITE_MAX_H_RATE times the fastest relaxation time
 * (1 / trace_rate) is interpolated linearly (see rs_theory_solve_dense). */
#define HERMITE_MAX_H_RATE 20.0

/* One end of a step for the dense output: the smooth state y, y' = f(y), y'' = J(y) f(y). */
typedef struct {
    double t;
    double y[DIM], d1[DIM], d2[DIM];
} knot;

/* How a solve picks its stepper: by the estimate (the default), or, for the unit test,
 * always trying the explicit one first, or msbdf alone. */
enum { STEPPER_AUTO, STEPPER_EXPLICIT_FIRST, STEPPER_MSBDF };

/* How the last dense solve ended. */
enum { END_NONE, END_REACHED, END_COLLAPSED, END_FAILED };

struct rs_theory_solver {
    gsl_odeiv2_system sys;
    gsl_odeiv2_driver *drv; /* owns the msbdf step, our control and the evolve object */
    gsl_odeiv2_step *rk;    /* the explicit stepper tried first (rs_theory_solve_dense) */
    gsl_odeiv2_evolve *rk_evolve;
    int mode;               /* STEPPER_*: how the next solve picks its stepper */
    int used_msbdf;         /* the last dense solve ended up with msbdf */
    rs_theory_params par;   /* parameters of the current solve; sys.params points here */
    double rel_tol;
    knot *knots;            /* the last dense solve: its step ends, in time order */
    size_t nknots, cap;
    int end;                /* END_*: after the last knot, the limit (0,0,0) or a failure */
};

/* ---- the smooth form of Eq. 7 and its Jacobian ---- */

/* y = (a, p, q). Refuses non-finite states (GSL_EBADFUNC stops GSL at once). */
static int rhs(double t, const double y[], double f[], void *params)
{
    const rs_theory_params *par = params;
    const double a = y[0], p = y[1], q = y[2];
    const double b = par->rate_h * par->input_gap2, r = par->rate_y;
    (void)t;
    if (!isfinite(a) || !isfinite(p) || !isfinite(q))
        return GSL_EBADFUNC;
    const double e = a * p - q; /* w = a e */
    f[0] = -0.5 * b * e;
    f[1] = -r * a * e;
    f[2] = -0.5 * r * a * (a * q - par->target_gap2);
    return GSL_SUCCESS;
}

/* dfdy[i*3 + j] = d f_i / d y_j; autonomous, so dfdt = 0. */
static int jacobian(double t, const double y[], double *dfdy, double dfdt[], void *params)
{
    const rs_theory_params *par = params;
    const double a = y[0], p = y[1], q = y[2];
    const double b = par->rate_h * par->input_gap2, r = par->rate_y;
    (void)t;
    if (!isfinite(a) || !isfinite(p) || !isfinite(q))
        return GSL_EBADFUNC;
    dfdy[0] = -0.5 * b * p;
    dfdy[1] = -0.5 * b * a;
    dfdy[2] = 0.5 * b;
    dfdy[3] = -r * (2.0 * a * p - q);
    dfdy[4] = -r * a * a;
    dfdy[5] = r * a;
    dfdy[6] = -0.5 * r * (2.0 * a * q - par->target_gap2);
    dfdy[7] = 0.0;
    dfdy[8] = -0.5 * r * a * a;
    dfdt[0] = dfdt[1] = dfdt[2] = 0.0;
    return GSL_SUCCESS;
}

/* Internal entry points for the unit test (not part of the public header). */
int rs_theory_rhs_(const rs_theory_params *p, const double y[3], double f[3]);
int rs_theory_jacobian_(const rs_theory_params *p, const double y[3], double dfdy[9]);
void rs_theory_set_stepper_(rs_theory_solver *s, int mode);
int rs_theory_used_msbdf_(const rs_theory_solver *s);

int rs_theory_rhs_(const rs_theory_params *p, const double y[3], double f[3])
{
    return rhs(0.0, y, f, (void *)p);
}

int rs_theory_jacobian_(const rs_theory_params *p, const double y[3], double dfdy[9])
{
    double dfdt[DIM];
    return jacobian(0.0, y, dfdy, dfdt, (void *)p);
}

/* mode: 0 by the estimate, 1 the explicit stepper first whatever the estimate, 2 msbdf */
void rs_theory_set_stepper_(rs_theory_solver *s, int mode)
{
    s->mode = mode;
}

int rs_theory_used_msbdf_(const rs_theory_solver *s)
{
    return s->used_msbdf;
}

/* ---- a step-size controller with per-component absolute tolerances ---- */

typedef struct {
    double eps_rel;
    double eps_abs[DIM];
} tol_state;

static void *tol_alloc(void)
{
    tol_state *s = malloc(sizeof *s);
    if (s)
        *s = (tol_state){1e-10, {TINY_ABS, TINY_ABS, TINY_ABS}};
    return s;
}

/* gsl_odeiv2_control_init: one absolute tolerance for all; a_y = 1, a_dydt = 0 always. */
static int tol_init(void *vs, double eps_abs, double eps_rel, double a_y, double a_dydt)
{
    tol_state *s = vs;
    (void)a_y;
    (void)a_dydt;
    if (!(eps_rel > 0.0) || !(eps_abs > 0.0))
        return GSL_EINVAL;
    *s = (tol_state){eps_rel, {eps_abs, eps_abs, eps_abs}};
    return GSL_SUCCESS;
}

static double tol_level(const tol_state *s, double y, size_t i)
{
    return s->eps_rel * fabs(y) + s->eps_abs[i < DIM ? i : DIM - 1];
}

/* The usual rule: shrink when the worst error ratio exceeds 1.1 (to 0.9 of the estimate
 * for order `ord`, at least to 0.2), grow when it is below 0.5 (at most 5x). */
static int tol_hadjust(void *vs, size_t dim, unsigned int ord, const double y[],
                       const double yerr[], const double yp[], double *h)
{
    const tol_state *s = vs;
    double rmax = DBL_MIN;
    (void)yp;
    for (size_t i = 0; i < dim; i++) {
        const double r = fabs(yerr[i]) / tol_level(s, y[i], i);
        if (!(r <= rmax))
            rmax = r; /* a NaN ratio also lands here and forces a decrease */
    }
    if (!(rmax <= 1.1)) {
        const double r = isfinite(rmax) ? 0.9 / pow(rmax, 1.0 / ord) : 0.2;
        *h *= r < 0.2 ? 0.2 : r;
        return GSL_ODEIV_HADJ_DEC;
    }
    if (rmax < 0.5) {
        const double r = 0.9 / pow(rmax, 1.0 / (ord + 1.0));
        *h *= r > 5.0 ? 5.0 : (r < 1.0 ? 1.0 : r);
        return GSL_ODEIV_HADJ_INC;
    }
    return GSL_ODEIV_HADJ_NIL;
}

/* The error level msbdf weighs each component's error with. */
static int tol_errlevel(void *vs, const double y, const double dydt, const double h,
                        const size_t ind, double *errlev)
{
    (void)dydt;
    (void)h;
    *errlev = tol_level(vs, y, ind);
    return GSL_SUCCESS;
}

static int tol_set_driver(void *vs, const gsl_odeiv2_driver *d)
{
    (void)vs;
    (void)d;
    return GSL_SUCCESS;
}

static void tol_free(void *vs)
{
    free(vs);
}

static const gsl_odeiv2_control_type tol_type = {"repsweep per-component",
                                                 &tol_alloc,
                                                 &tol_init,
                                                 &tol_hadjust,
                                                 &tol_errlevel,
                                                 &tol_set_driver,
                                                 &tol_free};

/* (dh2, dyhat2, w) <-> (a, p, q), taking a > 0 at the start (the sign of u is free). */
static void to_smooth(rs_theory_state s, double y[DIM])
{
    const double a = sqrt(s.dh2);
    y[0] = a;
    y[1] = s.dyhat2 / s.dh2;
    y[2] = (s.dyhat2 - s.w) / a;
}

static rs_theory_state from_smooth(const double y[DIM])
{
    const double a = y[0];
    return (rs_theory_state){a * a, a * a * y[1], a * (a * y[1] - y[2])};
}

/* ---- solver ---- */

rs_theory_solver *rs_theory_solver_alloc(double rel_tol)
{
    if (!(rel_tol > 0.0 && rel_tol < 1.0))
        return NULL;
    rs_theory_solver *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->rel_tol = rel_tol;
    s->par = (rs_theory_params){1.0, 1.0, 1.0, 0.0};
    s->sys = (gsl_odeiv2_system){&rhs, &jacobian, DIM, &s->par};
    s->drv = gsl_odeiv2_driver_alloc_y_new(&s->sys, gsl_odeiv2_step_msbdf, 1e-6, TINY_ABS,
                                          rel_tol);
    gsl_odeiv2_control *c = gsl_odeiv2_control_alloc(&tol_type);
    s->rk = gsl_odeiv2_step_alloc(EXPLICIT_STEPPER, DIM);
    s->rk_evolve = gsl_odeiv2_evolve_alloc(DIM);
    if (!s->drv || !c || !c->state || !s->rk || !s->rk_evolve) {
        if (c)
            gsl_odeiv2_control_free(c);
        rs_theory_solver_free(s);
        return NULL;
    }
    /* Swap the driver's stock controller for ours: msbdf reads its error levels from the
     * driver's controller, and gsl_odeiv2_driver_free frees it with the rest. */
    gsl_odeiv2_control_free(s->drv->c);
    s->drv->c = c;
    gsl_odeiv2_control_set_driver(c, s->drv);
    return s;
}

void rs_theory_solver_free(rs_theory_solver *s)
{
    if (!s)
        return;
    if (s->drv)
        gsl_odeiv2_driver_free(s->drv);
    if (s->rk)
        gsl_odeiv2_step_free(s->rk);
    if (s->rk_evolve)
        gsl_odeiv2_evolve_free(s->rk_evolve);
    free(s->knots);
    free(s);
}

static int params_ok(const rs_theory_params *p)
{
    return isfinite(p->rate_h) && p->rate_h > 0.0 && isfinite(p->rate_y) && p->rate_y > 0.0 &&
           isfinite(p->input_gap2) && p->input_gap2 >= 0.0 && isfinite(p->target_gap2) &&
           p->target_gap2 >= 0.0;
}

static int state_ok(rs_theory_state s)
{
    return isfinite(s.dh2) && s.dh2 >= DBL_MIN && isfinite(s.dyhat2) && isfinite(s.w);
}

static int times_ok(const double *times, size_t n)
{
    if (!isfinite(times[0]))
        return 0;
    for (size_t i = 1; i < n; i++)
        if (!isfinite(times[i]) || !(times[i] > times[i - 1]))
            return 0;
    return 1;
}

/* Per-solve tolerances (see the top of the file). Scales: a(t0); p(t0), or T/dh2(t0) if
 * p(t0) = 0; for q, the size of the terms of a p - q and of |v||dy| = sqrt(p T). */
static void set_tolerances(rs_theory_solver *s, const double y0[DIM])
{
    tol_state *ts = s->drv->c->state;
    const double T = s->par.target_gap2;
    const double sa = fabs(y0[0]);
    const double sp = y0[1] != 0.0 ? fabs(y0[1]) : T / (y0[0] * y0[0]);
    const double sq = fabs(y0[2]) + sa * sp + sqrt(sp * T);
    const double k = s->rel_tol * ABS_FRAC;
    *ts = (tol_state){s->rel_tol, {k * sa + TINY_ABS, k * sp + TINY_ABS, k * sq + TINY_ABS}};
}

/* A first step well inside the fastest relative rate of change at the start (msbdf starts
 * at order 1); the controller adapts from there. q's scale is |v||dy| = sqrt(p T). */
static double first_step(const rs_theory_solver *s, const double y[DIM], double span)
{
    double f[DIM], rate = 0.0;
    const double scale[DIM] = {fabs(y[0]), fabs(y[1]),
                               fabs(y[2]) + sqrt(fabs(y[1]) * s->par.target_gap2)};
    if (rhs(0.0, y, f, (void *)&s->par) != GSL_SUCCESS)
        return 1e-6 * span;
    for (int i = 0; i < DIM; i++)
        if (scale[i] > 0.0)
            rate = fmax(rate, fabs(f[i]) / scale[i]);
    return rate > 0.0 ? fmin(1e-4 / rate, span) : span;
}

static int state_finite(rs_theory_state x)
{
    return isfinite(x.dh2) && isfinite(x.dyhat2) && isfinite(x.w);
}

static int knot_set(rs_theory_solver *s, double t, const double y[DIM], knot *k)
{
    double J[DIM * DIM], dfdt[DIM];
    k->t = t;
    for (int i = 0; i < DIM; i++)
        k->y[i] = y[i];
    if (rhs(t, y, k->d1, &s->par) != GSL_SUCCESS ||
        jacobian(t, y, J, dfdt, &s->par) != GSL_SUCCESS)
        return GSL_EBADFUNC;
    for (int i = 0; i < DIM; i++) {
        k->d2[i] = J[i * DIM] * k->d1[0] + J[i * DIM + 1] * k->d1[1] + J[i * DIM + 2] * k->d1[2];
        if (!isfinite(k->d1[i]) || !isfinite(k->d2[i]))
            return GSL_EBADFUNC; /* overflowing rates: a failure, never a NaN output */
    }
    return GSL_SUCCESS;
}

/* Appends a knot (the array grows geometrically and is kept across solves). */
static int knot_push(rs_theory_solver *s, double t, const double y[DIM])
{
    if (s->nknots == s->cap) {
        const size_t cap = s->cap ? 2 * s->cap : 256;
        knot *k = realloc(s->knots, cap * sizeof *k);
        if (!k)
            return GSL_ENOMEM;
        s->knots = k, s->cap = cap;
    }
    const int st = knot_set(s, t, y, &s->knots[s->nknots]);
    if (st == GSL_SUCCESS)
        s->nknots++;
    return st;
}

/* -trace of the Jacobian at y: 1/2 rh g p + 3/2 ry a^2 (p = |v|^2 >= 0), the sum of its
 * eigenvalues' magnitudes where they are real and negative, as near a fixed point. */
static double trace_rate(const rs_theory_params *p, const double y[DIM])
{
    return 0.5 * p->rate_h * p->input_gap2 * fabs(y[1]) + 1.5 * p->rate_y * y[0] * y[0];
}

/* The quintic Hermite interpolant between knots k0 and k1 (matching y, y', y'' at both), as
 * a polynomial in x = (t - t0)/h per component: y0 + h y0' x + h^2 y0''/2 x^2 + c3 x^3 +
 * c4 x^4 + c5 x^5, where c3..c5 solve the three conditions at x = 1. Its coefficients are
 * computed once per step and shared by the output times inside it (a fit reads ~20 epochs
 * per step). */
typedef struct {
    double t0, inv_h;
    double c[DIM][6]; /* c[i][m]: coefficient of x^m for component i */
} hermite_poly;

static void hermite_fit(const rs_theory_params *p, const knot *k0, const knot *k1,
                        hermite_poly *hp)
{
    const double h = k1->t - k0->t;
    hp->t0 = k0->t;
    hp->inv_h = 1.0 / h;
    if (h * fmax(trace_rate(p, k0->y), trace_rate(p, k1->y)) > HERMITE_MAX_H_RATE) {
        for (int i = 0; i < DIM; i++) { /* a stiff step: the straight line between its ends */
            double *c = hp->c[i];
            c[0] = k0->y[i], c[1] = k1->y[i] - k0->y[i];
            c[2] = c[3] = c[4] = c[5] = 0.0;
        }
        return;
    }
    for (int i = 0; i < DIM; i++) {
        const double a0 = k0->y[i], a1 = h * k0->d1[i], a2 = 0.5 * h * h * k0->d2[i];
        const double r0 = k1->y[i] - a0 - a1 - a2;       /* left over in y(1) */
        const double r1 = h * k1->d1[i] - a1 - 2.0 * a2; /* in y'(1) */
        const double r2 = h * h * k1->d2[i] - 2.0 * a2;  /* in y''(1) */
        double *c = hp->c[i];
        c[0] = a0, c[1] = a1, c[2] = a2;
        c[3] = 10.0 * r0 - 4.0 * r1 + 0.5 * r2;
        c[4] = -15.0 * r0 + 7.0 * r1 - r2;
        c[5] = 6.0 * r0 - 3.0 * r1 + 0.5 * r2;
    }
}

static rs_theory_state hermite_eval(const hermite_poly *hp, double t)
{
    const double x = (t - hp->t0) * hp->inv_h;
    double y[DIM];
    for (int i = 0; i < DIM; i++) {
        const double *c = hp->c[i];
        y[i] = c[0] + x * (c[1] + x * (c[2] + x * (c[3] + x * (c[4] + x * c[5]))));
    }
    return from_smooth(y);
}

/* Steps from (t0, y) towards t_end with `step` and `e` (the control is the driver's),
 * pushing every step's end as a knot after the first (already pushed). Returns RS_OK,
 * RS_S_COLLAPSED (dh2 reached floor_dh2), RS_E_ODE, RS_E_NOMEM, or RS_S_NOT_CONVERGED
 * when max_steps were not enough. */
static int integrate(rs_theory_solver *s, gsl_odeiv2_step *step, gsl_odeiv2_evolve *e,
                     unsigned long max_steps, double t0, double t_end, double y[DIM],
                     double floor_dh2)
{
    double t = t0, h = first_step(s, y, t_end - t0);
    for (unsigned long steps = 0; t < t_end; steps++) {
        if (steps == max_steps)
            return RS_S_NOT_CONVERGED;
        int st = gsl_odeiv2_evolve_apply(e, s->drv->c, step, &s->sys, &t, t_end, &h, y);
        const rs_theory_state cur = from_smooth(y);
        if (st == GSL_SUCCESS && !state_finite(cur))
            st = GSL_EBADFUNC;
        if (st == GSL_SUCCESS)
            st = knot_push(s, t, y);
        if (st != GSL_SUCCESS)
            return st == GSL_ENOMEM ? RS_E_NOMEM : RS_E_ODE;
        if (cur.dh2 <= floor_dh2)
            return RS_S_COLLAPSED;
    }
    return RS_OK;
}

/* An estimate of the steps an explicit method needs from y0 to t_end when stability, not
 * accuracy, limits them (|h lambda| <~ 3): the larger of the trace rates at the start and at
 * Eq. 10's fixed point (w = 0: a^2 = dh2, p = T/dh2), times the span, over 3. */
static double explicit_steps(const rs_theory_params *p, rs_theory_state init,
                             const double y0[DIM], double span)
{
    double rate = trace_rate(p, y0), A_high, A_low, dh2_end;
    rs_theory_fixed_point(p, init, &A_high, &A_low, &dh2_end);
    if (p->target_gap2 > 0.0 && dh2_end > 0.0 && isfinite(dh2_end)) {
        const double y_end[DIM] = {sqrt(dh2_end), p->target_gap2 / dh2_end, 0.0};
        rate = fmax(rate, trace_rate(p, y_end));
    }
    return rate * span / 3.0;
}

/* Dense output. GSL's odeiv2 steppers have no interpolation, and making every step land on
 * an output time (a fit asks for all 6000 epochs of a run, where the solver needs tens to a
 * few hundred steps) cost ~20x. So the stepper takes its own steps towards t_end, every
 * step's end is kept as a knot, and a state inside a step comes from the quintic Hermite
 * interpolant of the smooth state (a, p, q) between the step's ends, whose y' and y'' are
 * analytic (rhs, jacobian). Its error, about h^6 |y^(6)| / 46080, is below the local error
 * the stepper already accepted for the step (order <= 5; measured in test_theory against
 * solves ending at each output) -- except on a stiff step, h many times the fastest
 * relaxation time 1/trace_rate: msbdf takes such steps near a fixed point (h up to 1e5
 * times it), where h^2 y'' = h^2 J f amplifies the O(tol) leftover of a fast mode by
 * (h lambda)^2 (measured: an excursion of 5e-4 in dyhat2 between two knots both within
 * 1e-9 of the fixed point). A step longer than HERMITE_MAX_H_RATE relaxation times is
 * interpolated by the straight line between its ends instead, which stays between them.
 *
 * Stepper. The system is stiff only for some rate pairs (the fit's scan covers rate ratios
 * 1e-8..1e8), and GSL's msbdf costs ~0.4-0.8 us a step (Newton iterations on a 3 x 3 system
 * through BLAS calls), where an explicit Runge-Kutta step costs ~0.1 us. Measured on a
 * fitted narrow-net run (6000 epochs, rel_tol 1e-8): msbdf 113 us and 268 steps, rkck
 * (Cash-Karp 4(5)) 9 us and 72 steps; and rkck's results are the more accurate ones
 * (test_theory's stepper cases against msbdf at 1e-12: e.g. 1.5e-8 against msbdf's 3.4e-7
 * on the paper-like case at 1e-8). So a solve tries EXPLICIT_STEPPER first, unless
 * explicit_steps estimates that stability alone would need more than half of
 * EXPLICIT_MAX_STEPS, and starts again with msbdf if the explicit stepper runs out of steps
 * or fails. rkck rather than rk8pd: its steps (order 5) suit the quintic interpolant;
 * rk8pd's are ~2.5x longer and would need a step limit for it. */
int rs_theory_solve_dense(rs_theory_solver *s, const rs_theory_params *p, rs_theory_state init,
                          double t0, double t_end)
{
    if (!s || !p || !params_ok(p) || !state_ok(init) || !isfinite(t0) || !isfinite(t_end) ||
        !(t_end >= t0))
        return RS_E_INVALID;
    s->par = *p;
    s->nknots = 0;
    s->end = END_FAILED;
    double y0[DIM], y[DIM];
    to_smooth(init, y0);
    set_tolerances(s, y0);
    const int st0 = knot_push(s, t0, y0);
    if (st0 == GSL_ENOMEM)
        return RS_E_NOMEM;
    if (st0 != GSL_SUCCESS) { /* derivatives overflow at the start: keep the state alone */
        s->knots[0] = (knot){.t = t0, .y = {y0[0], y0[1], y0[2]}};
        s->nknots = 1;
        return RS_E_ODE;
    }

    /* Only identical targets collapse: with T > 0, a = 0 is crossed, not approached (Eq.
     * 32-35: dh2 = 0 is a saddle), so only then is the floor a stopping point. */
    const double floor_dh2 = p->target_gap2 > 0.0 ? -1.0 : fmax(FLOOR_ABS, FLOOR_REL * init.dh2);
    int st = RS_S_NOT_CONVERGED;
    s->used_msbdf = 0;
    if (s->mode == STEPPER_EXPLICIT_FIRST ||
        (s->mode == STEPPER_AUTO &&
         explicit_steps(p, init, y0, t_end - t0) < 0.5 * EXPLICIT_MAX_STEPS)) {
        memcpy(y, y0, sizeof y);
        gsl_odeiv2_step_reset(s->rk);
        gsl_odeiv2_evolve_reset(s->rk_evolve);
        st = integrate(s, s->rk, s->rk_evolve, EXPLICIT_MAX_STEPS, t0, t_end, y, floor_dh2);
    }
    if (st == RS_S_NOT_CONVERGED || st == RS_E_ODE) { /* stiff: msbdf from the start */
        s->used_msbdf = 1;
        s->nknots = 1;
        memcpy(y, y0, sizeof y);
        gsl_odeiv2_driver_reset(s->drv);
        st = integrate(s, s->drv->s, s->drv->e, MAX_STEPS, t0, t_end, y, floor_dh2);
        if (st == RS_S_NOT_CONVERGED)
            st = RS_E_ODE;
    }
    s->end = st == RS_OK ? END_REACHED : st == RS_S_COLLAPSED ? END_COLLAPSED : END_FAILED;
    return st;
}

int rs_theory_dense_eval(const rs_theory_solver *s, const double *times, size_t n,
                         rs_theory_state *out)
{
    if (!s || !times || !out || n == 0 || s->nknots == 0 || !times_ok(times, n) ||
        times[0] < s->knots[0].t ||
        (s->end == END_REACHED && times[n - 1] > s->knots[s->nknots - 1].t))
        return RS_E_INVALID;
    const knot *k = s->knots;
    const size_t last = s->nknots - 1;
    /* the first knot at or after times[0], by bisection; then a walk along the times */
    size_t lo = 0, hi = last;
    while (lo < hi) {
        const size_t mid = lo + (hi - lo) / 2;
        if (k[mid].t < times[0])
            lo = mid + 1;
        else
            hi = mid;
    }
    size_t j = lo, fitted = 0; /* hp is the interpolant of step (k[fitted-1], k[fitted]) */
    hermite_poly hp = {0};
    int st = RS_OK;
    for (size_t i = 0; i < n; i++) {
        const double t = times[i];
        while (j < last && k[j].t < t)
            j++;
        if (s->end == END_COLLAPSED && t >= k[last].t) {
            out[i] = (rs_theory_state){0.0, 0.0, 0.0};
            st = RS_S_COLLAPSED;
        } else if (t > k[last].t) {
            out[i] = from_smooth(k[last].y); /* after a failure: NaN-free, meaningless */
            st = RS_E_ODE;
        } else {
            if (k[j].t != t && fitted != j) {
                hermite_fit(&s->par, &k[j - 1], &k[j], &hp);
                fitted = j;
            }
            out[i] = k[j].t == t ? from_smooth(k[j].y) : hermite_eval(&hp, t);
            if (!state_finite(out[i])) { /* the interpolant overflowed: a failure */
                out[i] = from_smooth(k[j - 1].y);
                st = RS_E_ODE;
            }
        }
    }
    return st;
}

int rs_theory_solve(rs_theory_solver *s, const rs_theory_params *p, rs_theory_state init,
                    const double *times, size_t n, rs_theory_state *out)
{
    if (!s || !p || !times || !out || n == 0 || !params_ok(p) || !state_ok(init) ||
        !times_ok(times, n))
        return RS_E_INVALID;
    out[0] = init;
    if (n == 1)
        return RS_OK;
    const int st = rs_theory_solve_dense(s, p, init, times[0], times[n - 1]);
    if (st == RS_E_NOMEM || st == RS_E_INVALID)
        return st;
    const int ev = rs_theory_dense_eval(s, times + 1, n - 1, out + 1);
    return ev == RS_OK ? st : ev;
}

/* ---- closed forms ---- */

/* Eq. 7 as written (theory.c's top comment). Its 1/dh2 terms stay finite on a solution:
 * dyhat2/dh2 = p and (dyhat2 + w) w/dh2 = (2ap - q)(ap - q). */
rs_theory_state rs_theory_rate_of_change(const rs_theory_params *p, rs_theory_state s)
{
    if (s.dh2 == 0.0)
        return (rs_theory_state){0.0, 0.0, 0.0};
    const double g = p->input_gap2, rh = p->rate_h, ry = p->rate_y;
    return (rs_theory_state){
        -rh * g * s.w,
        -s.w * (ry * s.dh2 + rh * g * (s.dyhat2 / s.dh2)),
        -0.5 * ry * (3.0 * s.w - s.dyhat2 + p->target_gap2) * s.dh2 -
            0.5 * rh * g * (s.dyhat2 + s.w) * (s.w / s.dh2)};
}

void rs_theory_fixed_point(const rs_theory_params *p, rs_theory_state init, double *A_high,
                           double *A_low, double *dh2_final)
{
    /* Eq. 11 with tau_y/tau_h = rate_h/rate_y. */
    const double ratio = p->rate_h / p->rate_y;
    const double a = init.dh2 - ratio * p->input_gap2 * init.dyhat2 / init.dh2;
    const double l2 = ratio * p->input_gap2 * p->target_gap2; /* A_low^2 */
    const double root = sqrt(0.25 * a * a + l2);
    /* Eq. 10; for A_high < 0 the equivalent l2/(root - a/2) avoids cancellation. */
    const double fin = a >= 0.0 ? 0.5 * a + root : (l2 > 0.0 ? l2 / (root - 0.5 * a) : 0.0);
    if (A_high)
        *A_high = a;
    if (A_low)
        *A_low = sqrt(l2);
    if (dh2_final)
        *dh2_final = fin;
}

/* Eq. 38-40 corrected. With x = A_high rate_y t, 1/dh2 obeys a linear ODE with solution
 * 1/dh2 = e^-x/dh2(0) + (1 - e^-x)/A_high (Eq. 39), and Eq. 24 simplifies to
 * dyhat2 = dyhat2(0) (dh2/dh2(0))^2 e^-x (Eq. 40). Both are evaluated in forms free of
 * overflow and cancellation for either sign of x and for A_high -> 0. */
rs_theory_state rs_theory_exact_identical_targets(const rs_theory_params *p,
                                                  rs_theory_state init, double t)
{
    double A;
    rs_theory_fixed_point(p, init, &A, NULL, NULL);
    const double d0 = init.dh2, x = A * p->rate_y * t, ryt = p->rate_y * t;
    const double c = init.dyhat2 / (d0 * d0);
    double dh2, dy2;
    if (x >= 0.0) {
        const double e = exp(-x);
        const double u = e / d0 + ryt * (x > 0.0 ? -expm1(-x) / x : 1.0); /* 1/dh2 */
        dh2 = 1.0 / u;
        dy2 = c * e / (u * u);
    } else {
        const double e = exp(x);
        const double v = 1.0 / d0 + ryt * expm1(x) / x; /* e^x / dh2 */
        dh2 = e / v;
        dy2 = c * e / (v * v);
    }
    return (rs_theory_state){dh2, dy2, dy2};
}

/* Eq. 22 / Eq. 9 corrected: the mean-output term decays with rate_ybar (Eq. 18). */
double rs_theory_loss(const rs_theory_params *p, double rate_ybar, double ybar0_offset, double t,
                      rs_theory_state s)
{
    const double m = ybar0_offset * exp(-t * rate_ybar);
    return 0.5 * m * m + 0.25 * (s.w + 0.5 * (p->target_gap2 - s.dyhat2));
}
