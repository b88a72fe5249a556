/* nptrial.c — one N-point trial: npnet -> probes -> fit -> theory -> structure (nptrial.h). */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */
#include "repsweep/nptrial.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "repsweep/status.h"
#include "repsweep/structure.h"
#include "repsweep/theory.h"

static double seconds_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}


void rs_nptrial_spec_default(rs_nptrial_spec *spec, const rs_arch *arch, double gain,
                             double lr, long epochs)
{
    memset(spec, 0, sizeof *spec);
    spec->arch = *arch;
    spec->gain = gain;
    rs_npnet_options_default(&spec->opt, lr);
    spec->epochs = epochs;
    spec->precision = RS_PRECISION_FLOAT64;
    spec->fit = 1;
    rs_fit_options_default(&spec->fit_options);
    spec->threads = 1;
}

int rs_nptrajectory_alloc(rs_nptrajectory *t, long epochs, int n_pairs)
{
    memset(t, 0, sizeof *t);
    if (epochs < 1 || n_pairs < 0)
        return RS_E_INVALID;
    size_t n = (size_t)epochs, np = (size_t)n_pairs * n;
    t->capacity = epochs;
    t->n_pairs = n_pairs;
    t->loss = malloc(n * sizeof(double));
    double **curves[] = {&t->dh2, &t->dyhat2, &t->w, &t->dh2_theory, &t->dyhat2_theory,
                         &t->w_theory};
    int ok = t->loss != NULL;
    for (size_t k = 0; k < sizeof curves / sizeof *curves; k++)
        ok &= (*curves[k] = malloc((np ? np : 1) * sizeof(double))) != NULL;
    if (!ok) {
        rs_nptrajectory_free(t);
        return RS_E_NOMEM;
    }
    return RS_OK;
}

void rs_nptrajectory_free(rs_nptrajectory *t)
{
    free(t->loss);
    free(t->dh2);
    free(t->dyhat2);
    free(t->w);
    free(t->dh2_theory);
    free(t->dyhat2_theory);
    free(t->w_theory);
    memset(t, 0, sizeof *t);
}

void rs_nptrial_result_free(rs_nptrial_result *r)
{
    free(r->pair);
    free(r->input_gap2);
    free(r->target_gap2);
    free(r->dh2_initial);
    free(r->dyhat2_initial);
    free(r->w_initial);
    free(r->dh2_final);
    free(r->dh2_predicted);
    free(r->dh2_predicted_exp);
    memset(r, 0, sizeof *r);
}

static int check_spec(const rs_nptrial_spec *s, const rs_dataset *d, const rs_nptrajectory *t,
                      char *why, size_t why_len)
{
    if (s->epochs < 1 || t->capacity < s->epochs || t->n_pairs != s->n_pairs || s->n_pairs < 0 ||
        (s->n_pairs > 0 && !s->pairs))
        return rs_fail(why, why_len, RS_E_INVALID,
                    "epochs must be >= 1 and the trajectory must hold them and the pairs");
    for (int p = 0; p < s->n_pairs; p++)
        if (s->pairs[p].i >= d->n || s->pairs[p].j >= d->n || s->pairs[p].i == s->pairs[p].j)
            return rs_fail(why, why_len, RS_E_INVALID,
                        "tracked pair %d (%zu, %zu): two distinct points of the %zu", p,
                        s->pairs[p].i, s->pairs[p].j, d->n);
    if (s->subset_m == 1 || s->subset_m > RS_NPTRIAL_SUBSET_MAX || (s->subset_m && !s->subset))
        return rs_fail(why, why_len, RS_E_INVALID, "the subset needs 2..%d points (or none)",
                    RS_NPTRIAL_SUBSET_MAX);
    for (size_t k = 0; k < s->subset_m; k++)
        if (s->subset[k] >= d->n)
            return rs_fail(why, why_len, RS_E_INVALID, "subset point %zu is %zu, past the %zu",
                        k, s->subset[k], d->n);
    if (!(s->gain > 0) || !(s->calib_rate_h >= 0) || !(s->calib_rate_y >= 0))
        return rs_fail(why, why_len, RS_E_INVALID, "gain must be > 0 and rates >= 0");
    return RS_OK;
}

