/* control.c — fits of perturbed versions of Eq. 7 (see control.h).
 *
 * Deliberately simple and separate from fit.c (whose solver works in a smooth change of
 * variables valid for Eq. 7 only): Eq. 7 as written, integrated by GSL's msbdf with a
 * forward-difference Jacobian of the right side, at relative tolerance 1e-8; a state with
 * dh2 <= 0 or not finite ends the solve (the 1/dh2 terms), and a failed solve gives every
 * scaled residual the value FAIL_RESIDUAL, as in fit.c. Least squares on x = ln rates
 * (held in [1e-12, 1e4] per epoch), GSL's trust-region Levenberg-Marquardt with its
 * forward-difference Jacobian (step H_DF, large against the solver's tolerance).
 * Starts: the main fit's rates (if any) and the best cell of a SCAN_POINTS^2 scan of
 * 1e-5..1 per epoch, each variant separately; the best end is the variant's loss.
 * The integrator is explicit (rkf45, tolerance 1e-6) with a cap of MAX_STEPS steps: a stiff
 * solve (fast rates) fails quickly and counts as a failed solve, for every variant alike;
 * so the control cannot reach optima at rates that make Eq. 7 stiff (the main fit can),
 * and its derived loss can exceed the main fit's. Measured on a narrow net's 6000 epochs:
 * 44 s with msbdf, a 9 x 9 scan and 20000 steps per solve, which is why it is this coarse. */
#include "repsweep/control.h"
#include "repsweep/status.h"

#include <math.h>
#include <stdlib.h>

#include <gsl/gsl_errno.h>
#include <gsl/gsl_multifit_nlinear.h>
#include <gsl/gsl_odeiv2.h>
#include <gsl/gsl_vector.h>

#define CONTROL_MAX_EPOCHS 100
#define SCAN_POINTS 6
#define SCAN_LO (-5.0)
#define SCAN_HI 0.0
#define REL_TOL 1e-6
#define FAIL_RESIDUAL 1e3
#define H_DF 1e-4
#define MAX_ITER 30
#define MAX_STEPS 3000UL

static const char *const variant_names[RS_CONTROL_VARIANTS] = {
    "control_derived", "control_dh2_sign", "control_decoder_doubled",
    "control_w_encoder_dropped", "control_w_coeff", "control_target_sign"};

const char *rs_fit_control_variant_name(int v)
{
    return v >= 0 && v < RS_CONTROL_VARIANTS ? variant_names[v] : "control_unknown";
}

typedef struct {
    int variant;
    double rate_h, rate_y, g, T;
} rhs_params;

/* Eq. 7 (control.h's (a)-(c)) and its variants, y = (dh2, dyhat2, w). */
static int rhs(double t, const double y[], double f[], void *params)
{
    const rhs_params *p = params;
    const double d = y[0], q = y[1], w = y[2], enc = p->rate_h * p->g, ry = p->rate_y;
    (void)t;
    if (!(d > 0.0) || !isfinite(q) || !isfinite(w))
        return GSL_EBADFUNC;
    const int v = p->variant;
    f[0] = (v == RS_CONTROL_DH2_SIGN ? 1.0 : -1.0) * enc * w;
    f[1] = -w * ((v == RS_CONTROL_DECODER_DOUBLED ? 2.0 : 1.0) * ry * d + enc * q / d);
    const double c3 = v == RS_CONTROL_W_COEFF ? 1.0 : 3.0;
    const double T = v == RS_CONTROL_TARGET_SIGN ? -p->T : p->T;
    f[2] = -0.5 * ry * (c3 * w - q + T) * d -
           (v == RS_CONTROL_W_ENCODER_DROPPED ? 0.0 : 0.5 * enc * (q + w) * w / d);
    return GSL_SUCCESS;
}

/* Forward-difference Jacobian of rhs (msbdf needs one). */
static int jac(double t, const double y[], double *dfdy, double dfdt[], void *params)
{
    double f0[3], f1[3], yp[3];
    int st = rhs(t, y, f0, params);
    for (int j = 0; j < 3 && st == GSL_SUCCESS; j++) {
        yp[0] = y[0], yp[1] = y[1], yp[2] = y[2];
        const double h = 1e-7 * fmax(fabs(y[j]), 1e-12);
        yp[j] += h;
        st = rhs(t, yp, f1, params);
        for (int i = 0; i < 3 && st == GSL_SUCCESS; i++)
            dfdy[i * 3 + j] = (f1[i] - f0[i]) / h;
    }
    dfdt[0] = dfdt[1] = dfdt[2] = 0.0;
    return st;
}

