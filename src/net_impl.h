/* net_impl.h — the precision-generic network engine, compiled twice: net_f64.c includes it
 * with REAL = double, net_f32.c with REAL = float (one source, no copied twins).
 * Before including, define REAL, NI_VEC_LANES (REALs in 64 bytes), NI(name) (suffixes a
 * name), GEMM (cblas_dgemm or cblas_sgemm). Everything here is static except the entry
 * points named through NI().
 *
 * Layout: both data points are processed together; an activation of width n is a 2 x n
 * row-major matrix (row p = point p). Dense weights are (out x in) row-major; convolution
 * weights (c_out x c_in*k) row-major, i.e. PyTorch's (c_out, c_in, k). */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "net_private.h"
#include "repsweep/blas.h"
#include "repsweep/status.h"

/* Loops over arrays are compiled for AVX-512, x86-64-v3 (AVX2 with FMA) and the baseline,
 * picked at load time (the library itself is built for the baseline, where GCC vectorises
 * with 16-byte SSE or not at all). FMA contraction makes the baseline's rounding differ; see
 * the README on reproducibility. Only GCC on x86-64 (these target names are x86's, and
 * clang's target_clones does not take "arch=..."); elsewhere (aarch64, clang) the same
 * source is compiled once for the build's target, with the same summation order. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define NI_CLONES __attribute__((target_clones("avx512f", "arch=x86-64-v3", "default")))
#else
#define NI_CLONES
#endif

typedef struct {
    int conv;           /* 0: dense, 1: convolution */
    int in, out;        /* flattened widths */
    int c_in, c_out, len_in, len_out, k;
    size_t n_weight;    /* out*in (dense) or c_out*c_in*k (conv) */
    int block_rows, blocks; /* dense: the row blocks (net_private.h) */
    REAL *W, *b;
    REAL *gW, *gb;      /* gradient buffers, only for rs_net_loss_gradient */
    REAL *mask;         /* dropout mask on this map's input (2 x in), NULL without dropout */
    REAL *in_masked;    /* masked input of the training pass (2 x in), NULL without dropout */
} NI(layer);

struct NI(engine) {
    const rs_arch *arch;
    int S;                     /* stages */
    NI(layer) *layer;          /* S + 1 maps: stages, then the output layer */
    REAL x[2];                 /* the inputs */
    REAL f[2];                 /* the outputs */
    REAL **z, **a, **g;        /* per stage: pre-activation, activation, dL/da (2 x n) */
    REAL *dz;                  /* scratch: dL/dz of the current stage (2 x max width) */
    REAL *col[2], *dcol[2];    /* convolution scratch per point: (c_in*k) x len_out */
    REAL *partial;             /* dense backward: blocks 1.. sums of W^T dz, 2 x in each */
    REAL *conv_grad;           /* convolution backward: each point's dW, then each point's db */
    int threads;               /* for dense blocks and convolution points (rs_net_set_threads) */
    size_t bytes;
};

/* All memory goes through here, so rs_net_bytes can report it. 64-byte aligned, zeroed. */
static REAL *NI(new_array)(struct NI(engine) *e, size_t n)
{
    size_t bytes = ((n * sizeof(REAL) + 63) / 64) * 64;
    if (bytes == 0)
        bytes = 64;
    REAL *p = aligned_alloc(64, bytes);
    if (p) {
        memset(p, 0, bytes);
        e->bytes += bytes;
    }
    return p;
}

/* ---- activations ---- */

static inline REAL NI(act)(rs_activation kind, REAL z)
{
    switch (kind) {
    case RS_ACT_LEAKY_RELU: return z > 0 ? z : (REAL)0.01 * z;
    case RS_ACT_RELU: return z > 0 ? z : 0;
    case RS_ACT_ELU: return z > 0 ? z : (REAL)expm1(z);
    case RS_ACT_TANH: return (REAL)tanh(z);
    case RS_ACT_SWISH: return z / (1 + (REAL)exp(-z));
    case RS_ACT_IDENTITY: default: return z;
    }
}

/* d act / d z at z (matches PyTorch's choice at the kinks: the left slope at z = 0). */
static inline REAL NI(act_slope)(rs_activation kind, REAL z)
{
    switch (kind) {
    case RS_ACT_LEAKY_RELU: return z > 0 ? 1 : (REAL)0.01;
    case RS_ACT_RELU: return z > 0 ? 1 : 0;
    case RS_ACT_ELU: return z > 0 ? 1 : (REAL)exp(z);
    case RS_ACT_TANH: {
        REAL t = (REAL)tanh(z);
        return 1 - t * t;
    }
    case RS_ACT_SWISH: {
        REAL s = 1 / (1 + (REAL)exp(-z));
        return s * (1 + z * (1 - s));
    }
    case RS_ACT_IDENTITY: default: return 1;
    }
}

/* a = act(z) and dz = g * act'(z) over n values; the switch sits outside the loops so that
 * the piecewise-linear cases vectorise. */
