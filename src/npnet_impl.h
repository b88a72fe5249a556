/* npnet_impl.h — the precision-generic N-point engine, compiled twice: npnet_f64.c includes it
 * with REAL = double, npnet_f32.c with REAL = float (one source, as net_impl.h). Before
 * including, define REAL, NP(name) (suffixes a name), NP_ENGINE (the engine's struct tag) and
 * GEMM (cblas_dgemm or cblas_sgemm).
 * Everything here is static except the entry points named through NP().
 *
 * Layout: a chunk's activations are r x width row-major matrices (row k = the chunk's k-th
 * point), weights (out x in) row-major as PyTorch's, all parameters in one flat REAL vector
 * (net.h's order) so that the optimizers run over one array. The data set, the probes and the
 * sums of the loss stay in double. */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "activation.h"
#include "repsweep/blas.h"
#include "npnet_private.h"
#include "repsweep/status.h"

struct NP_ENGINE {
    rs_np_shape sh;
    int threads;                /* OpenMP threads over the products' row blocks */
    REAL *params, *grad, *adam_m, *adam_v;
    long adam_t;
    REAL **W, **b, **gW, **gb;  /* S + 1 each, into params / grad */
    REAL *xin, *yt;             /* the chunk's inputs (R x in_dim) and targets (R x out_dim) */
    REAL **z, **a;              /* per map: pre-activation, activation (R x width); a[S] = z[S] */
    REAL *g0, *g1;              /* backward scratch, R x the widest map */
    REAL *track_h, *track_f;    /* 2 * max_pairs rows: h at the observed layer, f */
};

static REAL *NP(array)(size_t n)
{
    return calloc(n ? n : 1, sizeof(REAL));
}

void NP(free)(struct NP_ENGINE *e)
{
    if (!e)
        return;
    for (int s = 0; e->z && e->a && s <= e->sh.S; s++) {
        if (s < e->sh.S)
            free(e->a[s]);
        free(e->z[s]);
    }
    free(e->W);
    free(e->b);
    free(e->gW);
    free(e->gb);
    free(e->z);
    free(e->a);
    free(e->params);
    free(e->grad);
    free(e->adam_m);
    free(e->adam_v);
    free(e->xin);
    free(e->yt);
    free(e->g0);
    free(e->g1);
    free(e->track_h);
    free(e->track_f);
    free(e);
}

struct NP_ENGINE *NP(alloc)(const rs_np_shape *sh)
{
    struct NP_ENGINE *e = calloc(1, sizeof *e);
    if (!e)
        return NULL;
    e->sh = *sh;
    e->threads = 1;
    int S = sh->S, maps = S + 1, wide = 0;
    for (int s = 0; s <= S + 1; s++)
        wide = sh->width[s] > wide ? sh->width[s] : wide;
    size_t R = (size_t)sh->R, np = sh->n_params, units = (size_t)sh->width[1];
    size_t in = (size_t)sh->width[0], out = (size_t)sh->width[S + 1];
    int adam = sh->opt.optimizer == RS_OPT_ADAM;
    e->W = calloc((size_t)maps, sizeof *e->W);
    e->b = calloc((size_t)maps, sizeof *e->b);
    e->gW = calloc((size_t)maps, sizeof *e->gW);
    e->gb = calloc((size_t)maps, sizeof *e->gb);
    e->z = calloc((size_t)maps, sizeof *e->z);
    e->a = calloc((size_t)maps, sizeof *e->a);
    e->params = NP(array)(np);
    e->grad = NP(array)(np);
    e->adam_m = adam ? NP(array)(np) : NULL;
    e->adam_v = adam ? NP(array)(np) : NULL;
    e->xin = NP(array)(R * in);
    e->yt = NP(array)(R * out);
    e->g0 = NP(array)(R * (size_t)wide);
    e->g1 = NP(array)(R * (size_t)wide);
    e->track_h = NP(array)(2 * (size_t)sh->max_pairs * units);
    e->track_f = NP(array)(2 * (size_t)sh->max_pairs * out);
    if (!e->W || !e->b || !e->gW || !e->gb || !e->z || !e->a || !e->params || !e->grad ||
        (adam && (!e->adam_m || !e->adam_v)) || !e->xin || !e->yt || !e->g0 || !e->g1 ||
        !e->track_h || !e->track_f) {
        NP(free)(e);
        return NULL;
    }
    size_t off = 0;
    for (int s = 0; s < maps; s++) {
        size_t w_out = (size_t)sh->width[s + 1];
        e->W[s] = e->params + off;
        e->gW[s] = e->grad + off;
        off += w_out * (size_t)sh->width[s];
        e->b[s] = e->params + off;
        e->gb[s] = e->grad + off;
        off += w_out;
        e->z[s] = NP(array)(R * w_out);
        e->a[s] = s < S ? NP(array)(R * w_out) : e->z[s];
        if (!e->z[s] || !e->a[s]) {
            NP(free)(e);
            return NULL;
        }
    }
    return e;
}

