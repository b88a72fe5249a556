/* npnet.c — the N-point engine of npnet.h: its settings, the keyed draws (weights, shuffle)
 * and the epoch's schedule; the arithmetic is npnet_impl.h's, compiled for float64 and
 * float32 (npnet_f64.c, npnet_f32.c). */
#include "repsweep/npnet.h"

#include <gsl/gsl_randist.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "npnet_private.h"
#include "repsweep/rng.h"
#include "repsweep/status.h"

struct rs_npnet {
    rs_arch arch;
    rs_npnet_options opt;
    rs_precision precision;
    int *width;             /* S + 2 (npnet_private.h's rs_np_shape) */
    rs_np_shape shape;
    size_t n_points;
    size_t *order;          /* the point order of the current epoch */
    gsl_rng *shuffle;
    struct rs_npe_f64 *e64; /* exactly one of the two */
    struct rs_npe_f32 *e32;
};

/* Call the engine of the net's precision (ENGINE0: without further arguments). */
#define ENGINE(n, fn, ...)                                                                       \
    ((n)->e64 ? rs_npe_##fn##_f64((n)->e64, __VA_ARGS__) : rs_npe_##fn##_f32((n)->e32, __VA_ARGS__))
#define ENGINE0(n, fn) ((n)->e64 ? rs_npe_##fn##_f64((n)->e64) : rs_npe_##fn##_f32((n)->e32))

void rs_npnet_options_default(rs_npnet_options *o, double lr)
{
    o->optimizer = RS_OPT_SGD;
    o->lr = lr;
    o->batch_size = 0;
    o->beta1 = 0.9; /* torch.optim.Adam's defaults (App. C.3 uses them) */
    o->beta2 = 0.999;
    o->eps = 1e-8;
    o->chunk_rows = 256;
    o->observed_stage = -1;
}

const char *rs_optimizer_name(rs_optimizer o)
{
    return o == RS_OPT_ADAM ? "adam" : "sgd";
}

int rs_optimizer_from_name(const char *name, rs_optimizer *out)
{
    if (strcmp(name, "sgd") == 0)
        *out = RS_OPT_SGD;
    else if (strcmp(name, "adam") == 0)
        *out = RS_OPT_ADAM;
    else
        return RS_E_NOTFOUND;
    return RS_OK;
}

static int check_config(const rs_arch *arch, int in_dim, int out_dim, size_t n_points,
                        int max_pairs, const rs_npnet_options *o, char *why, size_t why_len)
{
    if (rs_arch_validate(arch, why, why_len) != RS_OK)
        return RS_E_INVALID;
    if (arch->conv_channels > 0 || arch->skip || arch->dropout > 0)
        return rs_fail(why, why_len, RS_E_INVALID, "the N-point engine has dense layers only "
                       "(no convolution, skip connections or dropout)");
    if (in_dim < 1 || out_dim < 1 || n_points < 1 || max_pairs < 0)
        return rs_fail(why, why_len, RS_E_INVALID,
                       "in_dim, out_dim and the point count must be >= 1");
    if (!(o->lr > 0) || o->chunk_rows < 1)
        return rs_fail(why, why_len, RS_E_INVALID, "lr must be > 0 and chunk_rows >= 1");
    if ((unsigned)o->optimizer > RS_OPT_ADAM)
        return rs_fail(why, why_len, RS_E_INVALID, "unknown optimizer");
    if (o->optimizer == RS_OPT_ADAM && !(o->beta1 >= 0 && o->beta1 < 1 && o->beta2 >= 0 &&
                                         o->beta2 < 1 && o->eps > 0))
        return rs_fail(why, why_len, RS_E_INVALID, "Adam needs 0 <= beta1, beta2 < 1 and eps > 0");
    if (o->observed_stage < -1 || o->observed_stage >= arch->hidden_layers)
        return rs_fail(why, why_len, RS_E_INVALID, "observed_stage must be -1 or 0..%d",
                       arch->hidden_layers - 1);
    return RS_OK;
}

rs_npnet *rs_npnet_alloc(const rs_arch *arch, int in_dim, int out_dim, size_t n_points,
                         int max_pairs, rs_precision precision, const rs_npnet_options *opt,
                         char *why, size_t why_len)
{
    if (check_config(arch, in_dim, out_dim, n_points, max_pairs, opt, why, why_len) != RS_OK)
        return NULL;
    if ((unsigned)precision > RS_PRECISION_FLOAT32) {
        rs_fail(why, why_len, RS_E_INVALID, "unknown precision");
        return NULL;
    }
    rs_npnet *n = calloc(1, sizeof *n);
    if (!n)
        goto nomem;
    n->arch = *arch;
    n->opt = *opt;
    n->precision = precision;
    n->n_points = n_points;
    int S = arch->hidden_layers;
    n->width = calloc((size_t)S + 2, sizeof *n->width);
    n->order = calloc(n_points, sizeof *n->order);
    n->shuffle = rs_rng_alloc_keyed(0);
    if (!n->width || !n->order || !n->shuffle)
        goto nomem;
    n->width[0] = in_dim;
    for (int s = 1; s <= S; s++)
        n->width[s] = arch->units;
    n->width[S + 1] = out_dim;
    rs_np_shape *sh = &n->shape;
    sh->S = S;
    sh->width = n->width;
    sh->observed = opt->observed_stage >= 0 ? opt->observed_stage : rs_arch_observed_stage(arch);
    sh->R = (size_t)opt->chunk_rows < n_points ? opt->chunk_rows : (int)n_points;
    sh->max_pairs = max_pairs;
    sh->act = arch->activation;
    sh->opt = *opt;
    for (int s = 0; s <= S; s++)
        sh->n_params += (size_t)n->width[s + 1] * ((size_t)n->width[s] + 1);
    if (precision == RS_PRECISION_FLOAT64)
        n->e64 = rs_npe_alloc_f64(sh);
    else
        n->e32 = rs_npe_alloc_f32(sh);
    if (!n->e64 && !n->e32)
        goto nomem;
    for (size_t i = 0; i < n_points; i++)
        n->order[i] = i;
    return n;
nomem:
    rs_fail(why, why_len, RS_E_INVALID, "out of memory for the N-point workspace");
    rs_npnet_free(n);
    return NULL;
}

void rs_npnet_free(rs_npnet *n)
{
    if (!n)
        return;
    rs_npe_free_f64(n->e64);
    rs_npe_free_f32(n->e32);
    if (n->shuffle)
        gsl_rng_free(n->shuffle);
    free(n->order);
    free(n->width);
    free(n);
}

int rs_npnet_observed_stage(const rs_npnet *n)
{
    return n->shape.observed;
}

void rs_npnet_set_threads(rs_npnet *n, int threads)
{
    ENGINE(n, set_threads,
           threads < 1 ? 1 : threads > RS_NPNET_BLOCKS ? RS_NPNET_BLOCKS : threads);
}

static double ziggurat_normal(void *ctx, double sd)
{
    return gsl_ran_gaussian_ziggurat(ctx, sd);
}

int rs_npnet_init(rs_npnet *n, double gain, uint64_t weights_key, uint64_t shuffle_key)
{
    if (!(gain > 0))
        return RS_E_INVALID;
    gsl_rng *r = rs_rng_alloc_keyed(weights_key);
    if (!r)
        return RS_E_NOMEM;
    ENGINE(n, init, gain, ziggurat_normal, r);
    gsl_rng_free(r);
    gsl_rng_set(n->shuffle, (unsigned long)shuffle_key);
    for (size_t i = 0; i < n->n_points; i++)
        n->order[i] = i;
    return RS_OK;
}

static int check_data(const rs_npnet *n, const rs_dataset *d, const rs_npnet_pair *pairs,
                      int n_pairs)
{
    if (d->in_dim != n->width[0] || d->out_dim != n->width[n->shape.S + 1] ||
        d->n > n->n_points || d->n == 0 || n_pairs < 0 || n_pairs > n->shape.max_pairs ||
        (n_pairs > 0 && !pairs))
        return RS_E_INVALID;
    for (int p = 0; p < n_pairs; p++)
        if (pairs[p].i >= d->n || pairs[p].j >= d->n)
            return RS_E_INVALID;
    return RS_OK;
}

/* The record: a pass over all points in identity order (training too if train), the loss
 * and the probes. */
static double record(rs_npnet *n, const rs_dataset *d, int train, const rs_npnet_pair *pairs,
                     int n_pairs, rs_npnet_probe *probes)
{
    double l = ENGINE(n, pass_all, d, train, pairs, probes ? n_pairs : 0);
    if (probes)
        ENGINE(n, probes, d, pairs, n_pairs, probes);
    return l;
}

int rs_npnet_evaluate(rs_npnet *n, const rs_dataset *d, const rs_npnet_pair *pairs, int n_pairs,
                      rs_npnet_probe *probes, double *loss)
{
    if (check_data(n, d, pairs, n_pairs) != RS_OK)
        return RS_E_INVALID;
    double l = record(n, d, 0, pairs, n_pairs, probes);
    if (loss)
        *loss = l;
    return isfinite(l) ? RS_OK : RS_S_DIVERGED;
}

int rs_npnet_epoch(rs_npnet *n, const rs_dataset *d, const rs_npnet_pair *pairs, int n_pairs,
                   rs_npnet_probe *probes, double *loss)
{
    if (check_data(n, d, pairs, n_pairs) != RS_OK)
        return RS_E_INVALID;
    int full = n->opt.batch_size == 0 || n->opt.batch_size >= d->n;
    if (full)
        ENGINE0(n, zero_grad);
    double l = record(n, d, full, pairs, n_pairs, probes);
    if (loss)
        *loss = l;
    if (!isfinite(l))
        return RS_S_DIVERGED;
    if (full) {
        ENGINE0(n, update);
        return RS_OK;
    }
    /* a new permutation every epoch: Fisher-Yates from the identity */
    for (size_t i = 0; i < d->n; i++)
        n->order[i] = i;
    for (size_t i = d->n - 1; i > 0; i--) {
        size_t j = gsl_rng_uniform_int(n->shuffle, i + 1), t = n->order[i];
        n->order[i] = n->order[j];
        n->order[j] = t;
    }
    for (size_t k = 0; k < d->n; k += n->opt.batch_size) {
        size_t count = d->n - k < n->opt.batch_size ? d->n - k : n->opt.batch_size;
        ENGINE0(n, zero_grad);
        ENGINE(n, batch_gradient, d, n->order + k, count);
        ENGINE0(n, update);
    }
    return RS_OK;
}

int rs_npnet_pairwise_dh2(rs_npnet *n, const rs_dataset *d, const size_t *idx, size_t m,
                          double *out)
{
    if (check_data(n, d, NULL, 0) != RS_OK)
        return RS_E_INVALID;
    for (size_t k = 0; k < m; k++)
        if (idx[k] >= d->n)
            return RS_E_INVALID;
    return ENGINE(n, pairwise, d, idx, m, out);
}

const size_t *rs_npnet_order(const rs_npnet *n)
{
    return n->order;
}

size_t rs_npnet_param_count(const rs_npnet *n)
{
    return n->shape.n_params;
}

void rs_npnet_get_params(const rs_npnet *n, double *out)
{
    ENGINE(n, params, out, NULL);
}

void rs_npnet_set_params(rs_npnet *n, const double *in)
{
    ENGINE(n, params, NULL, in);
}