typedef struct {
    const double *data[3];
    size_t k, step;         /* k epochs used: 0, step, 2 step, ... */
    double y0[3], g, T, inv_scale, norm;
    rhs_params par;
    gsl_odeiv2_system sys;
    gsl_odeiv2_driver *drv;
} ctl_ctx;

static double clamp_rate(double x)
{
    return exp(fmin(fmax(x, log(1e-12)), log(1e4)));
}

/* Scaled residuals at x = (ln rate_h, ln rate_y) into f (3k); their sum of squares. */
static double residuals(ctl_ctx *c, const double x[2], double *f)
{
    c->par.rate_h = clamp_rate(x[0]);
    c->par.rate_y = clamp_rate(x[1]);
    gsl_odeiv2_driver_reset(c->drv);
    double y[3] = {c->y0[0], c->y0[1], c->y0[2]}, t = 0.0, cost = 0.0;
    int ok = 1;
    for (size_t j = 0; j < c->k; j++) {
        const double tj = (double)(j * c->step);
        if (ok && tj > t)
            ok = gsl_odeiv2_driver_apply(c->drv, &t, tj, y) == GSL_SUCCESS;
        for (int q = 0; q < 3; q++) {
            const double r = ok ? (c->data[q][j * c->step] - y[q]) * c->inv_scale : FAIL_RESIDUAL;
            f[3 * j + q] = r;
            cost += r * r;
        }
    }
    return cost;
}

static int lm_f(const gsl_vector *x, void *params, gsl_vector *f)
{
    const double xv[2] = {gsl_vector_get(x, 0), gsl_vector_get(x, 1)};
    residuals(params, xv, f->data);
    return GSL_SUCCESS;
}

/* Levenberg-Marquardt from x0; returns the scaled cost at its end, the end in x_out. */
static double lm(ctl_ctx *c, gsl_multifit_nlinear_workspace *w, gsl_multifit_nlinear_fdf *fdf,
                 const double x0[2], double x_out[2])
{
    gsl_vector_const_view xv = gsl_vector_const_view_array(x0, 2);
    int info = 0;
    if (gsl_multifit_nlinear_init(&xv.vector, fdf, w) != GSL_SUCCESS)
        return INFINITY;
    gsl_multifit_nlinear_driver(MAX_ITER, 1e-8, 1e-8, 1e-8, NULL, NULL, &info, w);
    const gsl_vector *x = gsl_multifit_nlinear_position(w);
    x_out[0] = gsl_vector_get(x, 0);
    x_out[1] = gsl_vector_get(x, 1);
    const gsl_vector *f = gsl_multifit_nlinear_residual(w);
    double cost = 0.0;
    for (size_t i = 0; i < f->size; i++)
        cost += f->data[i] * f->data[i];
    (void)c;
    return cost;
}