NI_CLONES
static void NI(act_array)(rs_activation kind, const REAL *restrict z, REAL *restrict a, size_t n)
{
    switch (kind) {
    case RS_ACT_LEAKY_RELU:
        for (size_t i = 0; i < n; i++)
            a[i] = z[i] > 0 ? z[i] : (REAL)0.01 * z[i];
        break;
    case RS_ACT_RELU:
        for (size_t i = 0; i < n; i++)
            a[i] = z[i] > 0 ? z[i] : 0;
        break;
    default:
        for (size_t i = 0; i < n; i++)
            a[i] = NI(act)(kind, z[i]);
    }
}

NI_CLONES
static void NI(act_backward)(rs_activation kind, const REAL *restrict z, const REAL *restrict g,
                             REAL *restrict dz, size_t n)
{
    switch (kind) {
    case RS_ACT_LEAKY_RELU:
        for (size_t i = 0; i < n; i++)
            dz[i] = z[i] > 0 ? g[i] : (REAL)0.01 * g[i];
        break;
    case RS_ACT_RELU:
        for (size_t i = 0; i < n; i++)
            dz[i] = z[i] > 0 ? g[i] : 0;
        break;
    default:
        for (size_t i = 0; i < n; i++)
            dz[i] = g[i] * NI(act_slope)(kind, z[i]);
    }
}

/* ---- linear maps ---- */

/* Convolutions work point by point (see conv_forward). A point's activations and gradients
 * (c x len) are row-major matrices as they are; its scratch, in arrays of its own, is the
 * im2col matrix col (c_in*k x len_out) and the input gradient's columns dcol (same shape). */
static void NI(im2col)(const NI(layer) *L, const REAL *in, REAL *col)
{
    for (int ci = 0; ci < L->c_in; ci++)
        for (int j = 0; j < L->k; j++)
            memcpy(col + ((size_t)ci * L->k + j) * L->len_out, in + (size_t)ci * L->len_in + j,
                   (size_t)L->len_out * sizeof(REAL));
}

NI_CLONES
static void NI(col2im_add)(const NI(layer) *L, const REAL *restrict dcol, REAL *restrict gin)
{
    for (int ci = 0; ci < L->c_in; ci++)
        for (int j = 0; j < L->k; j++) {
            const REAL *restrict src = dcol + ((size_t)ci * L->k + j) * L->len_out;
            REAL *restrict dst = gin + (size_t)ci * L->len_in + j;
            for (int t = 0; t < L->len_out; t++)
                dst[t] += src[t];
        }
}

/* Dense kernels, written out because every dense product here is a matrix times two vectors
 * (the two data points), a shape for which OpenBLAS's GEMM reaches about half the memory
 * bandwidth (13-15 GB/s for the forward product on these machines) and, for cache-resident
 * matrices such as the shallow net's, spends most of its time in call overhead.
 * GCC vector extensions (64-byte vectors: 8 doubles or 16 floats) keep them portable;
 * NI_CLONES picks AVX-512, AVX2 or baseline code at load time. The summation order is fixed
 * by the code, not by the CPU: a dot product's lane k sums the elements j = k mod LANES, then
 * the lanes are added pairwise (lanes_sum); W^T dz sums the rows in index order within each
 * row block, then the blocks' sums in block order (dense_backward). */
typedef REAL NI(vec) __attribute__((vector_size(64)));
#define NI_LANES NI_VEC_LANES /* 64 / sizeof(REAL), set with REAL */
_Static_assert(NI_VEC_LANES * sizeof(REAL) == 64, "NI_VEC_LANES must match REAL");
/* rows the backward kernel handles together: each load of the inputs and of W^T dz serves four */
#define NI_ROWS 4

/* The sum of a vector's lanes as a pairwise tree (depth log2 LANES, not a serial chain of
 * LANES dependent additions: at 500 units that chain dominated the cache-resident forward):
 * level w adds lane k + w into lane k for k < w. Done in registers with lane shuffles; going
 * through memory (a store, then scalar loads) cost a quarter of the forward product's time. */
/* one level: lane k gets lane k + w added (lanes k >= w: don't care); literal indices, as a
 * mask built in a loop was not folded to a constant. __builtin_shufflevector (clang, GCC >= 12)
 * rather than GCC-only __builtin_shuffle: the same permutation, the same code from GCC. */
#define NI_SUM_LEVEL(v, ...) ((v) += __builtin_shufflevector((v), (v), __VA_ARGS__))
__attribute__((always_inline)) static inline REAL NI(lanes_sum)(NI(vec) v)
{
#if NI_VEC_LANES == 16
    NI_SUM_LEVEL(v, 8, 9, 10, 11, 12, 13, 14, 15, 8, 9, 10, 11, 12, 13, 14, 15);
    NI_SUM_LEVEL(v, 4, 5, 6, 7, 4, 5, 6, 7, 4, 5, 6, 7, 4, 5, 6, 7);
    NI_SUM_LEVEL(v, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3);
    NI_SUM_LEVEL(v, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1);
#elif NI_VEC_LANES == 8
    NI_SUM_LEVEL(v, 4, 5, 6, 7, 4, 5, 6, 7);
    NI_SUM_LEVEL(v, 2, 3, 2, 3, 2, 3, 2, 3);
    NI_SUM_LEVEL(v, 1, 1, 1, 1, 1, 1, 1, 1);
#else
#error "NI_VEC_LANES must be 16 (float) or 8 (double)"
#endif
    return v[0];
}

