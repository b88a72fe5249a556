/* npnet.c — the N-point engine of npnet.h (float64).
 *
 * Layout: a chunk's activations are r x width row-major matrices (row k = the chunk's k-th
 * point), weights (out x in) row-major as PyTorch's, all parameters in one flat vector
 * (net.h's order) so that the optimizers run over one array. */
#include "repsweep/npnet.h"

#include <cblas.h>
/* gsl_randist.h brings GSL's own cblas declarations (through gsl_blas_types.h), which clash
 * with OpenBLAS's cblas.h above; its include guard keeps them out (only the normal deviates
 * are wanted from it). */
#define __GSL_CBLAS_H__
#include <gsl/gsl_randist.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "activation.h"
#include "repsweep/rng.h"
#include "repsweep/status.h"

struct rs_npnet {
    rs_arch arch;
    rs_npnet_options opt;
    int S;                  /* stages; map s = 0..S, map S the output layer */
    int *width;             /* S + 2: width[0] = in_dim, width[s + 1] = map s's outputs */
    int observed;
    size_t n_points;
    int max_pairs;
    size_t n_params;
    double *params, *grad, *adam_m, *adam_v;
    long adam_t;
    double **W, **b, **gW, **gb; /* S + 1 each, into params / grad */
    int R;                  /* chunk rows */
    double *xin, *yt;       /* the chunk's inputs (R x in_dim) and targets (R x out_dim) */
    double **z, **a;        /* per map: pre-activation, activation (R x width); a[S] = z[S] */
    double *g0, *g1;        /* backward scratch, R x the widest map */
    size_t *order;          /* the point order of the current epoch */
    double *track_h, *track_f; /* 2 * max_pairs rows: h at the observed layer, f */
    gsl_rng *shuffle;
    int threads;            /* OpenMP threads over the products' row blocks */
};

static int fail(char *why, size_t why_len, const char *fmt, ...)
{
    if (why && why_len) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(why, why_len, fmt, ap);
        va_end(ap);
    }
    return RS_E_INVALID;
}

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
        return fail(why, why_len, "the N-point engine has dense layers only (no convolution, "
                                  "skip connections or dropout)");
    if (in_dim < 1 || out_dim < 1 || n_points < 1 || max_pairs < 0)
        return fail(why, why_len, "in_dim, out_dim and the point count must be >= 1");
    if (!(o->lr > 0) || o->chunk_rows < 1)
        return fail(why, why_len, "lr must be > 0 and chunk_rows >= 1");
    if ((unsigned)o->optimizer > RS_OPT_ADAM)
        return fail(why, why_len, "unknown optimizer");
    if (o->optimizer == RS_OPT_ADAM && !(o->beta1 >= 0 && o->beta1 < 1 && o->beta2 >= 0 &&
                                         o->beta2 < 1 && o->eps > 0))
        return fail(why, why_len, "Adam needs 0 <= beta1, beta2 < 1 and eps > 0");
    if (o->observed_stage < -1 || o->observed_stage >= arch->hidden_layers)
        return fail(why, why_len, "observed_stage must be -1 or 0..%d", arch->hidden_layers - 1);
    return RS_OK;
}