static int alloc_result(rs_nptrial_result *r, int n_pairs, size_t m)
{
    r->n_pairs = n_pairs;
    r->m = m;
    r->pair = calloc(n_pairs ? (size_t)n_pairs : 1, sizeof *r->pair);
    size_t mm = m ? m * m : 1;
    double **mats[] = {&r->input_gap2, &r->target_gap2, &r->dh2_initial, &r->dyhat2_initial,
                       &r->w_initial, &r->dh2_final};
    int ok = r->pair != NULL;
    for (size_t k = 0; k < sizeof mats / sizeof *mats; k++)
        ok &= (*mats[k] = calloc(mm, sizeof(double))) != NULL;
    return ok ? RS_OK : RS_E_NOMEM;
}

/* Train, recording every epoch before its update; the last epoch only records. The first
 * record also tracks the subset's pairs (all[n_pairs..]). Returns RS_OK, RS_S_DIVERGED or
 * RS_S_STOPPED. */
static int train(const rs_nptrial_spec *s, const rs_dataset *d, rs_npnet *net,
                 const rs_npnet_pair *all, int n_all, rs_npnet_probe *probes,
                 rs_nptrajectory *t)
{
    size_t cap = (size_t)t->capacity;
    for (long e = 0; e < s->epochs; e++) {
        if (s->stop && *s->stop)
            return RS_S_STOPPED;
        int n = e == 0 ? n_all : s->n_pairs;
        double loss;
        int st = e + 1 < s->epochs ? rs_npnet_epoch(net, d, all, n, probes, &loss)
                                   : rs_npnet_evaluate(net, d, all, n, probes, &loss);
        t->loss[e] = loss;
        int finite = isfinite(loss);
        for (int p = 0; p < s->n_pairs; p++) {
            t->dh2[(size_t)p * cap + (size_t)e] = probes[p].dh2;
            t->dyhat2[(size_t)p * cap + (size_t)e] = probes[p].dyhat2;
            t->w[(size_t)p * cap + (size_t)e] = probes[p].w;
            finite &= isfinite(probes[p].dh2) && isfinite(probes[p].dyhat2);
        }
        t->epochs_run = e + 1;
        if (st != RS_OK || !finite)
            return RS_S_DIVERGED;
    }
    return RS_OK;
}

/* Eq. 7 with pair p's fitted rates from its epoch-0 values, for plots (Fig. 4). */
static void theory_curves(const rs_nptrial_spec *s, rs_nptrajectory *t, int p,
                          const rs_nptrial_pair_result *pr, rs_theory_solver *solver,
                          double *times, rs_theory_state *out)
{
    size_t n = (size_t)t->epochs_run, off = (size_t)p * (size_t)t->capacity;
    for (size_t e = 0; e < n; e++)
        t->dh2_theory[off + e] = t->dyhat2_theory[off + e] = t->w_theory[off + e] = NAN;
    if (pr->fit.status == RS_S_FIT_FAILED || !solver)
        return;
    rs_theory_params tp = {pr->fit.rate_h, pr->fit.rate_y, pr->input_gap2, pr->target_gap2};
    rs_theory_state init = {pr->dh2_initial, pr->dyhat2_initial, pr->w_initial};
    if (rs_theory_solve(solver, &tp, init, times, n, out) < 0)
        return;
    for (size_t e = 0; e < n; e++) {
        t->dh2_theory[off + e] = out[e].dh2;
        t->dyhat2_theory[off + e] = out[e].dyhat2;
        t->w_theory[off + e] = out[e].w;
    }
}

/* Each tracked pair's fit (as rs_trial_run's: its own gaps for the two-point ones), Eq. 10-11
 * with the fitted rates, and the theory's curves. */
