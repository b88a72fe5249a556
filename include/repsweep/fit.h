/* fit.h — fitting the effective theory's rates to a measured trajectory (Eq. 49).
 *
 * Owns: the least-squares fit of (1/tau_h, 1/tau_y) to the measured dh2, dyhat2 and w
 * (unweighted sum of squared differences over the recorded epochs, Eq. 49 with dt = 1
 * epoch), on the logarithms of the rates, with GSL's gsl_multifit_nlinear (trust region,
 * Levenberg-Marquardt); the ODE starts from the measured epoch-0 values; the starting
 * points come from a coarse log-spaced scan of both rates (what the authors did).
 * Then 1/tau_ybar fitted the same way to the loss curve (Eq. 9) with the fitted ODE.
 * A failed fit is a status in the result, never an abort: callers must have turned GSL's
 * abort-on-error handler off (gsl_set_error_handler_off) — rs_fit_* do not touch global
 * state themselves.
 *
 * Never: touches networks, files or MPI. */
#ifndef REPSWEEP_FIT_H
#define REPSWEEP_FIT_H

#include <stddef.h>

typedef struct {
    double log10_rate_min;   /* scan range of both rates, log10 (default -6) */
    double log10_rate_max;   /* (default 2) */
    int scan_points;         /* points per rate in the scan (default 17, i.e. half-decades) */
    size_t stride;           /* fit every stride-th epoch (default 1: every epoch) */
    int max_iterations;      /* Levenberg-Marquardt iteration limit (default 200) */
    double rel_tol;          /* ODE relative tolerance (default 1e-8) */
} rs_fit_options;

typedef struct {
    int status;              /* RS_OK, RS_S_NOT_CONVERGED (iteration limit) or RS_S_FIT_FAILED */
    double rate_h;           /* fitted 1/tau_h, per epoch */
    double rate_y;           /* fitted 1/tau_y, per epoch */
    double fit_loss;         /* Eq. 49: sum over fitted epochs and the 3 curves of squared residuals */
    double fit_loss_rel;     /* fit_loss / sum over the same epochs of dh2^2 + dyhat2^2 + w^2 */
    int converged;           /* 1 if the LM iteration met its tolerance */
    int at_floor;            /* 1 if a rate sits at the floor: the data do not constrain it
                              * (e.g. dh2 moving against the theory's sign); read fit_loss_rel */
    int iterations;          /* LM iterations */
    int ode_solves;          /* ODE integrations used (scan + LM + the checks below) */
    /* Diagnostics of the optimum (not part of Eq. 49; see rs_fit_rates and fit.c):
     * standard errors of ln rate_h, ln rate_y (natural logs: 0.1 is ~10 %) from the
     * Jacobian at the optimum, cov = s^2 (J^T J)^-1 with s^2 = fit_loss / (3 m - 2), m the
     * fitted epochs; INFINITY where J^T J is singular in that direction; NaN without a fit */
    double se_ln_rate_h, se_ln_rate_y;
    double corr_ln_rates;    /* their correlation from the same covariance (NaN if singular) */
    int determined_h;        /* rs_rate_determination of rate_h (RS_RATE_NO_FIT without a fit) */
    int determined_y;        /* ... of rate_y */
    /* per-curve R^2 at the fitted rates over the fitted epochs: 1 - sum (data - ode)^2 /
     * sum (data - mean data)^2; NaN when the curve is constant; < 0: worse than its mean */
    double r2_dh2, r2_dyhat2, r2_w;
} rs_fit_result;

/* Whether the data determine a fitted rate (rs_fit_result.determined_h, determined_y).
 * Only RS_RATE_DETERMINED is a rate to quote; the others say at which end the data let
 * it go. The checks, in this order (the first that applies): */
typedef enum {
    RS_RATE_NO_FIT = 0,            /* no fit, or it failed: no rate (a zeroed result says so) */
    RS_RATE_DETERMINED = 1,
    RS_RATE_AT_FLOOR = 2,          /* at the floor (= at_floor): no lower bound */
    RS_RATE_UNBOUNDED_ABOVE = 3,   /* above the scan's range (10^log10_rate_max), or ten times
                                    * the rate fits as well: the cost rises by less than
                                    * RS_RATE_PROBE_MIN_RISE of itself (and less than s^2) */
    RS_RATE_UNBOUNDED_BELOW = 4,   /* a tenth of the rate fits as well (same test) */
    RS_RATE_UNCERTAIN = 5          /* standard error of ln rate > RS_RATE_SE_MAX (one decade) */
} rs_rate_determination;