rs_npnet *rs_npnet_alloc(const rs_arch *arch, int in_dim, int out_dim, size_t n_points,
                         int max_pairs, const rs_npnet_options *opt, char *why, size_t why_len)
{
    if (check_config(arch, in_dim, out_dim, n_points, max_pairs, opt, why, why_len) != RS_OK)
        return NULL;
    rs_npnet *n = calloc(1, sizeof *n);
    if (!n)
        goto nomem;
    n->arch = *arch;
    n->opt = *opt;
    n->S = arch->hidden_layers;
    n->observed = opt->observed_stage >= 0 ? opt->observed_stage : rs_arch_observed_stage(arch);
    n->n_points = n_points;
    n->max_pairs = max_pairs;
    n->threads = 1;
    n->R = (size_t)opt->chunk_rows < n_points ? opt->chunk_rows : (int)n_points;
    int S = n->S, maps = S + 1, wide = in_dim > arch->units ? in_dim : arch->units;
    wide = wide > out_dim ? wide : out_dim;
    n->width = calloc((size_t)S + 2, sizeof *n->width);
    n->W = calloc((size_t)maps, sizeof *n->W);
    n->b = calloc((size_t)maps, sizeof *n->b);
    n->gW = calloc((size_t)maps, sizeof *n->gW);
    n->gb = calloc((size_t)maps, sizeof *n->gb);
    n->z = calloc((size_t)maps, sizeof *n->z);
    n->a = calloc((size_t)maps, sizeof *n->a);
    if (!n->width || !n->W || !n->b || !n->gW || !n->gb || !n->z || !n->a)
        goto nomem;
    n->width[0] = in_dim;
    for (int s = 1; s <= S; s++)
        n->width[s] = arch->units;
    n->width[S + 1] = out_dim;
    for (int s = 0; s < maps; s++)
        n->n_params += (size_t)n->width[s + 1] * ((size_t)n->width[s] + 1);
    size_t R = (size_t)n->R, np = n->n_params;
    n->params = calloc(np, sizeof(double));
    n->grad = calloc(np, sizeof(double));
    n->adam_m = opt->optimizer == RS_OPT_ADAM ? calloc(np, sizeof(double)) : NULL;
    n->adam_v = opt->optimizer == RS_OPT_ADAM ? calloc(np, sizeof(double)) : NULL;
    n->xin = calloc(R * (size_t)in_dim, sizeof(double));
    n->yt = calloc(R * (size_t)out_dim, sizeof(double));
    n->g0 = calloc(R * (size_t)wide, sizeof(double));
    n->g1 = calloc(R * (size_t)wide, sizeof(double));
    n->order = calloc(n_points, sizeof *n->order);
    n->track_h = calloc(2 * (size_t)max_pairs * (size_t)arch->units + 1, sizeof(double));
    n->track_f = calloc(2 * (size_t)max_pairs * (size_t)out_dim + 1, sizeof(double));
    n->shuffle = rs_rng_alloc_keyed(0);
    if (!n->params || !n->grad || (opt->optimizer == RS_OPT_ADAM && (!n->adam_m || !n->adam_v)) ||
        !n->xin || !n->yt || !n->g0 || !n->g1 || !n->order || !n->track_h || !n->track_f ||
        !n->shuffle)
        goto nomem;
    size_t off = 0;
    for (int s = 0; s < maps; s++) {
        size_t nw = (size_t)n->width[s + 1] * (size_t)n->width[s];
        n->W[s] = n->params + off;
        n->gW[s] = n->grad + off;
        off += nw;
        n->b[s] = n->params + off;
        n->gb[s] = n->grad + off;
        off += (size_t)n->width[s + 1];
        n->z[s] = calloc(R * (size_t)n->width[s + 1], sizeof(double));
        n->a[s] = s < S ? calloc(R * (size_t)n->width[s + 1], sizeof(double)) : n->z[s];
        if (!n->z[s] || !n->a[s])
            goto nomem;
    }
    for (size_t i = 0; i < n_points; i++)
        n->order[i] = i;
    return n;
nomem:
    fail(why, why_len, "out of memory for the N-point workspace");
    rs_npnet_free(n);
    return NULL;
}

void rs_npnet_free(rs_npnet *n)
{
    if (!n)
        return;
    for (int s = 0; n->z && n->a && s <= n->S; s++) {
        if (s < n->S)
            free(n->a[s]);
        free(n->z[s]);
    }
    free(n->width);
    free(n->W);
    free(n->b);
    free(n->gW);
    free(n->gb);
    free(n->z);
    free(n->a);
    free(n->params);
    free(n->grad);
    free(n->adam_m);
    free(n->adam_v);
    free(n->xin);
    free(n->yt);
    free(n->g0);
    free(n->g1);
    free(n->order);
    free(n->track_h);
    free(n->track_f);
    if (n->shuffle)
        gsl_rng_free(n->shuffle);
    free(n);
}

int rs_npnet_observed_stage(const rs_npnet *net)
{
    return net->observed;
}

void rs_npnet_set_threads(rs_npnet *net, int threads)
{
    net->threads = threads < 1 ? 1 : threads > RS_NPNET_BLOCKS ? RS_NPNET_BLOCKS : threads;
}

/* C (m x nc) = op(A) op(B) + beta C, row-major, cut into fixed blocks of C's rows: m / 8
 * rounded up to a multiple of 4 (one block below 32 rows), each a single-threaded dgemm with
 * the whole summed dimension k. The blocks depend on the shapes only, so the bits do not
 * depend on how many threads share them. Threads only while OpenBLAS runs single-threaded in
 * a threaded build (as net_impl.h: a serial OpenBLAS may lack the locking for concurrent
 * calls; a multi-threaded one must not be called from an OpenMP team). */
