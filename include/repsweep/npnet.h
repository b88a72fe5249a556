/* npnet.h — dense networks trained on N points (a data set, dataset.h): full-batch gradient
 * descent or minibatch SGD, with plain SGD or Adam.
 *
 * Owns: one workspace per trial (weights, optimizer state, activations of one chunk of rows,
 * the point order; allocated by rs_npnet_alloc, nothing allocated per epoch) in float64 or
 * float32; Xavier-normal initialisation from the keyed generator, drawn exactly as net.h
 * draws it (same key, same order: stage 0 weight row-major, ..., output weight; zero biases),
 * so a two-point data set starts from the two-point engine's weights; the deterministic shuffle of minibatches; the
 * probes of tracked pairs and the pairwise distances of a subset at the observed layer.
 * Never: files, MPI, the ODE, printing, the choice of keys (the trial's job).
 *
 * Network: as net.h's dense net with input width in_dim and output width out_dim: stage 0 =
 * Linear(in_dim -> units), stages 1..L-1 = Linear(units -> units), each followed by the
 * activation (net.h's list, same formulas: src/activation.h), then a linear output layer
 * Linear(units -> out_dim). Observed layer: stage L/2 - 1 (rs_arch_observed_stage) unless set.
 * Not supported here (rs_npnet_alloc refuses): convolutions, skip connections, dropout.
 *
 * Loss (the two-point engine's, net.h, extended to N points and vector outputs):
 *   L = 1/2 * mean_i ||f(x_i) - y_i||^2   (sum over outputs, mean over the points of the step).
 * An epoch: first the record (evaluation; the whole data set's loss and the tracked pairs'
 * probes at the current weights, i.e. before the epoch's first update), then the updates:
 * - full batch (batch_size 0 or >= N): one step on all N points, whose forward pass is the
 *   record's (no second pass);
 * - minibatch: the points are shuffled (Fisher-Yates from the shuffle key's generator, a new
 *   permutation every epoch), cut into consecutive batches of batch_size (the last one
 *   smaller if N is not a multiple, as PyTorch's DataLoader with drop_last = False), one step
 *   per batch; the record then costs one more forward pass over the data.
 * Optimizers: SGD (p -= lr * g) and Adam as torch.optim.Adam with its defaults (beta1 0.9,
 * beta2 0.999, eps 1e-8, no weight decay, bias correction: p -= lr / (1 - beta1^t) * m /
 * (sqrt(v) / sqrt(1 - beta2^t) + eps)).
 *
 * Products: every dense product over the rows of a chunk goes through cblas_dgemm (or
 * sgemm; OpenBLAS). The rows of a step are processed in chunks of chunk_rows (fixed by the options,
 * never by the thread count) and the chunks' gradients summed in chunk order, so the memory
 * is bounded by the chunk, not by N. Threads (rs_npnet_set_threads, OpenMP, at most
 * RS_NPNET_BLOCKS): each product's output rows are cut into fixed blocks (by shape alone),
 * each block one single-threaded GEMM, and threads share the blocks, so the numbers are the
 * same bits for every thread count (test_npnet checks 1 against 2). This needs OpenBLAS at
 * one thread (openblas_set_num_threads(1), as the CLI sets it); with more OpenBLAS threads the
 * blocks run on the calling thread and OpenBLAS's own threading rounds differently (measured:
 * 1 and 2 OpenBLAS threads gave different weights after 3 epochs of a 4 x 200 tanh net).
 * The element-wise work (biases, activations, the optimizer) runs on the calling thread.
 * Precision: float64 or float32, from one source (npnet_impl.h compiled twice, as net.h's
 * engine): weights, optimizer state and activations in the precision; the data set, the
 * loss's sums, the probes and the pairwise distances in double. The PyTorch oracle checks
 * float64; test_npnet checks that float32 tracks float64. */
#ifndef REPSWEEP_NPNET_H
#define REPSWEEP_NPNET_H

#include <stddef.h>
#include <stdint.h>

