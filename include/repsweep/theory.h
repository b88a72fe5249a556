/* theory.h — the effective theory of the two-point interaction (van Rossem & Saxe 2024).
 *
 * Owns: the 3-variable ODE of Eq. 7 in (dh2, dyhat2, w), integrated with GSL's gsl_odeiv2
 * (an explicit Runge-Kutta stepper, rkck, where the rates make it cheap; msbdf, a stiff
 * multistep method with the analytic Jacobian, where they make it stiff or rkck gives up)
 * in an equivalent smooth form:
 * a = +-sqrt(dh2), p = dyhat2/dh2, q = (dyhat2 - w)/a obey a polynomial system with no
 * 1/dh2 singularity (derived in theory.c from Eq. 17 and 19, the assumptions of Eq. 7), so
 * trajectories on which dh2 touches 0 and recovers are integrated too; dense output (a
 * quintic Hermite interpolant between the solver's steps, so a solve costs its steps, not
 * its output times); the stable fixed point
 * (Eq. 10) with its terms A_high and A_low (Eq. 11); the exact identical-target solution
 * (Eq. 39-40, corrected: the exponent carries the rate, exp(-A_high t / tau_y)); and the
 * training loss (Eq. 9, corrected: the mean-output term decays with tau_ybar, not tau_y).
 *
 * Names: dh2 = ||h(x2)-h(x1)||^2 at the observed layer; dyhat2 = ||f(x2)-f(x1)||^2, the
 * *predicted* output difference (the paper's ||dy||^2); w = dyhat2 - (f2-f1).(y2-y1).
 * The data enter only through input_gap2 = ||x2-x1||^2 and target_gap2 = ||y2-y1||^2.
 * Rates are per unit of t; repsweep's t is the epoch (one full-batch step), so fitted
 * rates are per epoch and include the learning rate.
 *
 * Never: touches networks, files or MPI. */
#ifndef REPSWEEP_THEORY_H
#define REPSWEEP_THEORY_H

#include <stddef.h>

typedef struct {
    double rate_h;       /* 1/tau_h, encoder rate (per epoch) */
    double rate_y;       /* 1/tau_y, decoder rate (per epoch) */
    double input_gap2;   /* ||x2 - x1||^2 */
    double target_gap2;  /* ||y2 - y1||^2 */
} rs_theory_params;

typedef struct {
    double dh2;
    double dyhat2;
    double w;
} rs_theory_state;

typedef struct rs_theory_solver rs_theory_solver;

/* A solver reusable across many solves (the fit calls it hundreds of times).
 * rel_tol: relative tolerance of the integrator (1e-10 is a good default). */
rs_theory_solver *rs_theory_solver_alloc(double rel_tol);
void rs_theory_solver_free(rs_theory_solver *s);

/* Integrate Eq. 7 from `init` at t = times[0] and write the state at every times[i]
 * (times strictly increasing) into out[i]; out[0] = init. The error control is relative
 * (rel_tol) down to an absolute floor of 1e-12 * rel_tol times each variable's initial scale.
 * Returns RS_OK; RS_S_COLLAPSED when target_gap2 == 0 and dh2 fell to the collapse floor
 * max(1e-300, 1e-24 * init.dh2) (identical targets with A_high < 0: dh2 -> 0 exponentially):
 * out[] from there on holds the limit (0, 0, 0); RS_E_ODE if the integrator failed or hit
 * its step limit (out[] from the failure on is NaN-free but meaningless, filled with the last
 * good state); RS_E_INVALID for bad arguments (NULLs, n == 0, rates not positive and finite,
 * negative or non-finite gaps, init.dh2 < DBL_MIN or a non-finite init, times not finite and
 * strictly increasing). With target_gap2 > 0 there is no collapse: dh2 can touch 0 in finite
 * time and grow again (f2 - f1 of the wrong sign with A_high < 0: by Eq. 24 the decoder
 * factor cannot flip, so the representation does) and the solve continues through it.
 * Never returns NaN in out[]. The cost hardly depends on n: states between the solver's
 * steps are interpolated (rs_theory_solve_dense). */
