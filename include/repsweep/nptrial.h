/* nptrial.h — one N-point trial, end to end: train a dense net on a data set (npnet.h),
 * record the tracked pairs' probes every epoch and fit the effective theory's rates to each
 * pair as the two-point trial does (fit.h), record the observed layer's pairwise squared
 * distances over a subset of points at epoch 0 (dh2, dyhat2, w) and at the end (dh2), and,
 * given calibration rates, the theory's prediction for every pair of the subset
 * (structure.h: Eq. 10-11, optionally Eq. 50) and its Pearson r against the measurement.
 *
 * Owns: composing npnet -> probes -> fit -> theory -> structure for one trial; the
 * trajectory buffers (rs_nptrajectory, allocated once per trial, never per epoch) and the
 * result's matrices (rs_nptrial_result_free). A trial is a pure function of its spec: the
 * weights come from spec->weights_key, the minibatch order from spec->shuffle_key.
 * Never: files, MPI, printing, the choice of keys (the caller derives them from the grid
 * coordinates; rng.h), the calibration (the caller averages two-point rates). The caller
 * sets the CBLAS to one thread (rs_blas_single_thread) and turns GSL's abort-on-error
 * handler off, as for trial.h.
 *
 * Epochs: as the two-point trial, epoch e's record (loss, probes) is taken at the weights
 * before its update, e = 0 .. epochs-1. The last epoch records and does not update (that
 * update would never be observed), so the final pairwise matrix is taken at the weights of
 * the last record: a tracked pair's last recorded dh2 equals its entry in dh2_final.
 * The subset's epoch-0 values come from the same record as the tracked pairs' epoch 0 (the
 * subset's pairs are tracked in the first epoch only).
 *
 * Per tracked pair (i, j), the fit is rs_fit_rates on its dh2, dyhat2, w curves with its own
 * input_gap2 = ||x_j - x_i||^2 and target_gap2 = ||y_j - y_i||^2 in place of the two-point
 * gaps; A_high, A_low and dh2_predicted are Eq. 10-11 with those rates (as rs_trial_run
 * does). The loss rate 1/tau_ybar is not fitted: Eq. 9 is the two-point loss, and the
 * recorded loss here is the whole data set's. */
#ifndef REPSWEEP_NPTRIAL_H
#define REPSWEEP_NPTRIAL_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "repsweep/dataset.h"
#include "repsweep/fit.h"
#include "repsweep/net.h"
#include "repsweep/npnet.h"

typedef struct {
    rs_arch arch;                /* dense shape; its gain/lr/epochs are not read */
    double gain;                 /* Xavier-normal gain */
    rs_npnet_options opt;        /* optimizer, lr, batch size, chunk rows, observed stage */
    long epochs;                 /* records (>= 1); epochs - 1 updates, see above */
    uint64_t weights_key, shuffle_key;
    rs_precision precision;
    const rs_npnet_pair *pairs;  /* tracked pairs (may be NULL with n_pairs 0) */
    int n_pairs;
    const size_t *subset;        /* point indices whose pairwise distances are recorded */
    size_t subset_m;             /* 0: none; at most RS_NPTRIAL_SUBSET_MAX */
    int fit;                     /* 1: fit each tracked pair's rates (default) */
    rs_fit_options fit_options;
    /* calibration: rates (per epoch) for the subset's prediction; 0: no prediction */
    double calib_rate_h, calib_rate_y;
    volatile sig_atomic_t *stop; /* as trial.h: nonzero -> RS_S_STOPPED within one epoch */
    int threads;                 /* rs_npnet_set_threads (same numbers for any count) */
} rs_nptrial_spec;

/* The subset's pairs are tracked at epoch 0 (m (m-1) / 2 of them, an int in npnet.h). */
#define RS_NPTRIAL_SUBSET_MAX 20000

/* Full batch SGD at lr, float64, no pairs, no subset, fit on with fit.h's defaults, no
 * calibration, 1 thread; keys 0 (set them). */
void rs_nptrial_spec_default(rs_nptrial_spec *spec, const rs_arch *arch, double gain,
                             double lr, long epochs);

/* Per-epoch records, pair-major: dh2[p * capacity + e] is pair p at epoch e. */
typedef struct {
    long capacity;
    int n_pairs;
    long epochs_run;
    double *loss;                      /* capacity */
    double *dh2, *dyhat2, *w;          /* n_pairs x capacity */
    /* Eq. 7 solved with pair p's fitted rates from its epoch-0 values; NaN without a fit */
    double *dh2_theory, *dyhat2_theory, *w_theory;
} rs_nptrajectory;

int rs_nptrajectory_alloc(rs_nptrajectory *t, long epochs, int n_pairs);
void rs_nptrajectory_free(rs_nptrajectory *t);

typedef struct {
    double input_gap2, target_gap2;    /* the pair's own data distances */
    double dh2_initial, dyhat2_initial, w_initial;
    double dh2_final, dyhat2_final, w_final;
    rs_fit_result fit;                 /* status RS_S_FIT_FAILED when not fitted or failed */
    double A_high, A_low, dh2_predicted; /* Eq. 10-11 with the fitted rates; NaN without */
} rs_nptrial_pair_result;

typedef struct {
    int status;                  /* RS_OK or RS_S_DIVERGED */
    long epochs_run;
    int observed_stage;
    double loss_initial, loss_final;
    int n_pairs;
    rs_nptrial_pair_result *pair;      /* n_pairs */
    size_t m;                          /* subset size; matrices below are m x m, row-major */
    double *input_gap2, *target_gap2;  /* the data's distances over the subset */
    double *dh2_initial, *dyhat2_initial, *w_initial; /* epoch 0 */
    double *dh2_final;                 /* at the last record's weights */
    /* with calibration (else NULL and NaN): Eq. 10-11 and Eq. 50 of it, and Pearson r of
     * each against dh2_final on linear and on log values (upper triangle, no diagonal) */
    double *dh2_predicted, *dh2_predicted_exp;
    double r_linear, r_log, r_exp_linear, r_exp_log;
    size_t r_log_pairs, r_exp_log_pairs; /* pairs in the log r's (both distances > 0) */
    double train_seconds, fit_seconds;
} rs_nptrial_result;

void rs_nptrial_result_free(rs_nptrial_result *r);

/* Run one trial on data d. traj must hold spec->epochs epochs and spec->n_pairs pairs.
 * Returns RS_OK when r is filled (r->status says what happened; a diverged trial has its
 * records up to the divergence and no matrices past epoch 0), RS_S_STOPPED when *spec->stop
 * became nonzero (r holds nothing to record; free it), RS_E_INVALID for a bad spec (pairs
 * or subset out of range, subset too large, a net npnet refuses -- npnet's own refusals,
 * its workspace's allocation included, come back as RS_E_INVALID with npnet's cause), or
 * RS_E_NOMEM; the cause in why (may be NULL). After an RS_E_* return r holds nothing. */
int rs_nptrial_run(const rs_nptrial_spec *spec, const rs_dataset *d, rs_nptrajectory *traj,
                   rs_nptrial_result *r, char *why, size_t why_len);

/* The subset's prediction with calibration rates (rate_h, rate_y) from a finished result's
 * epoch-0 matrices: fills r->dh2_predicted, dh2_predicted_exp and the four r's (allocating
 * the two matrices if needed). rs_nptrial_run calls it when the spec has calibration; a
 * caller may call it again later (a calibration known only after the trial ran). */
int rs_nptrial_predict(rs_nptrial_result *r, double rate_h, double rate_y);

#endif
