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

/* A normal deviate with standard deviation sd from the generator ctx. */
typedef double (*rs_normal_fn)(void *ctx, double sd);

#define RS_DECLARE_ENGINE(SUF)                                                                   \
    struct rs_engine_##SUF;                                                                      \
    struct rs_engine_##SUF *rs_engine_alloc_##SUF(const rs_arch *arch, const rs_map_shape *shapes, \
                                                  int S);                                        \
    void rs_engine_free_##SUF(struct rs_engine_##SUF *e);                                        \
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