static int fit_pairs(const rs_nptrial_spec *s, rs_nptrajectory *t, rs_nptrial_result *r)
{
    size_t n = (size_t)t->epochs_run, cap = (size_t)t->capacity;
    rs_theory_solver *solver = rs_theory_solver_alloc(s->fit_options.rel_tol);
    double *times = malloc(n * sizeof *times);
    rs_theory_state *out = malloc(n * sizeof *out);
    if (!solver || !times || !out) {
        rs_theory_solver_free(solver);
        free(times);
        free(out);
        return RS_E_NOMEM;
    }
    for (size_t e = 0; e < n; e++)
        times[e] = (double)e;
    for (int p = 0; p < s->n_pairs; p++) {
        rs_nptrial_pair_result *pr = &r->pair[p];
        const double *dh2 = t->dh2 + (size_t)p * cap, *dyhat2 = t->dyhat2 + (size_t)p * cap,
                     *w = t->w + (size_t)p * cap;
        pr->fit.status = RS_S_FIT_FAILED;
        if (s->fit && r->status == RS_OK && n >= 3 &&
            rs_fit_rates(dh2, dyhat2, w, n, pr->input_gap2, pr->target_gap2, &s->fit_options,
                         &pr->fit) != RS_OK)
            pr->fit.status = RS_S_FIT_FAILED;
        if (pr->fit.status != RS_S_FIT_FAILED) {
            rs_theory_params tp = {pr->fit.rate_h, pr->fit.rate_y, pr->input_gap2,
                                   pr->target_gap2};
            rs_theory_state init = {dh2[0], dyhat2[0], w[0]};
            rs_theory_fixed_point(&tp, init, &pr->A_high, &pr->A_low, &pr->dh2_predicted);
        }
        theory_curves(s, t, p, pr, solver, times, out);
    }
    rs_theory_solver_free(solver);
    free(times);
    free(out);
    return RS_OK;
}

int rs_nptrial_predict(rs_nptrial_result *r, double rate_h, double rate_y)
{
    size_t m = r->m;
    r->r_linear = r->r_log = r->r_exp_linear = r->r_exp_log = NAN;
    r->r_log_pairs = r->r_exp_log_pairs = 0;
    if (m < 2)
        return RS_OK;
    if (!r->dh2_predicted)
        r->dh2_predicted = malloc(m * m * sizeof(double));
    if (!r->dh2_predicted_exp)
        r->dh2_predicted_exp = malloc(m * m * sizeof(double));
    if (!r->dh2_predicted || !r->dh2_predicted_exp)
        return RS_E_NOMEM;
    int st = rs_structure_predict(m, r->input_gap2, r->target_gap2, r->dh2_initial,
                                  r->dyhat2_initial, r->w_initial, rate_h, rate_y,
                                  r->dh2_predicted);
    if (st != RS_OK)
        return st;
    if (r->status == RS_OK) {
        r->r_linear = rs_structure_pearson(m, r->dh2_predicted, r->dh2_final, 0, NULL);
        r->r_log = rs_structure_pearson(m, r->dh2_predicted, r->dh2_final, 1, &r->r_log_pairs);
    }
    st = rs_structure_exp_weigh(m, r->dh2_predicted, r->dh2_predicted_exp);
    if (st == RS_E_INVALID) { /* a NaN prediction (a dead pair): no Eq. 50 */
        for (size_t k = 0; k < m * m; k++)
            r->dh2_predicted_exp[k] = NAN;
        return RS_OK;
    }
    if (st != RS_OK)
        return st;
    if (r->status == RS_OK) {
        r->r_exp_linear = rs_structure_pearson(m, r->dh2_predicted_exp, r->dh2_final, 0, NULL);
        r->r_exp_log = rs_structure_pearson(m, r->dh2_predicted_exp, r->dh2_final, 1,
                                            &r->r_exp_log_pairs);
    }
    return RS_OK;
}

