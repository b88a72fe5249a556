/* net.c — architecture records, network shapes and the precision dispatch (see net.h). */
#include "repsweep/net.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_randist.h>

#include "net_private.h"
#include "repsweep/rng.h"
#include "repsweep/status.h"

struct rs_net {
    rs_arch arch;
    rs_precision precision;
    int S;                       /* stages */
    rs_map_shape *shapes;        /* S + 1 maps */
    struct rs_engine_f64 *e64;   /* exactly one of e64, e32 is set */
    struct rs_engine_f32 *e32;
    gsl_rng *dropout_rng;        /* NULL without dropout */
    size_t n_params;
};

static const char *const activation_names[] = {"leaky_relu", "relu", "elu", "tanh", "swish",
                                               "identity"};

const char *rs_activation_name(rs_activation a)
{
    return (unsigned)a < sizeof activation_names / sizeof *activation_names ? activation_names[a]
                                                                            : "?";
}

int rs_activation_from_name(const char *name, rs_activation *out)
{
    for (size_t i = 0; i < sizeof activation_names / sizeof *activation_names; i++)
        if (strcmp(name, activation_names[i]) == 0) {
            *out = (rs_activation)i;
            return RS_OK;
        }
    if (strcmp(name, "linear") == 0 || strcmp(name, "none") == 0) {
        *out = RS_ACT_IDENTITY;
        return RS_OK;
    }
    return RS_E_NOTFOUND;
}

const char *rs_precision_name(rs_precision p)
{
    return p == RS_PRECISION_FLOAT32 ? "float32" : "float64";
}

int rs_precision_from_name(const char *name, rs_precision *out)
{
    if (strcmp(name, "float64") == 0 || strcmp(name, "double") == 0)
        *out = RS_PRECISION_FLOAT64;
    else if (strcmp(name, "float32") == 0 || strcmp(name, "float") == 0)
        *out = RS_PRECISION_FLOAT32;
    else
        return RS_E_NOTFOUND;
    return RS_OK;
}

void rs_pair_from_gaps(rs_pair *d, double input_gap, double target_gap)
{
    /* Appendix B.1: inputs -1 and -1 + dx, targets 0.6 and 0.6 + dy */
    d->x[0] = -1.0;
    d->x[1] = -1.0 + input_gap;
    d->y[0] = 0.6;
    d->y[1] = 0.6 + target_gap;
}

int rs_arch_stage_count(const rs_arch *arch)
{
    return arch->conv_channels > 0 ? arch->hidden_layers + 2 : arch->hidden_layers;
}

int rs_arch_observed_stage(const rs_arch *arch)
{
    /* dense: hidden layer L/2 (1-based) = stage L/2 - 1; conv: conv L/2 = stage L/2 */
    if (arch->conv_channels > 0)
        return arch->hidden_layers / 2;
    int s = arch->hidden_layers / 2 - 1;
    return s < 0 ? 0 : s;
}

static int why(char *buf, size_t len, const char *msg)
{
    if (buf && len)
        snprintf(buf, len, "%s", msg);
    return RS_E_INVALID;
}

static void arch_shapes(const rs_arch *a, rs_map_shape *m);
static double shapes_workspace_bytes(const rs_map_shape *m, int S, double dropout, size_t real);

/* The memory of a trial (rs_arch_workspace_bytes, in doubles: no overflow) within
 * RS_ARCH_MAX_BYTES, checked on float32's size (float64 needs twice as much); the caller
 * has checked every other constraint, so that the shapes' counts fit in size_t. */
static int check_size(const rs_arch *a, char *buf, size_t len)
{
    const int S = rs_arch_stage_count(a);
    rs_map_shape *m = calloc((size_t)S + 1, sizeof *m);
    if (!m)
        return why(buf, len, "out of memory while checking its size");
    arch_shapes(a, m);
    const double bytes = shapes_workspace_bytes(m, S, a->dropout, sizeof(float));
    free(m);
    if (bytes <= RS_ARCH_MAX_BYTES)
        return RS_OK;
    if (buf && len)
        snprintf(buf, len, "a trial would need about %.3g GiB of memory (weights and workspace "
                 "in float32; twice that in float64), above the limit of %.0f GiB",
                 bytes / 1073741824.0, RS_ARCH_MAX_BYTES / 1073741824.0);
    return RS_E_INVALID;
}