#define RS_RATE_SE_MAX 2.302585092994046 /* ln 10 */
#define RS_RATE_PROBE_MIN_RISE 1e-3

/* "no_fit", "determined", "at_floor", "unbounded_above", "unbounded_below", "uncertain". */
const char *rs_rate_determination_name(int determination);

/* 1 if the fit succeeded and both rates are RS_RATE_DETERMINED: the rates to quote. */
int rs_fit_rates_determined(const rs_fit_result *res);

typedef struct {
    int status;              /* RS_OK or RS_S_FIT_FAILED */
    double rate_ybar;        /* fitted 1/tau_ybar, per epoch */
    double fit_loss;         /* sum of squared residuals of the loss curve */
    double fit_loss_rel;     /* fit_loss / sum of loss^2 */
} rs_fit_loss_result;

/* Defaults as documented above. */
void rs_fit_options_default(rs_fit_options *opt);

/* Fit the rates to n epochs (epoch i at t = i) of measured dh2, dyhat2, w.
 * Needs n >= 3, at least 3 fitted epochs, dh2[0] > 0 and finite data; opt may be NULL
 * (defaults). The scan (one ODE solve per rate ratio: Eq. 7 depends on the rates only
 * through rate_h/rate_y and rate_y t) and a first, multi-start Levenberg-Marquardt stage
 * (from the four best scan cells at least two grid steps apart, from the rate ratio Eq. 24
 * gives, and from each corner of the rate plane with one rate at the floor whose best
 * point beats every scan cell) use every k-th fitted epoch (at most 300 of them) at a relative tolerance
 * of max(rel_tol, 1e-6); the final Levenberg-Marquardt stage uses every fitted epoch at
 * rel_tol, and res->iterations, converged and status are its. A Jacobian costs one ODE
 * solve (the ln rate_y column follows from the time scaling), and a first-stage run that
 * reaches where an earlier start's run ended stops there. A flat scan cost (e.g. a
 * trajectory sitting at a fixed point from epoch 0: no rate is identifiable) gives
 * res->status = RS_S_FIT_FAILED. Fitted rates are at least
 * 10^(log10_rate_min - 6) (1e-12 per epoch by default): a rate the data do not constrain
 * (e.g. rate_h when dh2 moves against the theory's sign) comes back at that floor.
 * After the fit (status RS_OK or RS_S_NOT_CONVERGED) the diagnostics above are filled:
 * the standard errors from the final stage's Jacobian, R^2 per curve, and the
 * determination of each rate, which costs four more ODE solves (each rate ten times and a
 * tenth of its value, the other held). They never change the fitted rates or losses.
 * Returns RS_OK when `res` is filled (check res->status), RS_E_INVALID / RS_E_NOMEM
 * otherwise. */
int rs_fit_rates(const double *dh2, const double *dyhat2, const double *w, size_t n,
                 double input_gap2, double target_gap2, const rs_fit_options *opt,
                 rs_fit_result *res);

/* Fit 1/tau_ybar to n epochs of the measured loss, with the ODE at the fitted rates
 * (fit->rate_h, fit->rate_y) started from the measured epoch-0 values, and
 * ybar0_offset = mean predicted output at epoch 0 minus mean target. Uses the same epochs
 * (opt->stride) as rs_fit_rates; opt may be NULL. ybar0_offset == 0 leaves nothing to fit:
 * res->status = RS_S_FIT_FAILED. Returns RS_OK when `res` is filled, RS_E_INVALID /
 * RS_E_NOMEM otherwise. */
int rs_fit_loss_rate(const double *loss, const double *dh2, const double *dyhat2,
                     const double *w, size_t n, double input_gap2, double target_gap2,
                     double ybar0_offset, const rs_fit_result *fit, const rs_fit_options *opt,
                     rs_fit_loss_result *res);

#endif