int rs_nptrial_run(const rs_nptrial_spec *s, const rs_dataset *d, rs_nptrajectory *t,
                   rs_nptrial_result *r, char *why, size_t why_len)
{
    memset(r, 0, sizeof *r);
    int st = check_spec(s, d, t, why, why_len);
    if (st != RS_OK)
        return st;
    size_t m = s->subset_m, n_sub = m * (m - (m > 0)) / 2;
    int n_all = s->n_pairs + (int)n_sub;
    rs_npnet_pair *all = malloc((size_t)(n_all ? n_all : 1) * sizeof *all);
    rs_npnet_probe *probes = malloc((size_t)(n_all ? n_all : 1) * sizeof *probes);
    if (!all || !probes || alloc_result(r, s->n_pairs, m) != RS_OK) {
        free(all);
        free(probes);
        rs_nptrial_result_free(r);
        return rs_fail(why, why_len, RS_E_NOMEM, "out of memory for the trial's records");
    }
    for (int p = 0; p < s->n_pairs; p++)
        all[p] = s->pairs[p];
    for (size_t a = 0, k = (size_t)s->n_pairs; a < m; a++)
        for (size_t b = a + 1; b < m; b++)
            all[k++] = (rs_npnet_pair){s->subset[a], s->subset[b]};

    rs_npnet *net = rs_npnet_alloc(&s->arch, d->in_dim, d->out_dim, d->n, n_all, s->precision,
                                   &s->opt, why, why_len);
    if (!net || rs_npnet_init(net, s->gain, s->weights_key, s->shuffle_key) != RS_OK) {
        st = RS_E_INVALID; /* npnet refused the net (its why says why, no memory included) */
        rs_npnet_free(net);
        free(all);
        free(probes);
        rs_nptrial_result_free(r);
        return st;
    }
    rs_npnet_set_threads(net, s->threads);
    r->observed_stage = rs_npnet_observed_stage(net);

    double t0 = seconds_now();
    r->status = train(s, d, net, all, n_all, probes, t);
    if (r->status == RS_S_STOPPED) {
        rs_npnet_free(net);
        free(all);
        free(probes);
        return RS_S_STOPPED;
    }
    /* epoch 0 of the subset's pairs (upper triangle, mirrored; zero diagonal from calloc);
     * later epochs track the first n_pairs only, so probes[n_pairs..] still hold epoch 0 */
    for (size_t a = 0, k = (size_t)s->n_pairs; a < m; a++)
        for (size_t b = a + 1; b < m; b++, k++) {
            r->dh2_initial[a * m + b] = r->dh2_initial[b * m + a] = probes[k].dh2;
            r->dyhat2_initial[a * m + b] = r->dyhat2_initial[b * m + a] = probes[k].dyhat2;
            r->w_initial[a * m + b] = r->w_initial[b * m + a] = probes[k].w;
        }
    if (m > 0)
        rs_structure_data_gaps(d->x, d->in_dim, d->y, d->out_dim, s->subset, m, r->input_gap2,
                               r->target_gap2);
    st = RS_OK;
    if (m > 0 && r->status == RS_OK)
        st = rs_npnet_pairwise_dh2(net, d, s->subset, m, r->dh2_final);
    else
        for (size_t k = 0; k < m * m; k++)
            r->dh2_final[k] = NAN;
    r->train_seconds = seconds_now() - t0;
    rs_npnet_free(net);
    free(all);
    free(probes);
    if (st != RS_OK) {
        rs_nptrial_result_free(r);
        return rs_fail(why, why_len, st, "the subset's final distances: %s", rs_strerror(st));
    }

    long last = t->epochs_run - 1;
    size_t cap = (size_t)t->capacity;
    r->epochs_run = t->epochs_run;
    r->loss_initial = t->loss[0];
    r->loss_final = t->loss[last];
    for (int p = 0; p < s->n_pairs; p++) {
        rs_nptrial_pair_result *pr = &r->pair[p];
        const double *xi = d->x + s->pairs[p].i * (size_t)d->in_dim,
                     *xj = d->x + s->pairs[p].j * (size_t)d->in_dim;
        const double *yi = d->y + s->pairs[p].i * (size_t)d->out_dim,
                     *yj = d->y + s->pairs[p].j * (size_t)d->out_dim;
        for (int k = 0; k < d->in_dim; k++)
            pr->input_gap2 += (xj[k] - xi[k]) * (xj[k] - xi[k]);
        for (int k = 0; k < d->out_dim; k++)
            pr->target_gap2 += (yj[k] - yi[k]) * (yj[k] - yi[k]);
        pr->dh2_initial = t->dh2[(size_t)p * cap];
        pr->dyhat2_initial = t->dyhat2[(size_t)p * cap];
        pr->w_initial = t->w[(size_t)p * cap];
        pr->dh2_final = t->dh2[(size_t)p * cap + (size_t)last];
        pr->dyhat2_final = t->dyhat2[(size_t)p * cap + (size_t)last];
        pr->w_final = t->w[(size_t)p * cap + (size_t)last];
        pr->A_high = pr->A_low = pr->dh2_predicted = NAN;
    }
    t0 = seconds_now();
    st = fit_pairs(s, t, r);
    if (st == RS_OK && s->calib_rate_h > 0 && s->calib_rate_y > 0)
        st = rs_nptrial_predict(r, s->calib_rate_h, s->calib_rate_y);
    else
        r->r_linear = r->r_log = r->r_exp_linear = r->r_exp_log = NAN;
    r->fit_seconds = seconds_now() - t0;
    if (st != RS_OK) {
        rs_nptrial_result_free(r);
        return rs_fail(why, why_len, st, "fitting or predicting: %s", rs_strerror(st));
    }
    return RS_OK;
}