int rs_arch_validate(const rs_arch *a, char *buf, size_t len)
{
    if (a->hidden_layers < 1 || a->hidden_layers > RS_ARCH_MAX_HIDDEN_LAYERS)
        return why(buf, len, "hidden_layers must be in [1, " RS_STRINGIFY(
                                 RS_ARCH_MAX_HIDDEN_LAYERS) "]");
    if (a->units < 1)
        return why(buf, len, "units must be >= 1");
    if ((unsigned)a->activation > RS_ACT_IDENTITY)
        return why(buf, len, "unknown activation");
    if (!(a->dropout >= 0 && a->dropout < 1))
        return why(buf, len, "dropout must be in [0, 1)");
    if (a->conv_channels < 0)
        return why(buf, len, "conv_channels must be >= 0");
    if (a->conv_channels > 0) {
        if (a->conv_kernel < 1)
            return why(buf, len, "conv_kernel must be >= 1 for a convolutional net");
        if (a->hidden_layers < 2)
            return why(buf, len, "a convolutional net needs hidden_layers >= 2");
        long final_len = a->units - (long)(a->hidden_layers + 1) * (a->conv_kernel - 1);
        if (final_len < 1)
            return why(buf, len, "convolutions shorten the signal below length 1: "
                                 "units must exceed (hidden_layers + 1) * (conv_kernel - 1)");
        if (a->skip)
            return why(buf, len, "skip connections are not defined for convolutional nets");
        if ((double)a->conv_channels * a->units > INT_MAX) /* a map's width is an int */
            return why(buf, len, "conv_channels x units must be at most 2147483647");
    }
    return check_size(a, buf, len);
}

static void dense_shape(rs_map_shape *m, int in, int out)
{
    memset(m, 0, sizeof *m);
    m->in = in;
    m->out = out;
    m->n_weight = (size_t)in * out;
    m->fan_in = in;
    m->fan_out = out;
}

static void conv_shape(rs_map_shape *m, int c_in, int c_out, int len_in, int k)
{
    memset(m, 0, sizeof *m);
    m->conv = 1;
    m->c_in = c_in;
    m->c_out = c_out;
    m->len_in = len_in;
    m->len_out = len_in - k + 1;
    m->k = k;
    m->in = c_in * len_in;
    m->out = c_out * m->len_out;
    m->n_weight = (size_t)c_out * c_in * k;
    m->fan_in = (double)c_in * k; /* PyTorch's fans for a (c_out, c_in, k) weight */
    m->fan_out = (double)c_out * k;
}

/* Shapes of the S stages and the output layer (the reading documented in net.h). */
static void arch_shapes(const rs_arch *a, rs_map_shape *m)
{
    int L = a->hidden_layers, U = a->units;
    dense_shape(&m[0], 1, U);
    if (a->conv_channels == 0) {
        for (int s = 1; s < L; s++)
            dense_shape(&m[s], U, U);
        dense_shape(&m[L], U, 1);
        return;
    }
    int C = a->conv_channels, K = a->conv_kernel;
    int len = U;
    conv_shape(&m[1], 1, C, len, K);
    len -= K - 1;
    for (int s = 2; s <= L; s++, len -= K - 1)
        conv_shape(&m[s], C, C, len, K);
    conv_shape(&m[L + 1], C, 1, len, K);
    len -= K - 1;
    dense_shape(&m[L + 2], len, 1);
}

/* Weights and biases of the S stages and the output layer. */
static size_t shapes_param_count(const rs_map_shape *m, int S)
{
    size_t n = 0;
    for (int s = 0; s <= S; s++)
        n += m[s].n_weight + (size_t)(m[s].conv ? m[s].c_out : m[s].out);
    return n;
}

/* The shapes of `arch` (S + 1 maps) in a new array, NULL if invalid or out of memory. */
static rs_map_shape *arch_shapes_alloc(const rs_arch *arch)
{
    if (rs_arch_validate(arch, NULL, 0) != RS_OK)
        return NULL;
    rs_map_shape *m = calloc((size_t)rs_arch_stage_count(arch) + 1, sizeof *m);
    if (m)
        arch_shapes(arch, m);
    return m;
}