/* Unaligned vector loads and stores (memcpy: no aliasing or alignment assumptions; macros, as
 * a function returning a 64-byte vector would change the ABI in the non-AVX-512 clones). */
#define NI_LOAD(v, p) memcpy(&(v), (p), sizeof(v))
#define NI_STORE(p, v) memcpy((p), &(v), sizeof(v))

/* Dense forward for both points: z_p = W in_p, one row at a time, so that W is read as one
 * sequential stream (which the hardware prefetcher serves best: reading four rows side by side,
 * even with software prefetch, was 1.3-2x slower in a microbenchmark on these machines, from
 * DRAM, L3 and L2 alike). Lane k of a row's accumulator sums the elements j = k mod LANES of
 * the whole vectors; z = (the remaining elements, in order) + lanes_sum. */
NI_CLONES
static void NI(rows_dot2)(const REAL *W, int out, int in, const REAL *a0, const REAL *a1,
                          REAL *z0, REAL *z1)
{
    for (int i = 0; i < out; i++) {
        const REAL *w = W + (size_t)i * in;
        NI(vec) s0 = {0}, s1 = {0};
        REAL t0 = 0, t1 = 0;
        int j = 0;
        for (; j + NI_LANES <= in; j += NI_LANES) {
            NI(vec) x0, x1, wv;
            NI_LOAD(x0, a0 + j);
            NI_LOAD(x1, a1 + j);
            NI_LOAD(wv, w + j);
            s0 += wv * x0;
            s1 += wv * x1;
        }
        for (; j < in; j++) {
            t0 += w[j] * a0[j];
            t1 += w[j] * a1[j];
        }
        z0[i] = t0 + NI(lanes_sum)(s0);
        z1[i] = t1 + NI(lanes_sum)(s1);
    }
}

/* Software prefetch distance of the backward kernel, in elements: `ahead` = the next block of
 * NI_ROWS rows (0 for the last block), so each 64-byte load of row i is paired with a
 * prefetch of the same columns of row i + NI_ROWS, about 8 KB (float32) or 16 KB (float64)
 * ahead. The hardware prefetcher alone kept these four interleaved row streams at 12-16 GB/s
 * (float32 default net); with the prefetch the kernel ran ~1.8x faster on these machines. */
static inline size_t NI(rows_ahead)(int i0, int out, int in)
{
    return i0 + 2 * NI_ROWS <= out ? (size_t)NI_ROWS * in : 0;
}

/* The dense backward step for rows [i0, i0 + nr), nr <= NI_ROWS, fused so that each weight is
 * read from memory once (the default net's matrices do not fit in cache, so a separate pass
 * for W^T dz and for the step would stream them twice):
 *   g_p += W[i,:]^T dz_p[i]                      (the weights before the step; g may be NULL)
 *   Wt[i,:] = beta W[i,:] + alpha (dz_0[i] in_0 + dz_1[i] in_1)
 * Wt may be W itself (the step) or a gradient buffer (alpha 1, beta 0). */
__attribute__((always_inline)) static inline void NI(rows_backward_block)(const REAL *W, REAL *Wt, int i0, int nr, int in,
                                           const REAL *dz0, const REAL *dz1, const REAL *a0,
                                           const REAL *a1, REAL *g0, REAL *g1, REAL alpha,
                                           REAL beta, size_t ahead)
{
    REAL d0[NI_ROWS], d1[NI_ROWS], u0[NI_ROWS], u1[NI_ROWS];
    for (int r = 0; r < nr; r++) {
        d0[r] = dz0[i0 + r];
        d1[r] = dz1[i0 + r];
        u0[r] = alpha * d0[r];
        u1[r] = alpha * d1[r];
    }
    int j = 0;
    for (; j + NI_LANES <= in; j += NI_LANES) {
        NI(vec) x0, x1, G0 = {0}, G1 = {0};
        NI_LOAD(x0, a0 + j);
        NI_LOAD(x1, a1 + j);
        if (g0) {
            NI_LOAD(G0, g0 + j);
            NI_LOAD(G1, g1 + j);
        }
        for (int r = 0; r < nr; r++) {
            size_t at = (size_t)(i0 + r) * in + j;
            NI(vec) wv, step;
            NI_LOAD(wv, W + at);
            __builtin_prefetch(W + at + ahead, 1, 3); /* read, then written by the step */
            G0 += d0[r] * wv;
            G1 += d1[r] * wv;
            step = beta * wv + u0[r] * x0 + u1[r] * x1;
            NI_STORE(Wt + at, step);
        }
        if (g0) {
            NI_STORE(g0 + j, G0);
            NI_STORE(g1 + j, G1);
        }
    }
    for (; j < in; j++)
        for (int r = 0; r < nr; r++) {
            size_t at = (size_t)(i0 + r) * in + j;
            REAL w = W[at];
            if (g0) {
                g0[j] += d0[r] * w;
                g1[j] += d1[r] * w;
            }
            Wt[at] = beta * w + u0[r] * a0[j] + u1[r] * a1[j];
        }
}