void NP(set_threads)(struct NP_ENGINE *e, int threads)
{
    e->threads = threads;
}

void NP(init)(struct NP_ENGINE *e, double gain, rs_np_normal_fn normal, void *ctx)
{
    /* net.c's draw: map by map, weights row-major, normals with Xavier's sd, zero biases */
    for (int s = 0; s <= e->sh.S; s++) {
        double fan_in = e->sh.width[s], fan_out = e->sh.width[s + 1];
        double sd = gain * sqrt(2.0 / (fan_in + fan_out));
        size_t nw = (size_t)e->sh.width[s + 1] * (size_t)e->sh.width[s];
        for (size_t k = 0; k < nw; k++)
            e->W[s][k] = (REAL)normal(ctx, sd);
        memset(e->b[s], 0, (size_t)e->sh.width[s + 1] * sizeof(REAL));
    }
    if (e->adam_m) {
        memset(e->adam_m, 0, e->sh.n_params * sizeof(REAL));
        memset(e->adam_v, 0, e->sh.n_params * sizeof(REAL));
    }
    e->adam_t = 0;
}

/* ---- one chunk of rows ---- */

/* C (m x nc) = op(A) op(B) + beta C, row-major, cut into fixed blocks of C's rows: m / 8
 * rounded up to a multiple of 4 (one block below 32 rows), each a single-threaded GEMM with
 * the whole summed dimension k. The blocks depend on the shapes only, so the bits do not
 * depend on how many threads share them. Threads only while OpenBLAS runs single-threaded in
 * a threaded build (as net_impl.h: a serial OpenBLAS may lack the locking for concurrent
 * calls; a multi-threaded one must not be called from an OpenMP team), and only for products
 * of 2^18 multiply-adds or more (tens of microseconds; forking costs more below). */
static void NP(gemm_rows)(const struct NP_ENGINE *e, enum CBLAS_TRANSPOSE ta, enum CBLAS_TRANSPOSE tb, int m,
                          int nc, int k, const REAL *A, int lda, const REAL *B, int ldb,
                          REAL beta, REAL *C, int ldc)
{
    int rows = m < 32 ? m : ((m + RS_NPNET_BLOCKS - 1) / RS_NPNET_BLOCKS + 3) / 4 * 4;
    int blocks = (m + rows - 1) / rows;
    int big = (double)m * nc * k >= (double)(1 << 18);
    int team = e->threads > 1 && blocks > 1 && big && rs_blas_concurrent_calls_safe()
                   ? (e->threads < blocks ? e->threads : blocks)
                   : 1;
#pragma omp parallel for schedule(static) num_threads(team)
    for (int bk = 0; bk < blocks; bk++) {
        int r0 = bk * rows, rr = m - r0 < rows ? m - r0 : rows;
        /* rows r0.. of op(A): rows of A, or its columns when transposed */
        const REAL *Ab = ta == CblasNoTrans ? A + (size_t)r0 * (size_t)lda : A + r0;
        GEMM(CblasRowMajor, ta, tb, rr, nc, k, 1, Ab, lda, B, ldb, beta,
             C + (size_t)r0 * (size_t)ldc, ldc);
    }
}

/* Copy the chunk's inputs and targets: rows[k] if rows, else first + k. */
static void NP(gather)(struct NP_ENGINE *e, const rs_dataset *d, const size_t *rows, size_t first,
                       int r)
{
    size_t in = (size_t)d->in_dim, out = (size_t)d->out_dim;
    for (int k = 0; k < r; k++) {
        size_t i = rows ? rows[k] : first + (size_t)k;
        for (size_t c = 0; c < in; c++)
            e->xin[(size_t)k * in + c] = (REAL)d->x[i * in + c];
        for (size_t c = 0; c < out; c++)
            e->yt[(size_t)k * out + c] = (REAL)d->y[i * out + c];
    }
}