size_t rs_arch_param_count(const rs_arch *arch)
{
    rs_map_shape *m = arch_shapes_alloc(arch);
    size_t n = m ? shapes_param_count(m, rs_arch_stage_count(arch)) : 0;
    free(m);
    return n;
}

double rs_arch_conv_macs(const rs_arch *arch)
{
    rs_map_shape *m = arch_shapes_alloc(arch);
    double macs = 0;
    for (int s = 0; m && s <= rs_arch_stage_count(arch); s++)
        if (m[s].conv)
            macs += (double)m[s].n_weight * m[s].len_out;
    free(m);
    return macs;
}

/* n numbers of `real` bytes as the engine allocates them: 64-byte aligned blocks. In
 * doubles, which hold every byte count up to 2^53 exactly and larger ones without wrapping. */
static double aligned_array_bytes(size_t n, size_t real)
{
    double bytes = ceil((double)n * (double)real / 64) * 64;
    return bytes > 0 ? bytes : 64;
}

size_t rs_arch_workspace_bytes(const rs_arch *arch, rs_precision precision)
{
    rs_map_shape *m = arch_shapes_alloc(arch);
    if (!m)
        return 0;
    size_t real = precision == RS_PRECISION_FLOAT32 ? sizeof(float) : sizeof(double);
    double bytes = shapes_workspace_bytes(m, rs_arch_stage_count(arch), arch->dropout, real);
    free(m);
    return (size_t)bytes; /* validated: at most 2 * RS_ARCH_MAX_BYTES */
}

static double shapes_workspace_bytes(const rs_map_shape *m, int S, double dropout, size_t real)
{
    double bytes = 0;
    size_t max_width = 1, max_col = 1, max_partial = 1, max_conv_grad = 1;
    for (int s = 0; s <= S; s++) {
        bytes += aligned_array_bytes(m[s].n_weight, real) +
                 aligned_array_bytes((size_t)(m[s].conv ? m[s].c_out : m[s].out), real);
        if (dropout > 0) /* mask and masked input */
            bytes += 2 * aligned_array_bytes(2 * (size_t)m[s].in, real);
        if (s < S) /* pre-activation, activation, dL/da for both points */
            bytes += 3 * aligned_array_bytes(2 * (size_t)m[s].out, real);
        if ((size_t)m[s].out > max_width)
            max_width = (size_t)m[s].out;
        if (m[s].conv && (size_t)m[s].c_in * m[s].k * m[s].len_out > max_col)
            max_col = (size_t)m[s].c_in * m[s].k * m[s].len_out;
        if (rs_dense_partial_count(&m[s]) > max_partial)
            max_partial = rs_dense_partial_count(&m[s]);
        if (rs_conv_grad_count(&m[s]) > max_conv_grad)
            max_conv_grad = rs_conv_grad_count(&m[s]);
    }
    /* scratch: dL/dz, the convolution's two column buffers per point and its per-point
     * gradients, the dense backward pass's per-block sums */
    bytes += aligned_array_bytes(2 * max_width, real) + 4 * aligned_array_bytes(max_col, real) +
             aligned_array_bytes(max_conv_grad, real) + aligned_array_bytes(max_partial, real);
    return bytes;
}

rs_net *rs_net_alloc(const rs_arch *arch, rs_precision precision)
{
    if (rs_arch_validate(arch, NULL, 0) != RS_OK)
        return NULL;
    rs_net *net = calloc(1, sizeof *net);
    if (!net)
        return NULL;
    net->arch = *arch;
    net->precision = precision;
    net->S = rs_arch_stage_count(arch);
    net->shapes = arch_shapes_alloc(arch);
    if (!net->shapes)
        goto fail;
    net->n_params = shapes_param_count(net->shapes, net->S);
    if (precision == RS_PRECISION_FLOAT32)
        net->e32 = rs_engine_alloc_f32(&net->arch, net->shapes, net->S);
    else
        net->e64 = rs_engine_alloc_f64(&net->arch, net->shapes, net->S);
    if (!net->e32 && !net->e64)
        goto fail;
    if (arch->dropout > 0 && !(net->dropout_rng = rs_rng_alloc_keyed(0)))
        goto fail;
    return net;
fail:
    rs_net_free(net);
    return NULL;
}