NI_CLONES
static void NI(rows_backward)(const REAL *W, REAL *Wt, int out, int in, const REAL *dz0,
                              const REAL *dz1, const REAL *a0, const REAL *a1, REAL *g0,
                              REAL *g1, REAL alpha, REAL beta)
{
    int i = 0;
    for (; i + NI_ROWS <= out; i += NI_ROWS)
        NI(rows_backward_block)(W, Wt, i, NI_ROWS, in, dz0, dz1, a0, a1, g0, g1, alpha, beta,
                                NI(rows_ahead)(i, out, in));
    if (i < out)
        NI(rows_backward_block)(W, Wt, i, out - i, in, dz0, dz1, a0, a1, g0, g1, alpha, beta, 0);
}

/* x += c over n values */
NI_CLONES
static void NI(add_constant)(REAL *x, REAL c, int n)
{
    for (int t = 0; t < n; t++)
        x[t] += c;
}

/* beta * x for the parameter updates Wt = beta Wt + alpha (...): 0 when beta is 0 (a gradient
 * buffer, overwritten), so that a non-finite value from an earlier gradient cannot stay
 * (0 * Inf is NaN), as BLAS's beta = 0 never reads C. */
static inline REAL NI(scaled)(REAL beta, REAL x)
{
    return beta == 0 ? 0 : beta * x;
}

/* The sum of n values: lane k of a vector accumulator sums the elements i = k mod LANES of
 * the whole vectors, the lanes are added as in lanes_sum, then the remaining elements in
 * order (a serial sum's chain of dependent additions cost a fifth of the convolution net's
 * backward pass). */
NI_CLONES
static REAL NI(sum)(const REAL *x, size_t n)
{
    NI(vec) acc = {0};
    size_t i = 0;
    for (; i + NI_LANES <= n; i += NI_LANES) {
        NI(vec) v;
        NI_LOAD(v, x + i);
        acc += v;
    }
    REAL total = NI(lanes_sum)(acc);
    for (; i < n; i++)
        total += x[i];
    return total;
}

/* dst += src over n values */
NI_CLONES
static void NI(add_into)(REAL *restrict dst, const REAL *restrict src, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dst[i] += src[i];
}

/* Rows of a dense map's block b: [*i0, *i0 + return value). */
static int NI(block_span)(const NI(layer) *L, int b, int *i0)
{
    *i0 = b * L->block_rows;
    return L->out - *i0 < L->block_rows ? L->out - *i0 : L->block_rows;
}

/* Dense forward, z_p = W in_p, for the rows of block b. */
static void NI(forward_block)(const NI(layer) *L, int b, const REAL *in, REAL *z)
{
    int i0, n = NI(block_span)(L, b, &i0);
    NI(rows_dot2)(L->W + (size_t)i0 * L->in, n, L->in, in, in + L->in, z + i0, z + L->out + i0);
}

/* Dense backward and step (rows_backward) for the rows of block b: block 0 adds its rows'
 * W^T dz into gin (zero on entry), block b > 0 into its own partial sum (see dense_backward). */
static void NI(backward_block)(struct NI(engine) *e, const NI(layer) *L, int b, const REAL *dz,
                               const REAL *in, REAL *gin, REAL *Wt, REAL alpha, REAL beta)
{
    int i0, n = NI(block_span)(L, b, &i0);
    size_t n2 = 2 * (size_t)L->in;
    REAL *g = gin;
    if (gin && b > 0) {
        g = e->partial + (size_t)(b - 1) * n2;
        memset(g, 0, n2 * sizeof(REAL));
    }
    NI(rows_backward)(L->W + (size_t)i0 * L->in, Wt + (size_t)i0 * L->in, n, L->in, dz + i0,
                      dz + L->out + i0, in, in + L->in, g, g ? g + L->in : NULL, alpha, beta);
}

/* Threads for a dense map: no more than it has blocks (an idle thread would still join every
 * fork and barrier). */
static int NI(team)(const struct NI(engine) *e, const NI(layer) *L)
{
    return e->threads < L->blocks ? e->threads : L->blocks;
}

/* Whether a dense map's blocks go to threads. Checked here rather than with OpenMP's `if`
 * clause, which still enters the runtime (a team of one): at ~0.3 us a call, that made the
 * narrow net's 42 small maps per epoch 1.8x slower. */
static int NI(threaded)(const struct NI(engine) *e, const NI(layer) *L)
{
    return e->threads > 1 && L->blocks > 1;
}

/* Dense forward, threads taking whole row blocks. Rows are independent, so this is the same
 * computation for any thread count. schedule(static) over the same block count gives a thread
 * the same blocks here and in dense_backward, so with several threads each core keeps its
 * share of a cache-sized matrix (the shallow net's) in its own L2. */
static void NI(dense_forward)(const struct NI(engine) *e, const NI(layer) *L, const REAL *in,
                              REAL *z)
{
    if (NI(threaded)(e, L)) {
#pragma omp parallel for schedule(static) num_threads(NI(team)(e, L))
        for (int b = 0; b < L->blocks; b++)
            NI(forward_block)(L, b, in, z);
    } else {
        for (int b = 0; b < L->blocks; b++)
            NI(forward_block)(L, b, in, z);
    }
}

/* Dense backward and step, block by block, then the blocks' partial sums of W^T dz added to
 * gin in block order: the rounding is fixed by the blocks, not by which thread ran which. */
