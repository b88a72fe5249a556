/* trial.c — one trial: net -> probes -> fit -> theory (see trial.h). */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */
#include "repsweep/trial.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "repsweep/rng.h"
#include "repsweep/status.h"
#include "repsweep/theory.h"

static double seconds_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void rs_trial_spec_default(rs_trial_spec *spec, const rs_arch *arch)
{
    memset(spec, 0, sizeof *spec);
    spec->arch = *arch;
    spec->gain = arch->gain;
    spec->lr = arch->lr;
    spec->epochs = arch->epochs;
    spec->input_gap = 1.0;             /* the authors' code: dx2 = 1 (NOTES.md) */
    spec->target_gap = sqrt(0.5);      /* dy2 = 0.5 */
    spec->precision = RS_PRECISION_FLOAT64;
    spec->observed_stage = -1;
    spec->converge_loss = 1e-3;        /* the authors' threshold */
    spec->fit = 1;
    spec->control = 0;
    spec->threads = 1;
    rs_fit_options_default(&spec->fit_options);
}

int rs_trajectory_alloc(rs_trajectory *t, long epochs, int n_stages)
{
    memset(t, 0, sizeof *t);
    if (epochs < 1 || n_stages < 0)
        return RS_E_INVALID;
    size_t n = (size_t)epochs;
    t->capacity = epochs;
    t->n_stages = n_stages;
    t->dh2 = malloc(n * sizeof(double));
    t->dyhat2 = malloc(n * sizeof(double));
    t->w = malloc(n * sizeof(double));
    t->loss = malloc(n * sizeof(double));
    t->yhat_mean = malloc(n * sizeof(double));
    t->dh2_theory = malloc(n * sizeof(double));
    t->dyhat2_theory = malloc(n * sizeof(double));
    t->w_theory = malloc(n * sizeof(double));
    t->loss_theory = malloc(n * sizeof(double));
    if (n_stages > 0)
        t->dh2_stages = malloc(n * (size_t)n_stages * sizeof(double));
    if (!t->dh2 || !t->dyhat2 || !t->w || !t->loss || !t->yhat_mean || !t->dh2_theory ||
        !t->dyhat2_theory || !t->w_theory || !t->loss_theory ||
        (n_stages > 0 && !t->dh2_stages)) {
        rs_trajectory_free(t);
        return RS_E_NOMEM;
    }
    return RS_OK;
}

void rs_trajectory_free(rs_trajectory *t)
{
    free(t->dh2);
    free(t->dyhat2);
    free(t->w);
    free(t->loss);
    free(t->yhat_mean);
    free(t->dh2_stages);
    free(t->dh2_theory);
    free(t->dyhat2_theory);
    free(t->w_theory);
    free(t->loss_theory);
    memset(t, 0, sizeof *t);
}

void rs_trial_result_free(rs_trial_result *r)
{
    free(r->stage_fit);
    free(r->stage_dh2_final);
    free(r->stage_dh2_predicted);
    r->stage_fit = NULL;
    r->stage_dh2_final = r->stage_dh2_predicted = NULL;
    r->n_stages = 0;
}

static int spec_valid(const rs_trial_spec *s, const rs_trajectory *t)
{
    int stages = rs_arch_stage_count(&s->arch);
    return rs_arch_validate(&s->arch, NULL, 0) == RS_OK && s->gain > 0 && s->lr > 0 &&
           s->epochs >= 1 && s->input_gap > 0 && s->target_gap >= 0 &&
           s->observed_stage < stages && t->capacity >= s->epochs &&
           (!s->all_layers || t->n_stages == stages);
}

/* Train, recording every epoch before its update. Stops early on divergence or, if asked,
 * once the recorded loss is below stop_loss. Returns RS_OK, RS_S_DIVERGED, or RS_S_STOPPED
 * when *s->stop was set (checked before every epoch: a signal stops a sweep within one). */
