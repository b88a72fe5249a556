/* net_private.h — what net.c shares with the two precision builds of net_impl.h. */
#ifndef REPSWEEP_NET_PRIVATE_H
#define REPSWEEP_NET_PRIVATE_H

#include <gsl/gsl_rng.h>
#include <stddef.h>

#include "repsweep/net.h"

/* The shape of one linear map (a stage's or the output layer's). */
typedef struct {
    int conv;
    int in, out;                /* flattened widths */
    int c_in, c_out, len_in, len_out, k;
    size_t n_weight;
    double fan_in, fan_out;     /* for Xavier initialisation */
} rs_map_shape;

/* Row blocks of a dense map. The backward pass sums W^T dz block by block and then adds the
 * blocks' sums in block order, and threads take whole blocks; the blocks are fixed by the
 * map's shape, never by the thread count, so a trial's numbers do not depend on --threads.
 * Maps with fewer than RS_DENSE_SPLIT_MIN weights are one block (the rows in index order):
 * forking threads for them costs more than their whole product. Rows per block are a multiple
 * of 4, the backward kernel's row group (net_impl.h's NI_ROWS). */
#define RS_DENSE_BLOCKS 8
#define RS_DENSE_SPLIT_MIN 32768

static inline int rs_dense_block_rows(const rs_map_shape *m)
{
    if (m->conv || m->n_weight < RS_DENSE_SPLIT_MIN)
        return m->out;
    int rows = (m->out + RS_DENSE_BLOCKS - 1) / RS_DENSE_BLOCKS;
    return (rows + 3) / 4 * 4;
}

static inline int rs_dense_block_count(const rs_map_shape *m)
{
    return m->conv ? 1 : (m->out + rs_dense_block_rows(m) - 1) / rs_dense_block_rows(m);
}

/* REALs of a convolution's per-point weight and bias gradients (each point's dW, then each
 * point's db), which its step adds in point order. */
static inline size_t rs_conv_grad_count(const rs_map_shape *m)
{
    return m->conv ? 2 * (m->n_weight + (size_t)m->c_out) : 0;
}

/* REALs of the backward pass's per-block sums of W^T dz (block 0 sums into the map's own
 * gradient), for the largest dense map: blocks - 1 partial sums of 2 x in. */
static inline size_t rs_dense_partial_count(const rs_map_shape *m)
{
    return m->conv ? 0 : (size_t)(rs_dense_block_count(m) - 1) * 2 * (size_t)m->in;
}

/* A normal deviate with standard deviation sd from the generator ctx. */
typedef double (*rs_normal_fn)(void *ctx, double sd);

#define RS_DECLARE_ENGINE(SUF)                                                                   \
    struct rs_engine_##SUF;                                                                      \
    struct rs_engine_##SUF *rs_engine_alloc_##SUF(const rs_arch *arch, const rs_map_shape *shapes, \
                                                  int S);                                        \
    void rs_engine_free_##SUF(struct rs_engine_##SUF *e);                                        \
    void rs_engine_set_threads_##SUF(struct rs_engine_##SUF *e, int threads);                    \
    size_t rs_engine_bytes_##SUF(const struct rs_engine_##SUF *e);                               \
    void rs_engine_init_##SUF(struct rs_engine_##SUF *e, double gain, rs_normal_fn normal,      \
                              void *ctx, const rs_map_shape *shapes);                                       \
    void rs_engine_draw_dropout_##SUF(struct rs_engine_##SUF *e, double p, gsl_rng *r);          \
    int rs_engine_probe_##SUF(struct rs_engine_##SUF *e, const rs_pair *d, rs_probe *pr,         \
                              double *dh2_stages);                                               \
    int rs_engine_epoch_##SUF(struct rs_engine_##SUF *e, const rs_pair *d, double lr,            \
                              rs_probe *pr, double *dh2_stages, double dropout, gsl_rng *r);     \
    int rs_engine_loss_gradient_##SUF(struct rs_engine_##SUF *e, const rs_pair *d, double *loss, \
                                      double *grad);                                             \
    void rs_engine_params_##SUF(struct rs_engine_##SUF *e, double *out, const double *in);

RS_DECLARE_ENGINE(f64)
RS_DECLARE_ENGINE(f32)

#endif