static void NI(dense_backward)(struct NI(engine) *e, const NI(layer) *L, const REAL *dz,
                               const REAL *in, REAL *gin, REAL *Wt, REAL alpha, REAL beta)
{
    if (NI(threaded)(e, L)) {
#pragma omp parallel for schedule(static) num_threads(NI(team)(e, L))
        for (int b = 0; b < L->blocks; b++)
            NI(backward_block)(e, L, b, dz, in, gin, Wt, alpha, beta);
    } else {
        for (int b = 0; b < L->blocks; b++)
            NI(backward_block)(e, L, b, dz, in, gin, Wt, alpha, beta);
    }
    size_t n2 = 2 * (size_t)L->in;
    for (int b = 1; gin && b < L->blocks; b++)
        NI(add_into)(gin, e->partial + (size_t)(b - 1) * n2, n2);
}

/* ---- convolutions ----
 * A convolution's work is cut by data point, as a dense map's by row blocks: point p's forward
 * product, its input gradient and its share dW_p = dz_p im2col(in_p)^T of the weight gradient
 * are single-threaded OpenBLAS calls on p's own scratch arrays, so the two points can run on
 * two threads, each keeping its data in its own core's cache (with the points side by side in
 * shared arrays, 2 threads gained 1.3x instead of 1.7x: the cache lines moved between cores).
 * The step then adds the shares in point order, so the results do not depend on the thread
 * count. With OpenBLAS
 * itself set to more than one thread the points run one after the other: a pthread OpenBLAS
 * must not be called from inside an OpenMP team (it may hang). */

/* Threads for a convolution's two points: 1 unless threads were asked for and OpenBLAS runs
 * single-threaded (the CLI sets it so) in a threaded build: a serial OpenBLAS may be built
 * without the locking that makes concurrent calls safe. */
static int NI(conv_team)(const struct NI(engine) *e)
{
    return e->threads > 1 && rs_blas_concurrent_calls_safe() ? 2 : 1;
}

/* z_p = W im2col(in_p) + b for point p */
static void NI(conv_forward_point)(struct NI(engine) *e, const NI(layer) *L, const REAL *in,
                                   REAL *z, int p)
{
    int ck = L->c_in * L->k, n = L->len_out;
    NI(im2col)(L, in + (size_t)p * L->in, e->col[p]);
    GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, L->c_out, n, ck, 1, L->W, ck, e->col[p], n, 0,
         z + (size_t)p * L->out, n);
    for (int co = 0; co < L->c_out; co++)
        NI(add_constant)(z + (size_t)p * L->out + (size_t)co * n, L->b[co], n);
}

static void NI(conv_forward)(struct NI(engine) *e, const NI(layer) *L, const REAL *in, REAL *z)
{
    if (NI(conv_team)(e) > 1) {
#pragma omp parallel for schedule(static) num_threads(2)
        for (int p = 0; p < 2; p++)
            NI(conv_forward_point)(e, L, in, z, p);
    } else {
        for (int p = 0; p < 2; p++)
            NI(conv_forward_point)(e, L, in, z, p);
    }
}

/* Point p's share of the backward pass: W^T dz_p added into gin (if any; W before the step),
 * and its shares of the gradients, dW_p (c_out x c_in*k) at e->conv_grad + p * n_weight and
 * db_p (c_out) after both dW. */
static void NI(conv_backward_point)(struct NI(engine) *e, const NI(layer) *L, const REAL *dz,
                                    const REAL *in, REAL *gin, int p)
{
    int ck = L->c_in * L->k, n = L->len_out;
    const REAL *dz_p = dz + (size_t)p * L->out;
    if (gin) {
        GEMM(CblasRowMajor, CblasTrans, CblasNoTrans, ck, n, L->c_out, 1, L->W, ck, dz_p, n, 0,
             e->dcol[p], n);
        NI(col2im_add)(L, e->dcol[p], gin + (size_t)p * L->in);
    }
    NI(im2col)(L, in + (size_t)p * L->in, e->col[p]);
    GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, L->c_out, ck, n, 1, dz_p, n, e->col[p], n, 0,
         e->conv_grad + (size_t)p * L->n_weight, ck);
    REAL *db = e->conv_grad + 2 * L->n_weight + (size_t)p * L->c_out;
    for (int co = 0; co < L->c_out; co++)
        db[co] = NI(sum)(dz_p + (size_t)co * n, (size_t)n);
}

/* The convolution's backward pass and step (see map_backward): both points' shares, then
 * Wt = beta Wt + alpha (dW_0 + dW_1), likewise the bias. */
static void NI(conv_backward)(struct NI(engine) *e, const NI(layer) *L, const REAL *dz,
                              const REAL *in, REAL *gin, REAL *Wt, REAL *bt, REAL alpha,
                              REAL beta)
{
    if (NI(conv_team)(e) > 1) {
#pragma omp parallel for schedule(static) num_threads(2)
        for (int p = 0; p < 2; p++)
            NI(conv_backward_point)(e, L, dz, in, gin, p);
    } else {
        for (int p = 0; p < 2; p++)
            NI(conv_backward_point)(e, L, dz, in, gin, p);
    }
    const REAL *dw = e->conv_grad, *db = e->conv_grad + 2 * L->n_weight;
    for (size_t i = 0; i < L->n_weight; i++)
        Wt[i] = NI(scaled)(beta, Wt[i]) + alpha * (dw[i] + dw[L->n_weight + i]);
    for (int co = 0; co < L->c_out; co++)
        bt[co] = NI(scaled)(beta, bt[co]) + alpha * (db[co] + db[L->c_out + co]);
}