static int train(const rs_trial_spec *s, rs_net *net, const rs_pair *data, int observed,
                 rs_trajectory *t)
{
    double *stages = NULL;
    for (long e = 0; e < s->epochs; e++) {
        rs_probe p;
        if (s->stop && *s->stop)
            return RS_S_STOPPED;
        if (t->dh2_stages)
            stages = t->dh2_stages + (size_t)e * (size_t)t->n_stages;
        /* as the authors' loop: record, then step (epoch e's record precedes its update) */
        int st = rs_net_epoch(net, data, s->lr, &p, stages);
        if (observed != rs_arch_observed_stage(&s->arch) && stages)
            p.dh2 = stages[observed];
        t->dh2[e] = p.dh2;
        t->dyhat2[e] = p.dyhat2;
        t->w[e] = p.w;
        t->loss[e] = p.loss;
        t->yhat_mean[e] = p.yhat_mean;
        t->epochs_run = e + 1;
        if (st != RS_OK || !isfinite(p.loss) || !isfinite(p.dh2))
            return RS_S_DIVERGED;
        if (s->stop_loss > 0 && p.loss < s->stop_loss)
            break;
    }
    return RS_OK;
}

/* Fit the rates for one dh2 curve and evaluate Eq. 10-11 with them. */
static void fit_and_predict(const rs_trial_spec *s, const rs_trajectory *t, const double *dh2,
                            rs_fit_result *fit, double *A_high, double *A_low, double *pred)
{
    size_t n = (size_t)t->epochs_run;
    double g2 = s->input_gap * s->input_gap, y2 = s->target_gap * s->target_gap;
    if (rs_fit_rates(dh2, t->dyhat2, t->w, n, g2, y2, &s->fit_options, fit) != RS_OK)
        fit->status = RS_S_FIT_FAILED;
    *A_high = *A_low = *pred = NAN;
    if (fit->status == RS_S_FIT_FAILED)
        return;
    rs_theory_params p = {fit->rate_h, fit->rate_y, g2, y2};
    rs_theory_state init = {dh2[0], t->dyhat2[0], t->w[0]};
    rs_theory_fixed_point(&p, init, A_high, A_low, pred);
}

/* dh2 of one stage as a contiguous curve (the trajectory stores epochs x stages). */
static void stage_column(const rs_trajectory *t, int stage, double *out)
{
    for (long e = 0; e < t->epochs_run; e++)
        out[e] = t->dh2_stages[(size_t)e * (size_t)t->n_stages + (size_t)stage];
}

static int fit_stages(const rs_trial_spec *s, const rs_trajectory *t, rs_trial_result *r)
{
    int S = t->n_stages;
    r->stage_fit = calloc((size_t)S, sizeof *r->stage_fit);
    r->stage_dh2_final = calloc((size_t)S, sizeof(double));
    r->stage_dh2_predicted = calloc((size_t)S, sizeof(double));
    double *col = malloc((size_t)t->epochs_run * sizeof(double));
    if (!r->stage_fit || !r->stage_dh2_final || !r->stage_dh2_predicted || !col) {
        free(col);
        return RS_E_NOMEM;
    }
    r->n_stages = S;
    for (int st = 0; st < S; st++) {
        double A_high, A_low;
        stage_column(t, st, col);
        r->stage_dh2_final[st] = col[t->epochs_run - 1];
        fit_and_predict(s, t, col, &r->stage_fit[st], &A_high, &A_low,
                        &r->stage_dh2_predicted[st]);
    }
    free(col);
    return RS_OK;
}

/* The fitted theory's curves (Eq. 7 solved with the fitted rates, Eq. 9 with 1/tau_ybar),
 * for plots against the measurements; NaN where there is no fit. */
static void theory_curves(const rs_trial_spec *s, rs_trajectory *t, const rs_trial_result *r)
{
    size_t n = (size_t)t->epochs_run;
    for (size_t e = 0; e < n; e++)
        t->dh2_theory[e] = t->dyhat2_theory[e] = t->w_theory[e] = t->loss_theory[e] = NAN;
    if (r->fit.status == RS_S_FIT_FAILED)
        return;
    rs_theory_params p = {r->fit.rate_h, r->fit.rate_y, s->input_gap * s->input_gap,
                          s->target_gap * s->target_gap};
    rs_theory_state init = {t->dh2[0], t->dyhat2[0], t->w[0]};
    rs_theory_solver *solver = rs_theory_solver_alloc(s->fit_options.rel_tol);
    double *times = malloc(n * sizeof *times);
    rs_theory_state *out = malloc(n * sizeof *out);
    if (solver && times && out) {
        for (size_t e = 0; e < n; e++)
            times[e] = (double)e;
        int st = rs_theory_solve(solver, &p, init, times, n, out);
        double ybar0_offset = t->yhat_mean[0] - (0.6 + 0.5 * s->target_gap);
        for (size_t e = 0; st >= 0 && e < n; e++) {
            t->dh2_theory[e] = out[e].dh2;
            t->dyhat2_theory[e] = out[e].dyhat2;
            t->w_theory[e] = out[e].w;
            if (r->fit_ybar.status != RS_S_FIT_FAILED)
                t->loss_theory[e] =
                    rs_theory_loss(&p, r->fit_ybar.rate_ybar, ybar0_offset, (double)e, out[e]);
        }
    }
    free(times);
    free(out);
    rs_theory_solver_free(solver);
}

