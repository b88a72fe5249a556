/* net.h — the networks of Table 1 and their training by full-batch gradient descent.
 *
 * Owns: the architecture record (a network is data, never code per experiment); one
 * workspace per trial holding weights, activations and scratch (allocated once by
 * rs_net_alloc, freed by rs_net_free; nothing is allocated per epoch); Xavier-normal
 * initialisation from a keyed generator (rng.h); the forward pass, the probes, and one
 * epoch of plain full-batch gradient descent on L = 1/2 mean_i (f(x_i) - y_i)^2.
 * Precision float64 (default) or float32, from one source (net_impl.h, compiled twice).
 * The convolutions' matrix products go through OpenBLAS (cblas), dense products (a matrix
 * times the two points) through vectorised kernels (net_impl.h); the work is cut into fixed
 * parts shared out over OpenMP threads (rs_net_set_threads).
 * Never: files, MPI, the ODE, printing.
 *
 * Networks (input and output width 1; biases present and zero at start; Xavier-normal
 * weights, std = gain * sqrt(2 / (fan_in + fan_out))). A network is a chain of *stages*
 * (hidden layers), each a linear map plus bias followed by the activation, then a linear
 * output layer (no activation). Readings of the paper (NOTES.md; the authors' code):
 * - dense: stage 0 = Linear(1 -> units), stages 1..L-1 = Linear(units -> units);
 *   S = L stages; the observed layer H is hidden layer L/2, i.e. stage L/2 - 1.
 * - convolution (conv_channels C, kernel K, no padding, each conv shortens the length by
 *   K-1): stage 0 = Linear(1 -> units) (a 1-channel signal of length `units`), stage 1 =
 *   Conv1d(1 -> C), stages 2..L = Conv1d(C -> C), stage L+1 = Conv1d(C -> 1), then the
 *   output Linear(flattened length -> 1); S = L + 2 stages; H is the flattened C-channel
 *   output of conv L/2 (stage L/2), the last conv of the first half of the L C-channel convs.
 * - skip connections: from the second stage on, a stage's post-activation output gets the
 *   post-activation output of the stage two before it added (a_s += a_{s-2}); for s = 1 the
 *   "stage two before" is the input x itself (width 1, added to every unit), as in the
 *   authors' code, where a width-1 tensor broadcasts. Nothing is added into the output layer.
 * - dropout p: inverted dropout (kept units scaled by 1/(1-p)) on the input of every linear
 *   map, the first (the input x) and the output layer included; masks are drawn each epoch
 *   from the trial's dropout stream; probes and the recorded loss are taken with dropout off
 *   (evaluation mode), so a dropout net runs a second, masked forward pass for training.
 * Activations: leaky ReLU (slope 0.01), ReLU, ELU (alpha 1), tanh, swish (x*sigmoid(x)),
 * identity. */
#ifndef REPSWEEP_NET_H
#define REPSWEEP_NET_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    RS_ACT_LEAKY_RELU = 0,
    RS_ACT_RELU,
    RS_ACT_ELU,
    RS_ACT_TANH,
    RS_ACT_SWISH,
    RS_ACT_IDENTITY
} rs_activation;

typedef enum { RS_PRECISION_FLOAT64 = 0, RS_PRECISION_FLOAT32 = 1 } rs_precision;

#define RS_ARCH_NAME_MAX 64

/* An architecture: the shape of the network and Table 1's training settings for it. */
typedef struct {
    char name[RS_ARCH_NAME_MAX];
    rs_activation activation;
    int hidden_layers;     /* L */
    int units;             /* width of every dense hidden layer */
    int conv_channels;     /* 0: dense; > 0: convolutional hidden stages (see above) */
    int conv_kernel;       /* kernel size of the convolutions */
    int skip;              /* 1: skip connections over two stages */
    double dropout;        /* 0: none; else the drop probability p */
    double gain;           /* Table 1's initial gain */
    double lr;             /* Table 1's learning rate */
    long epochs;           /* Table 1's epochs */
} rs_arch;

/* The two-point dataset: inputs -1, -1 + input_gap; targets 0.6, 0.6 + target_gap. */
typedef struct {
    double x[2];
    double y[2];
} rs_pair;

void rs_pair_from_gaps(rs_pair *d, double input_gap, double target_gap);

/* What is measured every epoch, before the update, in evaluation mode (Sec. 2, Eq. 8). */
typedef struct {
    double dh2;        /* ||h(x2) - h(x1)||^2 at the observed layer */
    double dyhat2;     /* ||f(x2) - f(x1)||^2, the predicted output difference */
    double w;          /* dyhat2 - (f(x2) - f(x1)) (y2 - y1) */
    double loss;       /* 1/2 mean_i (f(x_i) - y_i)^2 */
    double yhat_mean;  /* (f(x1) + f(x2)) / 2, for the mean-output term of Eq. 9 */
} rs_probe;

typedef struct rs_net rs_net;

const char *rs_activation_name(rs_activation a);
int rs_activation_from_name(const char *name, rs_activation *out);
const char *rs_precision_name(rs_precision p);
int rs_precision_from_name(const char *name, rs_precision *out);