/* ---- one map, dense or convolution ---- */

/* z (2 x out) = map(in (2 x in)) + b */
static void NI(map_forward)(struct NI(engine) *e, const NI(layer) *L, const REAL *in, REAL *z)
{
    if (L->conv) {
        NI(conv_forward)(e, L, in, z);
        return;
    }
    NI(dense_forward)(e, L, in, z);
    for (int p = 0; p < 2; p++)
        for (int j = 0; j < L->out; j++)
            z[(size_t)p * L->out + j] += L->b[j];
}

/* Backward through one map and its parameter step, fused so each weight is read from memory
 * once: given dz (2 x out) and the map's input `in` (as used in the forward pass), add
 * W^T dz into gin (2 x in; skipped if gin == NULL) using the weights *before* the step, then
 * set  Wt = beta * Wt + alpha * dz^T in  (and likewise the bias), where (Wt, bt) are either the
 * weights themselves (alpha = -lr, beta = 1: the gradient-descent step) or gradient buffers
 * (alpha = 1, beta = 0). */
static void NI(map_backward)(struct NI(engine) *e, const NI(layer) *L, const REAL *dz,
                             const REAL *in, REAL *gin, REAL *Wt, REAL *bt, REAL alpha,
                             REAL beta)
{
    if (L->conv) {
        NI(conv_backward)(e, L, dz, in, gin, Wt, bt, alpha, beta);
        return;
    }
    NI(dense_backward)(e, L, dz, in, gin, Wt, alpha, beta);
    for (int j = 0; j < L->out; j++)
        bt[j] = NI(scaled)(beta, bt[j]) + alpha * (dz[j] + dz[L->out + j]);
}

/* ---- the network ---- */

/* Input of map s in the forward pass: x for the first map, else the previous activation;
 * masked (into L->in_masked) in the training pass of a dropout net. */
static const REAL *NI(map_input)(struct NI(engine) *e, int s, int training)
{
    const REAL *in = s == 0 ? e->x : e->a[s - 1];
    NI(layer) *L = &e->layer[s];
    if (!training || !L->mask)
        return in;
    for (size_t i = 0; i < 2 * (size_t)L->in; i++)
        L->in_masked[i] = in[i] * L->mask[i];
    return L->in_masked;
}

static void NI(forward)(struct NI(engine) *e, int training)
{
    rs_activation act = e->arch->activation;
    for (int s = 0; s < e->S; s++) {
        NI(layer) *L = &e->layer[s];
        NI(map_forward)(e, L, NI(map_input)(e, s, training), e->z[s]);
        size_t n = 2 * (size_t)L->out;
        NI(act_array)(act, e->z[s], e->a[s], n);
        if (e->arch->skip && s >= 1) {
            if (s == 1) { /* the stage two before is the input: width 1, added to every unit */
                for (int p = 0; p < 2; p++)
                    for (int j = 0; j < L->out; j++)
                        e->a[1][(size_t)p * L->out + j] += e->x[p];
            } else {
                for (size_t i = 0; i < n; i++)
                    e->a[s][i] += e->a[s - 2][i];
            }
        }
    }
    NI(layer) *O = &e->layer[e->S];
    NI(map_forward)(e, O, NI(map_input)(e, e->S, training), e->f);
}

/* Backward pass from the outputs; either steps the weights (grad == 0) or writes the
 * gradient into the layers' gW/gb. Needs a preceding forward(training = 1). */
static void NI(backward)(struct NI(engine) *e, const rs_pair *d, REAL lr, int grad)
{
    rs_activation act = e->arch->activation;
    int S = e->S;
    REAL alpha = grad ? 1 : -lr, beta = grad ? 0 : 1;
    /* L = 1/4 sum_p (f_p - y_p)^2, so dL/df_p = (f_p - y_p) / 2 */
    REAL df[2] = {(e->f[0] - (REAL)d->y[0]) / 2, (e->f[1] - (REAL)d->y[1]) / 2};

    for (int s = S; s >= 0; s--) {
        NI(layer) *L = &e->layer[s];
        const REAL *dz = df;
        if (s < S) { /* dz = g[s] * act'(z[s]) */
            NI(act_backward)(act, e->z[s], e->g[s], e->dz, 2 * (size_t)L->out);
            dz = e->dz;
        }
        REAL *gin = s > 0 ? e->g[s - 1] : NULL;
        if (gin)
            memset(gin, 0, 2 * (size_t)L->in * sizeof(REAL));
        const REAL *in = (L->mask) ? L->in_masked : (s == 0 ? e->x : e->a[s - 1]);
        NI(map_backward)(e, L, dz, in, gin, grad ? L->gW : L->W, grad ? L->gb : L->b, alpha,
                         beta);
        if (!gin)
            continue;
        if (L->mask)
            for (size_t i = 0; i < 2 * (size_t)L->in; i++)
                gin[i] *= L->mask[i];
        /* skip: a[s+1] += a[s-1], so dL/da[s-1] also receives g[s+1] */
        if (e->arch->skip && s + 1 < S)
            for (size_t i = 0; i < 2 * (size_t)L->in; i++)
                gin[i] += e->g[s + 1][i];
    }
}