static int fit_trial(const rs_trial_spec *s, rs_trajectory *t, rs_trial_result *r)
{
    fit_and_predict(s, t, t->dh2, &r->fit, &r->A_high, &r->A_low, &r->dh2_predicted);
    if (r->fit.status == RS_S_FIT_FAILED) {
        r->status = RS_S_FIT_FAILED;
    } else {
        double g2 = s->input_gap * s->input_gap, y2 = s->target_gap * s->target_gap;
        double ybar0_offset = t->yhat_mean[0] - (0.6 + 0.5 * s->target_gap); /* mean target */
        if (rs_fit_loss_rate(t->loss, t->dh2, t->dyhat2, t->w, (size_t)t->epochs_run, g2, y2,
                             ybar0_offset, &r->fit, &s->fit_options, &r->fit_ybar) != RS_OK)
            r->fit_ybar.status = RS_S_FIT_FAILED;
        if (s->control &&
            rs_fit_control(t->dh2, t->dyhat2, t->w, (size_t)t->epochs_run, g2, y2, &r->fit,
                           &s->fit_options, &r->control) != RS_OK)
            r->control.status = RS_S_FIT_FAILED;
    }
    theory_curves(s, t, r);
    return s->all_layers ? fit_stages(s, t, r) : RS_OK;
}

rs_net *rs_trial_net_alloc(const rs_trial_spec *s)
{
    rs_net *net = rs_net_alloc(&s->arch, s->precision);
    if (!net)
        return NULL;
    const char *name = s->arch.name;
    uint64_t wkey =
        rs_rng_trial_key(name, s->gain, s->input_gap, s->target_gap, s->seed, RS_STREAM_WEIGHTS);
    uint64_t dkey =
        rs_rng_trial_key(name, s->gain, s->input_gap, s->target_gap, s->seed, RS_STREAM_DROPOUT);
    if (rs_net_init(net, s->gain, wkey, dkey) != RS_OK) {
        rs_net_free(net);
        return NULL;
    }
    rs_net_set_threads(net, s->threads);
    return net;
}

int rs_trial_run(const rs_trial_spec *s, rs_trajectory *t, rs_trial_result *r)
{
    memset(r, 0, sizeof *r);
    if (!spec_valid(s, t))
        return RS_E_INVALID;
    int observed = s->observed_stage >= 0 ? s->observed_stage : rs_arch_observed_stage(&s->arch);
    if (observed != rs_arch_observed_stage(&s->arch) && !s->all_layers)
        return RS_E_INVALID; /* a non-default observed layer needs every stage recorded */
    rs_net *net = rs_trial_net_alloc(s);
    if (!net)
        return RS_E_NOMEM;
    int st;
    rs_pair data;
    rs_pair_from_gaps(&data, s->input_gap, s->target_gap);
    r->net_bytes = rs_net_bytes(net);
    r->observed_stage = observed;

    double t0 = seconds_now();
    r->status = train(s, net, &data, observed, t);
    r->train_seconds = seconds_now() - t0;
    rs_net_free(net);
    if (r->status == RS_S_STOPPED)
        return RS_S_STOPPED;

    long last = t->epochs_run - 1;
    r->epochs_run = t->epochs_run;
    r->dh2_initial = t->dh2[0];
    r->dyhat2_initial = t->dyhat2[0];
    r->w_initial = t->w[0];
    r->loss_initial = t->loss[0];
    r->yhat_mean_initial = t->yhat_mean[0];
    r->dh2_final = t->dh2[last];
    r->dyhat2_final = t->dyhat2[last];
    r->w_final = t->w[last];
    r->loss_final = t->loss[last];
    r->converged = r->status == RS_OK && r->loss_final < s->converge_loss;
    r->A_high = r->A_low = r->dh2_predicted = NAN;
    if (r->status != RS_OK || !s->fit || t->epochs_run < 3)
        return RS_OK;
    t0 = seconds_now();
    st = fit_trial(s, t, r);
    r->fit_seconds = seconds_now() - t0;
    return st;
}