static void gemm_rows(const rs_npnet *n, CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int m, int nc,
                      int k, const double *A, int lda, const double *B, int ldb, double beta,
                      double *C, int ldc)
{
    int rows = m < 32 ? m : ((m + RS_NPNET_BLOCKS - 1) / RS_NPNET_BLOCKS + 3) / 4 * 4;
    int blocks = (m + rows - 1) / rows;
    /* below ~2^18 multiply-adds (tens of microseconds) forking costs more than it saves;
     * the team never changes the bits, only the blocks do */
    int big = (double)m * nc * k >= (double)(1 << 18);
    int team = n->threads > 1 && blocks > 1 && big && openblas_get_num_threads() == 1 &&
                       openblas_get_parallel() != 0
                   ? (n->threads < blocks ? n->threads : blocks)
                   : 1;
#pragma omp parallel for schedule(static) num_threads(team)
    for (int bk = 0; bk < blocks; bk++) {
        int r0 = bk * rows, rr = m - r0 < rows ? m - r0 : rows;
        /* rows r0.. of op(A): rows of A, or its columns when transposed */
        const double *Ab = ta == CblasNoTrans ? A + (size_t)r0 * (size_t)lda : A + r0;
        cblas_dgemm(CblasRowMajor, ta, tb, rr, nc, k, 1.0, Ab, lda, B, ldb, beta,
                    C + (size_t)r0 * (size_t)ldc, ldc);
    }
}

int rs_npnet_init(rs_npnet *n, double gain, uint64_t weights_key, uint64_t shuffle_key)
{
    if (!(gain > 0))
        return RS_E_INVALID;
    gsl_rng *r = rs_rng_alloc_keyed(weights_key);
    if (!r)
        return RS_E_NOMEM;
    /* net.c's draw: map by map, weights row-major, ziggurat normals with Xavier's sd */
    for (int s = 0; s <= n->S; s++) {
        double fan_in = n->width[s], fan_out = n->width[s + 1];
        double sd = gain * sqrt(2.0 / (fan_in + fan_out));
        size_t nw = (size_t)n->width[s + 1] * (size_t)n->width[s];
        for (size_t k = 0; k < nw; k++)
            n->W[s][k] = gsl_ran_gaussian_ziggurat(r, sd);
        memset(n->b[s], 0, (size_t)n->width[s + 1] * sizeof(double));
    }
    gsl_rng_free(r);
    if (n->adam_m) {
        memset(n->adam_m, 0, n->n_params * sizeof(double));
        memset(n->adam_v, 0, n->n_params * sizeof(double));
    }
    n->adam_t = 0;
    gsl_rng_set(n->shuffle, (unsigned long)shuffle_key);
    for (size_t i = 0; i < n->n_points; i++)
        n->order[i] = i;
    return RS_OK;
}

/* ---- one chunk of rows ---- */

/* Copy the chunk's inputs and targets: rows[k] if rows, else first + k. */
static void gather(rs_npnet *n, const rs_dataset *d, const size_t *rows, size_t first, int r)
{
    size_t in = (size_t)d->in_dim, out = (size_t)d->out_dim;
    for (int k = 0; k < r; k++) {
        size_t i = rows ? rows[k] : first + (size_t)k;
        memcpy(n->xin + (size_t)k * in, d->x + i * in, in * sizeof(double));
        memcpy(n->yt + (size_t)k * out, d->y + i * out, out * sizeof(double));
    }
}

/* After this, z[s] and a[s] hold the chunk's r rows for every map; z[S] is the output. */
static void forward(rs_npnet *n, int r)
{
    for (int s = 0; s <= n->S; s++) {
        int win = n->width[s], wout = n->width[s + 1];
        const double *in = s == 0 ? n->xin : n->a[s - 1];
        double *z = n->z[s];
        gemm_rows(n, CblasNoTrans, CblasTrans, r, wout, win, in, win, n->W[s], win, 0.0, z,
                  wout);
        for (int k = 0; k < r; k++)
            for (int o = 0; o < wout; o++)
                z[(size_t)k * wout + o] += n->b[s][o];
        if (s < n->S) {
            size_t m = (size_t)r * (size_t)wout;
            rs_activation act = n->arch.activation;
            for (size_t k = 0; k < m; k++)
                n->a[s][k] = rs_act_value(act, z[k]);
        }
    }
}

/* Sum over the chunk of ||f - y||^2. */
static double chunk_sumsq(const rs_npnet *n, int r)
{
    size_t m = (size_t)r * (size_t)n->width[n->S + 1];
    double s = 0;
    for (size_t k = 0; k < m; k++) {
        double e = n->z[n->S][k] - n->yt[k];
        s += e * e;
    }
    return s;
}