static void NI(set_inputs)(struct NI(engine) *e, const rs_pair *d)
{
    e->x[0] = (REAL)d->x[0];
    e->x[1] = (REAL)d->x[1];
}

static void NI(fill_probe)(struct NI(engine) *e, const rs_pair *d, rs_probe *pr,
                           double *dh2_stages)
{
    int obs = rs_arch_observed_stage(e->arch);
    for (int s = 0; s < e->S; s++) {
        if (!dh2_stages && s != obs)
            continue;
        int n = e->layer[s].out;
        const REAL *a = e->a[s];
        double acc = 0;
        for (int j = 0; j < n; j++) {
            double diff = (double)a[n + j] - (double)a[j];
            acc += diff * diff;
        }
        if (dh2_stages)
            dh2_stages[s] = acc;
        if (s == obs && pr)
            pr->dh2 = acc;
    }
    if (!pr)
        return;
    double f1 = e->f[0], f2 = e->f[1];
    double df = f2 - f1, dy = d->y[1] - d->y[0];
    pr->dyhat2 = df * df;
    pr->w = df * df - df * dy;
    pr->loss = 0.25 * ((f1 - d->y[0]) * (f1 - d->y[0]) + (f2 - d->y[1]) * (f2 - d->y[1]));
    pr->yhat_mean = 0.5 * (f1 + f2);
}

/* ---- entry points (see net_private.h) ---- */

static int NI(alloc_layer)(struct NI(engine) *e, NI(layer) *L, int dropout)
{
    L->W = NI(new_array)(e, L->n_weight);
    L->b = NI(new_array)(e, (size_t)(L->conv ? L->c_out : L->out));
    if (!L->W || !L->b)
        return RS_E_NOMEM;
    if (dropout) {
        L->mask = NI(new_array)(e, 2 * (size_t)L->in);
        L->in_masked = NI(new_array)(e, 2 * (size_t)L->in);
        if (!L->mask || !L->in_masked)
            return RS_E_NOMEM;
        for (size_t i = 0; i < 2 * (size_t)L->in; i++)
            L->mask[i] = 1;
    }
    return RS_OK;
}

void NI(engine_free)(struct NI(engine) *e)
{
    if (!e)
        return;
    if (e->layer)
        for (int s = 0; s <= e->S; s++) {
            NI(layer) *L = &e->layer[s];
            free(L->W);
            free(L->b);
            free(L->gW);
            free(L->gb);
            free(L->mask);
            free(L->in_masked);
        }
    for (int s = 0; e->z && s < e->S; s++) {
        free(e->z[s]);
        free(e->a[s]);
        free(e->g[s]);
    }
    free(e->layer);
    free(e->z);
    free(e->a);
    free(e->g);
    free(e->dz);
    for (int p = 0; p < 2; p++) {
        free(e->col[p]);
        free(e->dcol[p]);
    }
    free(e->partial);
    free(e->conv_grad);
    free(e);
}

struct NI(engine) *NI(engine_alloc)(const rs_arch *arch, const rs_map_shape *shapes, int S)
{
    struct NI(engine) *e = calloc(1, sizeof *e);
    if (!e)
        return NULL;
    e->arch = arch;
    e->S = S;
    e->threads = 1;
    e->layer = calloc((size_t)S + 1, sizeof *e->layer);
    e->z = calloc((size_t)S, sizeof *e->z);
    e->a = calloc((size_t)S, sizeof *e->a);
    e->g = calloc((size_t)S, sizeof *e->g);
    if (!e->layer || !e->z || !e->a || !e->g)
        goto fail;
    size_t max_width = 1, max_col = 1, max_partial = 1, max_conv_grad = 1;
    for (int s = 0; s <= S; s++) {
        NI(layer) *L = &e->layer[s];
        const rs_map_shape *m = &shapes[s];
        L->conv = m->conv;
        L->in = m->in;
        L->out = m->out;
        L->c_in = m->c_in;
        L->c_out = m->c_out;
        L->len_in = m->len_in;
        L->len_out = m->len_out;
        L->k = m->k;
        L->n_weight = m->n_weight;
        L->block_rows = rs_dense_block_rows(m);
        L->blocks = rs_dense_block_count(m);
        if (rs_dense_partial_count(m) > max_partial)
            max_partial = rs_dense_partial_count(m);
        if (rs_conv_grad_count(m) > max_conv_grad)
            max_conv_grad = rs_conv_grad_count(m);
        if (NI(alloc_layer)(e, L, arch->dropout > 0) != RS_OK)
            goto fail;
        if ((size_t)L->out > max_width)
            max_width = (size_t)L->out;
        if (L->conv && (size_t)L->c_in * L->k * L->len_out > max_col)
            max_col = (size_t)L->c_in * L->k * L->len_out;
        if (s < S) {
            e->z[s] = NI(new_array)(e, 2 * (size_t)L->out);
            e->a[s] = NI(new_array)(e, 2 * (size_t)L->out);
            e->g[s] = NI(new_array)(e, 2 * (size_t)L->out);
            if (!e->z[s] || !e->a[s] || !e->g[s])
                goto fail;
        }
    }
    e->dz = NI(new_array)(e, 2 * max_width);
    for (int p = 0; p < 2; p++) {
        e->col[p] = NI(new_array)(e, max_col);
        e->dcol[p] = NI(new_array)(e, max_col);
        if (!e->col[p] || !e->dcol[p])
            goto fail;
    }
    e->partial = NI(new_array)(e, max_partial);
    e->conv_grad = NI(new_array)(e, max_conv_grad);
    if (!e->dz || !e->partial || !e->conv_grad)
        goto fail;
    return e;
fail:
    NI(engine_free)(e);
    return NULL;
}