/* After this, z[s] and a[s] hold the chunk's r rows for every map; z[S] is the output. */
static void NP(forward)(struct NP_ENGINE *e, int r)
{
    for (int s = 0; s <= e->sh.S; s++) {
        int win = e->sh.width[s], wout = e->sh.width[s + 1];
        const REAL *in = s == 0 ? e->xin : e->a[s - 1];
        REAL *z = e->z[s];
        NP(gemm_rows)(e, CblasNoTrans, CblasTrans, r, wout, win, in, win, e->W[s], win, 0, z,
                      wout);
        for (int k = 0; k < r; k++)
            for (int o = 0; o < wout; o++)
                z[(size_t)k * wout + o] += e->b[s][o];
        if (s < e->sh.S) {
            size_t m = (size_t)r * (size_t)wout;
            for (size_t k = 0; k < m; k++)
                e->a[s][k] = (REAL)rs_act_value(e->sh.act, z[k]);
        }
    }
}

/* Sum over the chunk of ||f - y||^2, in double. */
static double NP(chunk_sumsq)(const struct NP_ENGINE *e, int r)
{
    size_t m = (size_t)r * (size_t)e->sh.width[e->sh.S + 1];
    double s = 0;
    for (size_t k = 0; k < m; k++) {
        double err = (double)e->z[e->sh.S][k] - (double)e->yt[k];
        s += err * err;
    }
    return s;
}

/* Add the chunk's part of the gradient of 1/2 * (1/B) sum ||f - y||^2 (scale = 1/B) to grad.
 * Needs forward's activations; overwrites g0, g1. */
static void NP(backward)(struct NP_ENGINE *e, int r, REAL scale)
{
    int S = e->sh.S, out = e->sh.width[S + 1];
    REAL *G = e->g0, *Gn = e->g1;
    for (size_t k = 0; k < (size_t)r * (size_t)out; k++)
        G[k] = (e->z[S][k] - e->yt[k]) * scale;
    for (int s = S; s >= 0; s--) {
        int win = e->sh.width[s], wout = e->sh.width[s + 1];
        const REAL *in = s == 0 ? e->xin : e->a[s - 1];
        /* dW += G^T in ; db += column sums of G */
        NP(gemm_rows)(e, CblasTrans, CblasNoTrans, wout, win, r, G, wout, in, win, 1, e->gW[s],
                      win);
        for (int k = 0; k < r; k++)
            for (int o = 0; o < wout; o++)
                e->gb[s][o] += G[(size_t)k * wout + o];
        if (s == 0)
            break;
        /* dL/da[s-1] = G W, then through the activation's slope at z[s-1] */
        NP(gemm_rows)(e, CblasNoTrans, CblasNoTrans, r, win, wout, G, wout, e->W[s], win, 0, Gn,
                      win);
        size_t m = (size_t)r * (size_t)win;
        const REAL *zp = e->z[s - 1];
        for (size_t k = 0; k < m; k++)
            Gn[k] *= (REAL)rs_act_slope(e->sh.act, zp[k]);
        REAL *t = G;
        G = Gn;
        Gn = t;
    }
}

/* Copy the tracked points that fall in the chunk [first, first + r) of the identity order. */
static void NP(capture)(struct NP_ENGINE *e, size_t first, int r, const rs_npnet_pair *pairs,
                        int n_pairs)
{
    size_t units = (size_t)e->sh.width[1], out = (size_t)e->sh.width[e->sh.S + 1];
    for (int t = 0; t < 2 * n_pairs; t++) {
        size_t i = t % 2 ? pairs[t / 2].j : pairs[t / 2].i;
        if (i < first || i >= first + (size_t)r)
            continue;
        size_t k = i - first;
        memcpy(e->track_h + (size_t)t * units, e->a[e->sh.observed] + k * units,
               units * sizeof(REAL));
        memcpy(e->track_f + (size_t)t * out, e->z[e->sh.S] + k * out, out * sizeof(REAL));
    }
}

void NP(probes)(const struct NP_ENGINE *e, const rs_dataset *d, const rs_npnet_pair *pairs,
                int n_pairs, rs_npnet_probe *probes)
{
    size_t units = (size_t)e->sh.width[1], out = (size_t)d->out_dim;
    for (int p = 0; p < n_pairs; p++) {
        const REAL *hi = e->track_h + (size_t)(2 * p) * units, *hj = hi + units;
        const REAL *fi = e->track_f + (size_t)(2 * p) * out, *fj = fi + out;
        const double *yi = d->y + pairs[p].i * out, *yj = d->y + pairs[p].j * out;
        double dh2 = 0, dyhat2 = 0, align = 0;
        for (size_t u = 0; u < units; u++) {
            double dh = (double)hj[u] - (double)hi[u];
            dh2 += dh * dh;
        }
        for (size_t o = 0; o < out; o++) {
            double df = (double)fj[o] - (double)fi[o];
            dyhat2 += df * df;
            align += df * (yj[o] - yi[o]);
        }
        probes[p] = (rs_npnet_probe){dh2, dyhat2, dyhat2 - align};
    }
}