/* Add the chunk's part of the gradient of 1/2 * (1/B) sum ||f - y||^2 (scale = 1/B) to grad.
 * Needs forward's activations; overwrites g0, g1. */
static void backward(rs_npnet *n, int r, double scale)
{
    int S = n->S, out = n->width[S + 1];
    double *G = n->g0, *Gn = n->g1;
    for (size_t k = 0; k < (size_t)r * (size_t)out; k++)
        G[k] = (n->z[S][k] - n->yt[k]) * scale;
    for (int s = S; s >= 0; s--) {
        int win = n->width[s], wout = n->width[s + 1];
        const double *in = s == 0 ? n->xin : n->a[s - 1];
        /* dW += G^T in ; db += column sums of G */
        gemm_rows(n, CblasTrans, CblasNoTrans, wout, win, r, G, wout, in, win, 1.0, n->gW[s],
                  win);
        for (int k = 0; k < r; k++)
            for (int o = 0; o < wout; o++)
                n->gb[s][o] += G[(size_t)k * wout + o];
        if (s == 0)
            break;
        /* dL/da[s-1] = G W, then through the activation's slope at z[s-1] */
        gemm_rows(n, CblasNoTrans, CblasNoTrans, r, win, wout, G, wout, n->W[s], win, 0.0, Gn,
                  win);
        size_t m = (size_t)r * (size_t)win;
        rs_activation act = n->arch.activation;
        const double *zp = n->z[s - 1];
        for (size_t k = 0; k < m; k++)
            Gn[k] *= rs_act_slope(act, zp[k]);
        double *t = G;
        G = Gn;
        Gn = t;
    }
}

/* Copy the tracked points that fall in the chunk [first, first + r) of the identity order. */
static void capture(rs_npnet *n, size_t first, int r, const rs_npnet_pair *pairs, int n_pairs)
{
    int units = n->arch.units, out = n->width[n->S + 1];
    for (int t = 0; t < 2 * n_pairs; t++) {
        size_t i = t % 2 ? pairs[t / 2].j : pairs[t / 2].i;
        if (i < first || i >= first + (size_t)r)
            continue;
        size_t k = i - first;
        memcpy(n->track_h + (size_t)t * units, n->a[n->observed] + k * units,
               (size_t)units * sizeof(double));
        memcpy(n->track_f + (size_t)t * out, n->z[n->S] + k * out, (size_t)out * sizeof(double));
    }
}

static void pair_probes(const rs_npnet *n, const rs_dataset *d, const rs_npnet_pair *pairs,
                        int n_pairs, rs_npnet_probe *probes)
{
    int units = n->arch.units, out = d->out_dim;
    for (int p = 0; p < n_pairs; p++) {
        const double *hi = n->track_h + (size_t)(2 * p) * units, *hj = hi + units;
        const double *fi = n->track_f + (size_t)(2 * p) * out, *fj = fi + out;
        const double *yi = d->y + pairs[p].i * out, *yj = d->y + pairs[p].j * out;
        double dh2 = 0, dyhat2 = 0, align = 0;
        for (int u = 0; u < units; u++)
            dh2 += (hj[u] - hi[u]) * (hj[u] - hi[u]);
        for (int o = 0; o < out; o++) {
            double df = fj[o] - fi[o];
            dyhat2 += df * df;
            align += df * (yj[o] - yi[o]);
        }
        probes[p] = (rs_npnet_probe){dh2, dyhat2, dyhat2 - align};
    }
}

/* ---- steps and epochs ---- */

static int check_data(const rs_npnet *n, const rs_dataset *d, const rs_npnet_pair *pairs,
                      int n_pairs)
{
    if (d->in_dim != n->width[0] || d->out_dim != n->width[n->S + 1] || d->n > n->n_points ||
        d->n == 0 || n_pairs < 0 || n_pairs > n->max_pairs || (n_pairs > 0 && !pairs))
        return RS_E_INVALID;
    for (int p = 0; p < n_pairs; p++)
        if (pairs[p].i >= d->n || pairs[p].j >= d->n)
            return RS_E_INVALID;
    return RS_OK;
}

/* Forward over the whole data set in identity order (and, if train, accumulate the full-batch
 * gradient); returns 1/2 mean ||f - y||^2 and captures the tracked points. */
static double pass_all(rs_npnet *n, const rs_dataset *d, int train, const rs_npnet_pair *pairs,
                       int n_pairs)
{
    double sumsq = 0, scale = 1.0 / (double)d->n;
    for (size_t first = 0; first < d->n; first += (size_t)n->R) {
        int r = d->n - first < (size_t)n->R ? (int)(d->n - first) : n->R;
        gather(n, d, NULL, first, r);
        forward(n, r);
        sumsq += chunk_sumsq(n, r);
        capture(n, first, r, pairs, n_pairs);
        if (train)
            backward(n, r, scale);
    }
    return 0.5 * sumsq / (double)d->n;
}