int rs_theory_solve(rs_theory_solver *s, const rs_theory_params *p, rs_theory_state init,
                    const double *times, size_t n, rs_theory_state *out);

/* The same integration from `init` at t0 to t_end (>= t0), kept in the solver as a dense
 * solution (the solver's steps and a quintic Hermite interpolant between them) for
 * rs_theory_dense_eval, until the next solve. Returns RS_OK, RS_S_COLLAPSED (the solution
 * ends at the collapse), RS_E_ODE (it ends at the failure), RS_E_NOMEM or RS_E_INVALID. */
int rs_theory_solve_dense(rs_theory_solver *s, const rs_theory_params *p, rs_theory_state init,
                          double t0, double t_end);

/* The last dense solution at times[0..n) (strictly increasing, from t0 on) into out.
 * Returns RS_OK; RS_S_COLLAPSED if some time is at or past a collapse (out holds (0, 0, 0)
 * there); RS_E_ODE if some time is past a failure (out holds the last good state there);
 * RS_E_INVALID for bad arguments, no solution, or a time before t0 or after a reached
 * t_end. Never returns NaN in out[]. */
int rs_theory_dense_eval(const rs_theory_solver *s, const double *times, size_t n,
                         rs_theory_state *out);

/* Eq. 7's right side: the time derivative of (dh2, dyhat2, w) at state s. At dh2 == 0 (the
 * collapse limit that rs_theory_solve fills in) it returns (0, 0, 0). The fit uses it for the
 * derivative of a solution in ln rate_y: Eq. 7 depends on the rates only through
 * rate_h/rate_y and rate_y t, so at a fixed rate_h/rate_y a solution's derivative in
 * ln rate_y is t times this. */
rs_theory_state rs_theory_rate_of_change(const rs_theory_params *p, rs_theory_state s);

/* Eq. 11 and Eq. 10: the stable fixed point reached from `init`.
 * A_high = dh2(0) - (tau_y/tau_h) * input_gap2 * dyhat2(0)/dh2(0),
 * A_low  = sqrt(tau_y/tau_h) * ||x2-x1|| * ||y2-y1||,
 * dh2(inf) = A_high/2 + sqrt(A_high^2/4 + A_low^2). Any output pointer may be NULL. */
void rs_theory_fixed_point(const rs_theory_params *p, rs_theory_state init,
                           double *A_high, double *A_low, double *dh2_final);

/* Exact solution for identical targets (target_gap2 == 0, so w == dyhat2), Eq. 39-40 corrected:
 * dh2(t) = A_high / (1 + (A_high/dh2(0) - 1) exp(-A_high t rate_y)), and dyhat2 from Eq. 24:
 * dyhat2 = (rate_y/rate_h)/input_gap2 * dh2 * (dh2 - A_high). Requires init.w == init.dyhat2.
 * Evaluated in equivalent forms free of overflow and cancellation (also for A_high <= 0 and
 * input_gap2 == 0): 1/dh2 = e^-x/dh2(0) + (1 - e^-x)/A_high and
 * dyhat2 = dyhat2(0) (dh2/dh2(0))^2 e^-x, with x = A_high rate_y t; w = dyhat2. */
rs_theory_state rs_theory_exact_identical_targets(const rs_theory_params *p, rs_theory_state init,
                                                  double t);

/* Eq. 9 (corrected) and Eq. 22: the training loss L = 1/2 mean_i (f_i - y_i)^2 at time t,
 * L = 1/2 (ybar0_offset * exp(-t rate_ybar))^2 + 1/4 (w + 1/2 (target_gap2 - dyhat2)),
 * where ybar0_offset = mean predicted output at t=0 minus mean target (1-D outputs). */
double rs_theory_loss(const rs_theory_params *p, double rate_ybar, double ybar0_offset, double t,
                      rs_theory_state s);

#endif