/* The best fit of variant v: its relative loss and rates into res. */
static void fit_variant(ctl_ctx *c, int v, const rs_fit_result *fit,
                        gsl_multifit_nlinear_workspace *w, gsl_multifit_nlinear_fdf *fdf,
                        double *f, rs_fit_control_result *res)
{
    c->par.variant = v;
    double starts[3][2], best_cell[2][2] = {{0, 0}, {0, 0}}, best_cost[2] = {INFINITY, INFINITY};
    for (int i = 0; i < SCAN_POINTS; i++)
        for (int j = 0; j < SCAN_POINTS; j++) {
            const double x[2] = {
                M_LN10 * (SCAN_LO + (SCAN_HI - SCAN_LO) * i / (SCAN_POINTS - 1)),
                M_LN10 * (SCAN_LO + (SCAN_HI - SCAN_LO) * j / (SCAN_POINTS - 1))};
            const double cost = residuals(c, x, f);
            const int slot = cost < best_cost[0] ? 0 : cost < best_cost[1] ? 1 : -1;
            if (slot == 0) {
                best_cost[1] = best_cost[0];
                best_cell[1][0] = best_cell[0][0], best_cell[1][1] = best_cell[0][1];
            }
            if (slot >= 0) {
                best_cost[slot] = cost;
                best_cell[slot][0] = x[0], best_cell[slot][1] = x[1];
            }
        }
    int n = 0;
    if (fit && fit->rate_h > 0.0 && fit->rate_y > 0.0 && isfinite(fit->rate_h) &&
        isfinite(fit->rate_y)) {
        starts[n][0] = log(fit->rate_h), starts[n][1] = log(fit->rate_y);
        n++;
    }
    for (int s = 0; s < 1; s++)
        if (isfinite(best_cost[s]))
            starts[n][0] = best_cell[s][0], starts[n][1] = best_cell[s][1], n++;
    double best = INFINITY, bx[2] = {NAN, NAN};
    for (int s = 0; s < n; s++) {
        double x[2];
        const double cost = lm(c, w, fdf, starts[s], x);
        if (cost < best)
            best = cost, bx[0] = x[0], bx[1] = x[1];
    }
    /* a cost made of failed solves is no fit */
    const int failed = !(best < FAIL_RESIDUAL * FAIL_RESIDUAL);
    res->fit_loss_rel[v] = failed ? INFINITY : best / (c->inv_scale * c->inv_scale) / c->norm;
    res->rate_h[v] = failed ? NAN : clamp_rate(bx[0]);
    res->rate_y[v] = failed ? NAN : clamp_rate(bx[1]);
}

int rs_fit_control(const double *dh2, const double *dyhat2, const double *w, size_t n,
                   double input_gap2, double target_gap2, const rs_fit_result *fit,
                   const rs_fit_options *opt, rs_fit_control_result *res)
{
    (void)opt;
    if (!dh2 || !dyhat2 || !w || !res || n < 3 || !(dh2[0] > 0.0))
        return RS_E_INVALID;
    *res = (rs_fit_control_result){.status = RS_S_FIT_FAILED};
    ctl_ctx c = {.data = {dh2, dyhat2, w}, .g = input_gap2, .T = target_gap2};
    c.step = (n + CONTROL_MAX_EPOCHS - 1) / CONTROL_MAX_EPOCHS;
    c.k = (n - 1) / c.step + 1;
    c.y0[0] = dh2[0], c.y0[1] = dyhat2[0], c.y0[2] = w[0];
    for (size_t j = 0; j < c.k; j++)
        for (int q = 0; q < 3; q++)
            c.norm += c.data[q][j * c.step] * c.data[q][j * c.step];
    if (!(c.norm > 0.0) || !isfinite(c.norm))
        return RS_E_INVALID;
    c.inv_scale = 1.0 / sqrt(c.norm / (3.0 * (double)c.k));
    c.par = (rhs_params){0, 1.0, 1.0, input_gap2, target_gap2};
    c.sys = (gsl_odeiv2_system){rhs, jac, 3, &c.par};
    c.drv = gsl_odeiv2_driver_alloc_y_new(&c.sys, gsl_odeiv2_step_rkf45, 1e-3, 0.0, REL_TOL);
    double *f = malloc(3 * c.k * sizeof *f);
    gsl_multifit_nlinear_fdf fdf = {.f = lm_f, .df = NULL, .fvv = NULL, .n = 3 * c.k, .p = 2,
                                    .params = &c};
    gsl_multifit_nlinear_parameters fp = gsl_multifit_nlinear_default_parameters();
    fp.scale = gsl_multifit_nlinear_scale_levenberg;
    fp.h_df = H_DF;
    gsl_multifit_nlinear_workspace *work =
        gsl_multifit_nlinear_alloc(gsl_multifit_nlinear_trust, &fp, 3 * c.k, 2);
    int st = RS_E_NOMEM;
    if (c.drv && f && work) {
        gsl_odeiv2_driver_set_nmax(c.drv, MAX_STEPS);
        for (int v = 0; v < RS_CONTROL_VARIANTS; v++)
            fit_variant(&c, v, fit, work, &fdf, f, res);
        res->status = isfinite(res->fit_loss_rel[RS_CONTROL_DERIVED]) ? RS_OK : RS_S_FIT_FAILED;
        st = RS_OK;
    }
    if (work)
        gsl_multifit_nlinear_free(work);
    if (c.drv)
        gsl_odeiv2_driver_free(c.drv);
    free(f);
    return st;
}