/* The gradient of the batch rows[0..count-1] (in chunks), into grad. */
static void batch_gradient(rs_npnet *n, const rs_dataset *d, const size_t *rows, size_t count)
{
    double scale = 1.0 / (double)count;
    for (size_t k = 0; k < count; k += (size_t)n->R) {
        int r = count - k < (size_t)n->R ? (int)(count - k) : n->R;
        gather(n, d, rows + k, 0, r);
        forward(n, r);
        backward(n, r, scale);
    }
}

static void update(rs_npnet *n)
{
    double lr = n->opt.lr;
    size_t np = n->n_params;
    double *p = n->params, *g = n->grad;
    if (n->opt.optimizer == RS_OPT_SGD) {
        for (size_t k = 0; k < np; k++)
            p[k] -= lr * g[k];
        return;
    }
    /* torch.optim.Adam (amsgrad off, no weight decay), its single-tensor formula in its
     * order of operations: m.lerp_(g, 1 - b1); v.mul_(b2).addcmul_(g, g, 1 - b2);
     * p.addcdiv_(m, sqrt(v) / sqrt(bc2) + eps, -lr / bc1) */
    double b1 = n->opt.beta1, b2 = n->opt.beta2, eps = n->opt.eps;
    n->adam_t++;
    double bc1 = 1 - pow(b1, (double)n->adam_t), bc2 = 1 - pow(b2, (double)n->adam_t);
    double neg_step = -(lr / bc1), bc2_sqrt = sqrt(bc2), w1 = 1 - b1, w2 = 1 - b2;
    double *m = n->adam_m, *v = n->adam_v;
    for (size_t k = 0; k < np; k++) {
        m[k] = m[k] + w1 * (g[k] - m[k]);
        v[k] = v[k] * b2 + w2 * g[k] * g[k];
        p[k] = p[k] + neg_step * (m[k] / (sqrt(v[k]) / bc2_sqrt + eps));
    }
}

int rs_npnet_evaluate(rs_npnet *n, const rs_dataset *d, const rs_npnet_pair *pairs, int n_pairs,
                      rs_npnet_probe *probes, double *loss)
{
    if (check_data(n, d, pairs, n_pairs) != RS_OK)
        return RS_E_INVALID;
    double l = pass_all(n, d, 0, pairs, probes ? n_pairs : 0);
    if (probes)
        pair_probes(n, d, pairs, n_pairs, probes);
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
    memset(n->grad, 0, n->n_params * sizeof(double));
    double l = pass_all(n, d, full, pairs, probes ? n_pairs : 0);
    if (probes)
        pair_probes(n, d, pairs, n_pairs, probes);
    if (loss)
        *loss = l;
    if (!isfinite(l))
        return RS_S_DIVERGED;
    if (full) {
        update(n);
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
        memset(n->grad, 0, n->n_params * sizeof(double));
        batch_gradient(n, d, n->order + k, count);
        update(n);
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
    size_t units = (size_t)n->arch.units;
    double *h = malloc((m ? m : 1) * units * sizeof(double));
    if (!h)
        return RS_E_NOMEM;
    for (size_t k = 0; k < m; k += (size_t)n->R) {
        int r = m - k < (size_t)n->R ? (int)(m - k) : n->R;
        gather(n, d, idx + k, 0, r);
        forward(n, r);
        memcpy(h + k * units, n->a[n->observed], (size_t)r * units * sizeof(double));
    }
    for (size_t a = 0; a < m; a++) {
        out[a * m + a] = 0;
        for (size_t b = a + 1; b < m; b++) {
            double s = 0;
            for (size_t u = 0; u < units; u++) {
                double e = h[b * units + u] - h[a * units + u];
                s += e * e;
            }
            out[a * m + b] = out[b * m + a] = s;
        }
    }
    free(h);
    return RS_OK;
}

const size_t *rs_npnet_order(const rs_npnet *n)
{
    return n->order;
}

size_t rs_npnet_param_count(const rs_npnet *n)
{
    return n->n_params;
}

void rs_npnet_get_params(const rs_npnet *n, double *out)
{
    memcpy(out, n->params, n->n_params * sizeof(double));
}

void rs_npnet_set_params(rs_npnet *n, const double *in)
{
    memcpy(n->params, in, n->n_params * sizeof(double));
}
