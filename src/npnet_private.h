/* npnet_private.h — what npnet.c shares with the two precision builds of npnet_impl.h. */
#ifndef REPSWEEP_NPNET_PRIVATE_H
#define REPSWEEP_NPNET_PRIVATE_H

#include <stddef.h>

#include "repsweep/dataset.h"
#include "repsweep/npnet.h"

/* A normal deviate with standard deviation sd from the generator ctx. */
typedef double (*rs_np_normal_fn)(void *ctx, double sd);

/* The shape and settings of one net, fixed at allocation (npnet.c fills it; the engine keeps
 * a copy, whose width array npnet.c owns and outlives it). */
typedef struct {
    int S;                  /* stages; map s = 0..S, map S the output layer */
    const int *width;       /* S + 2: width[0] = in_dim, width[s + 1] = map s's outputs */
    int observed;           /* the observed stage */
    int R;                  /* rows per chunk */
    int max_pairs;
    rs_activation act;
    rs_npnet_options opt;
    size_t n_params;
} rs_np_shape;

#define RS_DECLARE_NPENGINE(SUF)                                                                 \
    struct rs_npe_##SUF;                                                                         \
    struct rs_npe_##SUF *rs_npe_alloc_##SUF(const rs_np_shape *sh);                              \
    void rs_npe_free_##SUF(struct rs_npe_##SUF *e);                                              \
    void rs_npe_set_threads_##SUF(struct rs_npe_##SUF *e, int threads);                          \
    void rs_npe_init_##SUF(struct rs_npe_##SUF *e, double gain, rs_np_normal_fn normal,         \
                           void *ctx);                                                           \
    double rs_npe_pass_all_##SUF(struct rs_npe_##SUF *e, const rs_dataset *d, int train,        \
                                 const rs_npnet_pair *pairs, int n_pairs);                       \
    void rs_npe_probes_##SUF(const struct rs_npe_##SUF *e, const rs_dataset *d,                 \
                             const rs_npnet_pair *pairs, int n_pairs, rs_npnet_probe *probes);   \
    void rs_npe_zero_grad_##SUF(struct rs_npe_##SUF *e);                                         \
    void rs_npe_batch_gradient_##SUF(struct rs_npe_##SUF *e, const rs_dataset *d,               \
                                     const size_t *rows, size_t count);                          \
    void rs_npe_update_##SUF(struct rs_npe_##SUF *e);                                            \
    int rs_npe_pairwise_##SUF(struct rs_npe_##SUF *e, const rs_dataset *d, const size_t *idx,   \
                              size_t m, double *out);                                            \
    void rs_npe_params_##SUF(struct rs_npe_##SUF *e, double *out, const double *in);

RS_DECLARE_NPENGINE(f64)
RS_DECLARE_NPENGINE(f32)

#endif
