/* trial.h — one trial, end to end: train a network on the two-point dataset, record the
 * probes every epoch, fit the effective theory's rates, and predict the final distance.
 *
 * Owns: composing net -> probes -> fit -> theory for one set of grid coordinates; the
 * trajectory buffers (allocated once per trial, never per epoch); convergence and
 * divergence rules. A trial is a pure function of its spec: the weights come from the
 * generator keyed by (architecture name, gain, input_gap, target_gap, seed).
 * Never: files, MPI, printing. The caller sets OpenBLAS to one thread (threads come from
 * `threads` below; see rs_net_set_threads) and turns GSL's abort-on-error handler off. */
#ifndef REPSWEEP_TRIAL_H
#define REPSWEEP_TRIAL_H

#include <signal.h>
#include <stddef.h>

#include "repsweep/control.h"
#include "repsweep/fit.h"
#include "repsweep/net.h"

typedef struct {
    rs_arch arch;          /* shape; its gain/lr/epochs are only Table 1's defaults */
    double gain;           /* initial weight scale (Xavier-normal gain) */
    double lr;             /* learning rate */
    long epochs;           /* maximum number of epochs (gradient steps) */
    double input_gap;      /* |x2 - x1| (a distance, not squared) */
    double target_gap;     /* |y2 - y1| (a distance, not squared) */
    long seed;
    rs_precision precision;
    int all_layers;        /* 1: record dh2 at every stage and fit each (depth study, Fig. 10) */
    int observed_stage;    /* -1: the architecture's middle layer (rs_arch_observed_stage) */
    double converge_loss;  /* converged iff the final recorded loss < this (default 1e-3) */
    double stop_loss;      /* 0: run all epochs; > 0: stop once the recorded loss < stop_loss */
    int fit;               /* 1: fit the rates (default); 0: train only */
    int control;           /* 1: also fit perturbed versions of Eq. 7 (control.h); default 0 */
    rs_fit_options fit_options;
    /* NULL (default), or a flag (set by a signal handler) that training reads before every
     * epoch: once it is nonzero the trial is abandoned (rs_trial_run returns RS_S_STOPPED),
     * so a sweep stops within one epoch. Reading it never changes a finished trial's numbers. */
    volatile sig_atomic_t *stop;
    int threads;           /* the network's OpenMP threads (rs_net_set_threads; default 1),
                            * which give the same numbers for any count */
} rs_trial_spec;

/* Table 1's settings for `arch` and the authors' gaps (input 1, target sqrt(0.5)), seed 0,
 * float64, observed layer in the middle, converge_loss 1e-3, no early stop, fit on, 1 thread. */
void rs_trial_spec_default(rs_trial_spec *spec, const rs_arch *arch);

/* Per-epoch records, in evaluation mode, before each update. Index e = epoch e. */
typedef struct {
    long capacity;        /* epochs allocated */
    long epochs_run;      /* epochs recorded */
    int n_stages;         /* columns of dh2_stages (0 unless all_layers) */
    double *dh2, *dyhat2, *w, *loss, *yhat_mean;
    double *dh2_stages;   /* epochs x n_stages, row-major; NULL unless all_layers */
    /* Eq. 7 and Eq. 9 with the fitted rates from the measured epoch-0 values; NaN when there
     * was no fit (or it failed) */
    double *dh2_theory, *dyhat2_theory, *w_theory, *loss_theory;
} rs_trajectory;

int rs_trajectory_alloc(rs_trajectory *t, long epochs, int n_stages);
void rs_trajectory_free(rs_trajectory *t);

typedef struct {
    int status;            /* RS_OK, RS_S_DIVERGED (NaN/Inf in training), RS_S_FIT_FAILED */
    int converged;         /* final recorded loss < converge_loss */
    long epochs_run;
    int observed_stage;
    double dh2_initial, dyhat2_initial, w_initial, loss_initial, yhat_mean_initial;
    double dh2_final, dyhat2_final, w_final, loss_final;
    rs_fit_result fit;             /* rates fitted to dh2, dyhat2, w (Eq. 49) */
    rs_fit_loss_result fit_ybar;   /* 1/tau_ybar fitted to the loss (Eq. 9) */
    rs_fit_control_result control; /* spec->control: the perturbed ODEs' fits (else zeroed) */
    double A_high, A_low;          /* Eq. 11 with the fitted rates and measured epoch-0 values */
    double dh2_predicted;          /* Eq. 10 */
    int n_stages;                  /* per-stage results below when all_layers, else 0 */
    rs_fit_result *stage_fit;      /* n_stages fits (dh2 at that stage; dyhat2, w as above) */
    double *stage_dh2_final, *stage_dh2_predicted;
    double train_seconds, fit_seconds;
    size_t net_bytes;              /* the network workspace */
} rs_trial_result;

void rs_trial_result_free(rs_trial_result *r);

/* The network of a trial with its initial weights (the ones rs_trial_run starts from);
 * NULL if it cannot be allocated. For export and tests. */
rs_net *rs_trial_net_alloc(const rs_trial_spec *spec);

/* Run one trial. `traj` must have been allocated for spec->epochs epochs (and
 * rs_arch_stage_count stages if all_layers). Returns RS_OK when `res` is filled (its
 * status says what happened), RS_S_STOPPED when *spec->stop became nonzero during training
 * (`res` is then not a result: record nothing), an RS_E_* code if the trial could not run. */
int rs_trial_run(const rs_trial_spec *spec, rs_trajectory *traj, rs_trial_result *res);

#endif