/* The largest architecture rs_arch_validate accepts: hidden_layers, and the memory of one
 * trial (weights and workspace, rs_arch_workspace_bytes in float32) — 1 TiB, far beyond any
 * node, so that a net that cannot fit is refused with its size before anything runs, and
 * every size computed from a valid architecture fits in size_t. */
#define RS_ARCH_MAX_HIDDEN_LAYERS 100000
#define RS_ARCH_MAX_BYTES 1099511627776.0
#define RS_STRINGIFY2(x) #x
#define RS_STRINGIFY(x) RS_STRINGIFY2(x)

/* Checks an architecture for consistency (positive sizes, conv lengths stay positive, the
 * size limits above). Returns RS_OK or RS_E_INVALID with a reason in `why` (may be NULL). */
int rs_arch_validate(const rs_arch *arch, char *why, size_t why_len);

/* Number of stages (hidden layers that can be observed) and the default observed stage. */
int rs_arch_stage_count(const rs_arch *arch);
int rs_arch_observed_stage(const rs_arch *arch);

/* Parameters (weights and biases) of a network of this shape, without allocating it;
 * 0 for an invalid architecture. */
size_t rs_arch_param_count(const rs_arch *arch);
/* Multiply-adds of one forward pass of one point through the convolutional maps (0 for a
 * dense net): the part of an epoch's cost that the weights' size does not tell (cost model,
 * grid.h). 0 for an invalid architecture. */
double rs_arch_conv_macs(const rs_arch *arch);

/* What rs_net_bytes will report for a network of this shape, computed from the shapes
 * alone (weights, per-stage activations, dropout masks, convolution scratch, as the engine
 * lays them out; test_grid checks the two agree): the memory a trial needs, for planning.
 * Not the parameters: the convolution net's activations are 25 times its weights.
 * 0 for an invalid architecture. */
size_t rs_arch_workspace_bytes(const rs_arch *arch, rs_precision precision);

/* Allocate the workspace for one trial. NULL on allocation failure or invalid arch. */
rs_net *rs_net_alloc(const rs_arch *arch, rs_precision precision);
void rs_net_free(rs_net *net);

/* Threads (OpenMP; default 1). A dense map's rows are split into fixed blocks (net_private.h)
 * and a convolution's work into its two data points, which threads share out, so a trial's
 * numbers are the same for every thread count; dense maps under 32768 weights stay on the
 * calling thread. At most 8 threads are used (2 by the convolutions). The convolutions'
 * points go to threads only while OpenBLAS runs single-threaded (openblas_set_num_threads(1),
 * as the CLI does): a pthread OpenBLAS must not be called from inside an OpenMP team. With
 * more OpenBLAS threads they run one after the other, and OpenBLAS's threaded products round
 * differently. */
void rs_net_set_threads(rs_net *net, int threads);

/* Xavier-normal weights with `gain` from the generator keyed by `weights_key`, zero biases;
 * the dropout stream (if any) is reset to `dropout_key`. */
int rs_net_init(rs_net *net, double gain, uint64_t weights_key, uint64_t dropout_key);

/* Forward both points in evaluation mode and fill *probe; if dh2_stages is non-NULL it
 * receives dh2 at every stage (rs_arch_stage_count values). */
int rs_net_probe(rs_net *net, const rs_pair *data, rs_probe *probe, double *dh2_stages);

/* One epoch: probe (as rs_net_probe, if probe != NULL), then one gradient-descent step with
 * learning rate lr. For nets without dropout the probe's forward pass is the training
 * pass, so this costs one forward and one fused backward+update over the weights.
 * After this, the weights are updated and the activations are stale. */
int rs_net_epoch(rs_net *net, const rs_pair *data, double lr, rs_probe *probe,
                 double *dh2_stages);

/* --- For tests and export: parameters as one flat float64 vector, in the order
 * stage 0 weight, stage 0 bias, ..., output weight, output bias; weights row-major as
 * (out, in) for dense maps and (out_channels, in_channels, kernel) for convolutions,
 * i.e. PyTorch's layouts. */
size_t rs_net_param_count(const rs_net *net);
int rs_net_tensor_count(const rs_net *net);  /* 2 * (stages + 1) */
/* Shape of tensor k: rank (1..3) and dims; returns its offset in the flat vector. */
size_t rs_net_tensor_shape(const rs_net *net, int k, int *rank, size_t dims[3]);
void rs_net_get_params(const rs_net *net, double *out);
void rs_net_set_params(rs_net *net, const double *in);

/* Training-mode loss and its gradient (flat, as above) with the *current* dropout masks
 * (no new draw), without updating. For gradient checks. */
int rs_net_loss_gradient(rs_net *net, const rs_pair *data, double *loss, double *grad);
/* Draw new dropout masks (what rs_net_epoch does before its training pass). */
void rs_net_draw_dropout(rs_net *net);

/* Bytes held by the workspace (weights, activations, scratch). */
size_t rs_net_bytes(const rs_net *net);

#endif