size_t NI(engine_bytes)(const struct NI(engine) *e) { return e->bytes; }

void NI(engine_set_threads)(struct NI(engine) *e, int threads)
{
    e->threads = threads > 1 ? threads : 1;
}

/* Xavier-normal: the deviates come from net.c's `normal` (GSL's ziggurat; GSL's randist
 * header cannot be included beside OpenBLAS's cblas.h) in double, in tensor order, so both
 * precisions start from the same (rounded) weights. */
void NI(engine_init)(struct NI(engine) *e, double gain, rs_normal_fn normal, void *ctx,
                     const rs_map_shape *shapes)
{
    for (int s = 0; s <= e->S; s++) {
        NI(layer) *L = &e->layer[s];
        double sd = gain * sqrt(2.0 / (shapes[s].fan_in + shapes[s].fan_out));
        for (size_t i = 0; i < L->n_weight; i++)
            L->W[i] = (REAL)normal(ctx, sd);
        memset(L->b, 0, (size_t)(L->conv ? L->c_out : L->out) * sizeof(REAL));
    }
}

/* Inverted dropout: keep with probability 1-p, scale kept units by 1/(1-p). */
void NI(engine_draw_dropout)(struct NI(engine) *e, double p, gsl_rng *r)
{
    REAL keep_scale = (REAL)(1.0 / (1.0 - p));
    for (int s = 0; s <= e->S; s++) {
        NI(layer) *L = &e->layer[s];
        for (size_t i = 0; L->mask && i < 2 * (size_t)L->in; i++)
            L->mask[i] = gsl_rng_uniform(r) < p ? 0 : keep_scale;
    }
}

static int NI(finite)(const struct NI(engine) *e)
{
    return isfinite(e->f[0]) && isfinite(e->f[1]);
}

int NI(engine_probe)(struct NI(engine) *e, const rs_pair *d, rs_probe *pr, double *dh2_stages)
{
    NI(set_inputs)(e, d);
    NI(forward)(e, 0);
    NI(fill_probe)(e, d, pr, dh2_stages);
    return NI(finite)(e) ? RS_OK : RS_S_DIVERGED;
}

int NI(engine_epoch)(struct NI(engine) *e, const rs_pair *d, double lr, rs_probe *pr,
                     double *dh2_stages, double dropout, gsl_rng *r)
{
    NI(set_inputs)(e, d);
    NI(forward)(e, 0);
    if (pr || dh2_stages)
        NI(fill_probe)(e, d, pr, dh2_stages);
    if (!NI(finite)(e))
        return RS_S_DIVERGED;
    if (dropout > 0) { /* the training pass differs from the evaluation pass */
        NI(engine_draw_dropout)(e, dropout, r);
        NI(forward)(e, 1);
    }
    NI(backward)(e, d, (REAL)lr, 0);
    return RS_OK;
}

int NI(engine_loss_gradient)(struct NI(engine) *e, const rs_pair *d, double *loss, double *grad)
{
    for (int s = 0; s <= e->S; s++) {
        NI(layer) *L = &e->layer[s];
        if (!L->gW) {
            L->gW = NI(new_array)(e, L->n_weight);
            L->gb = NI(new_array)(e, (size_t)(L->conv ? L->c_out : L->out));
            if (!L->gW || !L->gb)
                return RS_E_NOMEM;
        }
    }
    NI(set_inputs)(e, d);
    NI(forward)(e, 1);
    double f1 = e->f[0], f2 = e->f[1];
    *loss = 0.25 * ((f1 - d->y[0]) * (f1 - d->y[0]) + (f2 - d->y[1]) * (f2 - d->y[1]));
    NI(backward)(e, d, 0, 1);
    size_t off = 0;
    for (int s = 0; s <= e->S; s++) {
        NI(layer) *L = &e->layer[s];
        size_t nb = (size_t)(L->conv ? L->c_out : L->out);
        for (size_t i = 0; i < L->n_weight; i++)
            grad[off++] = L->gW[i];
        for (size_t i = 0; i < nb; i++)
            grad[off++] = L->gb[i];
    }
    return RS_OK;
}

void NI(engine_params)(struct NI(engine) *e, double *out, const double *in)
{
    size_t off = 0;
    for (int s = 0; s <= e->S; s++) {
        NI(layer) *L = &e->layer[s];
        size_t nb = (size_t)(L->conv ? L->c_out : L->out);
        for (size_t i = 0; i < L->n_weight; i++, off++) {
            if (out)
                out[off] = L->W[i];
            else
                L->W[i] = (REAL)in[off];
        }
        for (size_t i = 0; i < nb; i++, off++) {
            if (out)
                out[off] = L->b[i];
            else
                L->b[i] = (REAL)in[off];
        }
    }
}