void rs_net_free(rs_net *net)
{
    if (!net)
        return;
    rs_engine_free_f64(net->e64);
    rs_engine_free_f32(net->e32);
    if (net->dropout_rng)
        gsl_rng_free(net->dropout_rng);
    free(net->shapes);
    free(net);
}

static double ziggurat_normal(void *ctx, double sd)
{
    return gsl_ran_gaussian_ziggurat(ctx, sd);
}

int rs_net_init(rs_net *net, double gain, uint64_t weights_key, uint64_t dropout_key)
{
    if (!(gain > 0))
        return RS_E_INVALID;
    gsl_rng *r = rs_rng_alloc_keyed(weights_key);
    if (!r)
        return RS_E_NOMEM;
    if (net->e64)
        rs_engine_init_f64(net->e64, gain, ziggurat_normal, r, net->shapes);
    else
        rs_engine_init_f32(net->e32, gain, ziggurat_normal, r, net->shapes);
    gsl_rng_free(r);
    if (net->dropout_rng)
        gsl_rng_set(net->dropout_rng, (unsigned long)dropout_key);
    return RS_OK;
}

int rs_net_probe(rs_net *net, const rs_pair *data, rs_probe *probe, double *dh2_stages)
{
    return net->e64 ? rs_engine_probe_f64(net->e64, data, probe, dh2_stages)
                    : rs_engine_probe_f32(net->e32, data, probe, dh2_stages);
}

int rs_net_epoch(rs_net *net, const rs_pair *data, double lr, rs_probe *probe,
                 double *dh2_stages)
{
    return net->e64 ? rs_engine_epoch_f64(net->e64, data, lr, probe, dh2_stages,
                                          net->arch.dropout, net->dropout_rng)
                    : rs_engine_epoch_f32(net->e32, data, lr, probe, dh2_stages,
                                          net->arch.dropout, net->dropout_rng);
}

size_t rs_net_param_count(const rs_net *net) { return net->n_params; }

int rs_net_tensor_count(const rs_net *net) { return 2 * (net->S + 1); }

size_t rs_net_tensor_shape(const rs_net *net, int k, int *rank, size_t dims[3])
{
    size_t off = 0;
    for (int s = 0; s < k / 2; s++)
        off += net->shapes[s].n_weight +
               (size_t)(net->shapes[s].conv ? net->shapes[s].c_out : net->shapes[s].out);
    const rs_map_shape *m = &net->shapes[k / 2];
    if (k % 2 == 0) { /* weight */
        if (m->conv) {
            *rank = 3;
            dims[0] = (size_t)m->c_out;
            dims[1] = (size_t)m->c_in;
            dims[2] = (size_t)m->k;
        } else {
            *rank = 2;
            dims[0] = (size_t)m->out;
            dims[1] = (size_t)m->in;
        }
        return off;
    }
    *rank = 1;
    dims[0] = (size_t)(m->conv ? m->c_out : m->out);
    return off + m->n_weight;
}

void rs_net_get_params(const rs_net *net, double *out)
{
    if (net->e64)
        rs_engine_params_f64(net->e64, out, NULL);
    else
        rs_engine_params_f32(net->e32, out, NULL);
}

void rs_net_set_params(rs_net *net, const double *in)
{
    if (net->e64)
        rs_engine_params_f64(net->e64, NULL, in);
    else
        rs_engine_params_f32(net->e32, NULL, in);
}

int rs_net_loss_gradient(rs_net *net, const rs_pair *data, double *loss, double *grad)
{
    return net->e64 ? rs_engine_loss_gradient_f64(net->e64, data, loss, grad)
                    : rs_engine_loss_gradient_f32(net->e32, data, loss, grad);
}

void rs_net_draw_dropout(rs_net *net)
{
    if (!net->dropout_rng)
        return;
    if (net->e64)
        rs_engine_draw_dropout_f64(net->e64, net->arch.dropout, net->dropout_rng);
    else
        rs_engine_draw_dropout_f32(net->e32, net->arch.dropout, net->dropout_rng);
}

void rs_net_set_threads(rs_net *net, int threads)
{
    if (net->e64)
        rs_engine_set_threads_f64(net->e64, threads);
    else
        rs_engine_set_threads_f32(net->e32, threads);
}

size_t rs_net_bytes(const rs_net *net)
{
    return net->e64 ? rs_engine_bytes_f64(net->e64) : rs_engine_bytes_f32(net->e32);
}