/* ---- passes, steps ---- */

double NP(pass_all)(struct NP_ENGINE *e, const rs_dataset *d, int train, const rs_npnet_pair *pairs,
                    int n_pairs)
{
    double sumsq = 0;
    REAL scale = (REAL)(1.0 / (double)d->n);
    for (size_t first = 0; first < d->n; first += (size_t)e->sh.R) {
        int r = d->n - first < (size_t)e->sh.R ? (int)(d->n - first) : e->sh.R;
        NP(gather)(e, d, NULL, first, r);
        NP(forward)(e, r);
        sumsq += NP(chunk_sumsq)(e, r);
        NP(capture)(e, first, r, pairs, n_pairs);
        if (train)
            NP(backward)(e, r, scale);
    }
    return 0.5 * sumsq / (double)d->n;
}

void NP(zero_grad)(struct NP_ENGINE *e)
{
    memset(e->grad, 0, e->sh.n_params * sizeof(REAL));
}

void NP(batch_gradient)(struct NP_ENGINE *e, const rs_dataset *d, const size_t *rows, size_t count)
{
    REAL scale = (REAL)(1.0 / (double)count);
    for (size_t k = 0; k < count; k += (size_t)e->sh.R) {
        int r = count - k < (size_t)e->sh.R ? (int)(count - k) : e->sh.R;
        NP(gather)(e, d, rows + k, 0, r);
        NP(forward)(e, r);
        NP(backward)(e, r, scale);
    }
}

void NP(update)(struct NP_ENGINE *e)
{
    const rs_npnet_options *o = &e->sh.opt;
    size_t np = e->sh.n_params;
    REAL *p = e->params, *g = e->grad, lr = (REAL)o->lr;
    if (o->optimizer == RS_OPT_SGD) {
        for (size_t k = 0; k < np; k++)
            p[k] -= lr * g[k];
        return;
    }
    /* torch.optim.Adam (amsgrad off, no weight decay), its single-tensor formula in its
     * order of operations: m.lerp_(g, 1 - b1); v.mul_(b2).addcmul_(g, g, 1 - b2);
     * p.addcdiv_(m, sqrt(v) / sqrt(bc2) + eps, -lr / bc1); the bias corrections in double */
    e->adam_t++;
    double bc1 = 1 - pow(o->beta1, (double)e->adam_t), bc2 = 1 - pow(o->beta2, (double)e->adam_t);
    REAL neg_step = (REAL)(-(o->lr / bc1)), bc2_sqrt = (REAL)sqrt(bc2);
    REAL b2 = (REAL)o->beta2, w1 = (REAL)(1 - o->beta1), w2 = (REAL)(1 - o->beta2);
    REAL eps = (REAL)o->eps;
    REAL *m = e->adam_m, *v = e->adam_v;
    for (size_t k = 0; k < np; k++) {
        m[k] = m[k] + w1 * (g[k] - m[k]);
        v[k] = v[k] * b2 + w2 * g[k] * g[k];
        p[k] = p[k] + neg_step * (m[k] / ((REAL)sqrt(v[k]) / bc2_sqrt + eps));
    }
}

int NP(pairwise)(struct NP_ENGINE *e, const rs_dataset *d, const size_t *idx, size_t m, double *out)
{
    size_t units = (size_t)e->sh.width[1];
    REAL *h = NP(array)(m * units);
    if (!h)
        return RS_E_NOMEM;
    for (size_t k = 0; k < m; k += (size_t)e->sh.R) {
        int r = m - k < (size_t)e->sh.R ? (int)(m - k) : e->sh.R;
        NP(gather)(e, d, idx + k, 0, r);
        NP(forward)(e, r);
        memcpy(h + k * units, e->a[e->sh.observed], (size_t)r * units * sizeof(REAL));
    }
    for (size_t a = 0; a < m; a++) {
        out[a * m + a] = 0;
        for (size_t b = a + 1; b < m; b++) {
            double s = 0;
            for (size_t u = 0; u < units; u++) {
                double dh = (double)h[b * units + u] - (double)h[a * units + u];
                s += dh * dh;
            }
            out[a * m + b] = out[b * m + a] = s;
        }
    }
    free(h);
    return RS_OK;
}

/* out != NULL: copy the parameters out (as double); else set them from in. */
void NP(params)(struct NP_ENGINE *e, double *out, const double *in)
{
    for (size_t k = 0; k < e->sh.n_params; k++) {
        if (out)
            out[k] = (double)e->params[k];
        else
            e->params[k] = (REAL)in[k];
    }
}