#include "repsweep/dataset.h"
#include "repsweep/net.h"

typedef enum { RS_OPT_SGD = 0, RS_OPT_ADAM = 1 } rs_optimizer;

typedef struct {
    rs_optimizer optimizer;
    double lr;
    size_t batch_size;      /* 0: full batch */
    double beta1, beta2, eps; /* Adam */
    int chunk_rows;         /* rows per pass of the products (memory and cache), >= 1 */
    int observed_stage;     /* -1: rs_arch_observed_stage */
} rs_npnet_options;

/* PyTorch's Adam defaults, full batch, SGD, chunks of 256 rows, the default observed stage. */
void rs_npnet_options_default(rs_npnet_options *o, double lr);

const char *rs_optimizer_name(rs_optimizer o);
int rs_optimizer_from_name(const char *name, rs_optimizer *out);

/* A tracked pair: point i is "x1", point j is "x2" of the two-point probes. */
typedef struct {
    size_t i, j;
} rs_npnet_pair;

/* The probes of a tracked pair (net.h's rs_probe, without the two-point-only terms). */
typedef struct {
    double dh2;     /* ||h(x_j) - h(x_i)||^2 at the observed layer */
    double dyhat2;  /* ||f(x_j) - f(x_i)||^2 */
    double w;       /* dyhat2 - (f(x_j) - f(x_i)) . (y_j - y_i) */
} rs_npnet_probe;

typedef struct rs_npnet rs_npnet;

/* A workspace for a dense arch on data of these widths with at most n_points points and at
 * most max_pairs tracked pairs. NULL with the cause in why (invalid arch or options, an
 * unsupported feature, no memory). */
rs_npnet *rs_npnet_alloc(const rs_arch *arch, int in_dim, int out_dim, size_t n_points,
                         int max_pairs, rs_precision precision, const rs_npnet_options *opt,
                         char *why, size_t why_len);
void rs_npnet_free(rs_npnet *net);

int rs_npnet_observed_stage(const rs_npnet *net);

#define RS_NPNET_BLOCKS 8
/* Threads for the products (default 1; see "Threads" above). */
void rs_npnet_set_threads(rs_npnet *net, int threads);

/* Xavier-normal weights (see above), zero biases, zero Adam state, the shuffle generator
 * reset to shuffle_key. */
int rs_npnet_init(rs_npnet *net, double gain, uint64_t weights_key, uint64_t shuffle_key);

/* The record at the current weights: the data set's loss and the pairs' probes (either may
 * be NULL). RS_S_DIVERGED if an output is not finite. */
int rs_npnet_evaluate(rs_npnet *net, const rs_dataset *d, const rs_npnet_pair *pairs,
                      int n_pairs, rs_npnet_probe *probes, double *loss);

/* One epoch: the record (as rs_npnet_evaluate), then the updates (see above).
 * RS_S_DIVERGED if the record's outputs are not finite (the weights are then not updated). */
int rs_npnet_epoch(rs_npnet *net, const rs_dataset *d, const rs_npnet_pair *pairs,
                   int n_pairs, rs_npnet_probe *probes, double *loss);

/* Squared distances ||h(x_a) - h(x_b)||^2 at the observed layer for a, b in idx[0..m-1]:
 * out is m x m, row-major, symmetric, zero diagonal. Allocates m x units scratch (once per
 * call: meant for the end of training, not per epoch). */
int rs_npnet_pairwise_dh2(rs_npnet *net, const rs_dataset *d, const size_t *idx, size_t m,
                          double *out);

/* The permutation of the last minibatch epoch (N indices; identity before the first). */
const size_t *rs_npnet_order(const rs_npnet *net);

/* Parameters as one flat vector in net.h's order and PyTorch's layouts (stage 0 weight
 * (out, in), stage 0 bias, ..., output weight, output bias). */
size_t rs_npnet_param_count(const rs_npnet *net);
void rs_npnet_get_params(const rs_npnet *net, double *out);
void rs_npnet_set_params(rs_npnet *net, const double *in);

#endif
