/* test_npnet.c — the N-point engine: on the two-point data set it starts from the two-point
 * engine's weights and follows its trajectory; its gradient step matches central finite
 * differences of its loss; float32 tracks float64; the minibatch shuffle is a keyed
 * permutation; the numbers are the same bits for 1 and 2 threads (OpenBLAS at one thread, as
 * the CLI runs it); unsupported nets and bad data are refused. (The PyTorch oracle for N
 * points is tests/python/test_npoint_oracle.py.) */
#include <cblas.h>
#include "repsweep/blas.h"
#include <gsl/gsl_errno.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "repsweep/dataset.h"
#include "repsweep/net.h"
#include "repsweep/npnet.h"
#include "repsweep/rng.h"
#include "repsweep/status.h"

static rs_arch dense_arch(rs_activation act, int layers, int units, double gain, double lr)
{
    rs_arch a;
    memset(&a, 0, sizeof a);
    snprintf(a.name, sizeof a.name, "npnet_test");
    a.activation = act;
    a.hidden_layers = layers;
    a.units = units;
    a.gain = gain;
    a.lr = lr;
    a.epochs = 50;
    return a;
}

static uint64_t key(const rs_arch *a, rs_stream s)
{
    return rs_rng_trial_key(a->name, a->gain, 1.0, 0.7, 5, s);
}

static void test_two_point_data_follows_the_two_point_engine(void)
{
    rs_arch a = dense_arch(RS_ACT_LEAKY_RELU, 6, 40, 1.0, 0.01);
    rs_dataset *d;
    CHECK_OK(rs_dataset_two_point(1.0, 0.7, &d));
    rs_net *two = rs_net_alloc(&a, RS_PRECISION_FLOAT64);
    rs_npnet_options o;
    rs_npnet_options_default(&o, a.lr);
    char why[256] = "";
    rs_npnet *n = rs_npnet_alloc(&a, 1, 1, 2, 1, RS_PRECISION_FLOAT64, &o, why, sizeof why);
    CHECK(two && n, "alloc: %s", why);
    if (!two || !n)
        return;
    CHECK_OK(rs_net_init(two, a.gain, key(&a, RS_STREAM_WEIGHTS), key(&a, RS_STREAM_DROPOUT)));
    CHECK_OK(rs_npnet_init(n, a.gain, key(&a, RS_STREAM_WEIGHTS), 1));
    size_t np = rs_net_param_count(two);
    CHECK(np == rs_npnet_param_count(n), "param counts %zu %zu", np, rs_npnet_param_count(n));
    double *p2 = malloc(np * sizeof *p2), *pn = malloc(np * sizeof *pn);
    rs_net_get_params(two, p2);
    rs_npnet_get_params(n, pn);
    CHECK(memcmp(p2, pn, np * sizeof *p2) == 0, "initial weights differ from net.h's draw");
    CHECK(rs_npnet_observed_stage(n) == rs_arch_observed_stage(&a), "observed stage");
    rs_pair pair;
    rs_pair_from_gaps(&pair, 1.0, 0.7);
    rs_npnet_pair tracked = {0, 1};
    double worst = 0;
    for (int e = 0; e < 300; e++) {
        rs_probe p;
        rs_npnet_probe q;
        double loss;
        CHECK_OK(rs_net_epoch(two, &pair, a.lr, &p, NULL));
        CHECK_OK(rs_npnet_epoch(n, d, &tracked, 1, &q, &loss));
        double errs[4] = {fabs(q.dh2 - p.dh2) / p.dh2, fabs(q.dyhat2 - p.dyhat2) / p.dyhat2,
                          fabs(q.w - p.w) / fmax(fabs(p.w), 1e-3 * p.dyhat2),
                          fabs(loss - p.loss) / p.loss};
        for (int k = 0; k < 4; k++)
            worst = fmax(worst, errs[k]);
    }
    /* different kernels (GEMM vs the two-point engine's), same arithmetic up to rounding */
    CHECK(worst < 1e-10, "N-point engine departs from the two-point engine: rel err %.3g", worst);
    printf("two-point data: max rel err against rs_net over 300 epochs %.2e\n", worst);
    free(p2);
    free(pn);
    rs_net_free(two);
    rs_npnet_free(n);
    rs_dataset_free(d);
}

/* The loss at params p (evaluation). */
static double loss_at(rs_npnet *n, const rs_dataset *d, const double *p)
{
    double l;
    rs_npnet_set_params(n, p);
    rs_npnet_evaluate(n, d, NULL, 0, NULL, &l);
    return l;
}

static void test_sgd_step_is_minus_lr_times_the_loss_gradient(void)
{
    rs_dataset *d;
    char why[256] = "";
    CHECK_OK(rs_dataset_orthogonal_features(4, RS_ORTHO_SIGMA, &d, why, sizeof why));
    rs_activation acts[] = {RS_ACT_TANH, RS_ACT_SWISH, RS_ACT_ELU, RS_ACT_LEAKY_RELU};
    for (size_t k = 0; k < sizeof acts / sizeof acts[0]; k++) {
        rs_arch a = dense_arch(acts[k], 3, 9, 1.0, 1.0);
        rs_npnet_options o;
        rs_npnet_options_default(&o, 1.0); /* lr 1: the step is the gradient */
        o.chunk_rows = 5;                   /* 32 points in 7 chunks: the chunk sums count */
        rs_npnet *n = rs_npnet_alloc(&a, d->in_dim, d->out_dim, d->n, 0, RS_PRECISION_FLOAT64,
                                     &o, why, sizeof why);
        CHECK(n != NULL, "alloc: %s", why);
        if (!n)
            continue;
        rs_npnet_init(n, a.gain, key(&a, RS_STREAM_WEIGHTS), 1);
        size_t np = rs_npnet_param_count(n);
        double *p0 = malloc(np * sizeof *p0), *p1 = malloc(np * sizeof *p1);
        double *q = malloc(np * sizeof *q);
        rs_npnet_get_params(n, p0);
        CHECK_OK(rs_npnet_epoch(n, d, NULL, 0, NULL, NULL));
        rs_npnet_get_params(n, p1);
        double worst = 0, gmax = 0;
        for (size_t i = 0; i < np; i++)
            gmax = fmax(gmax, fabs(p0[i] - p1[i]));
        for (size_t i = 0; i < np; i++) {
            double h = 1e-5 * fmax(1.0, fabs(p0[i]));
            memcpy(q, p0, np * sizeof *q);
            q[i] = p0[i] + h;
            double lp = loss_at(n, d, q);
            q[i] = p0[i] - h;
            double lm = loss_at(n, d, q);
            double fd = (lp - lm) / (2 * h), g = p0[i] - p1[i];
            worst = fmax(worst, fabs(fd - g) / fmax(fmax(fabs(g), fabs(fd)), 1e-4 * gmax));
        }
        CHECK(worst < 1e-5, "%s: gradient step vs finite differences: rel err %.3g",
              rs_activation_name(acts[k]), worst);
        free(p0);
        free(p1);
        free(q);
        rs_npnet_free(n);
    }
    rs_dataset_free(d);
}

/* Train `epochs` epochs of minibatch Adam on XOR-sized random data; returns the parameters. */
static double *train_copy(int threads, size_t batch, uint64_t shuffle_key, size_t *np_out,
                          size_t *order_out)
{
    rs_dataset *d;
    char why[256] = "";
    CHECK_OK(rs_dataset_orthogonal_features(12, RS_ORTHO_SIGMA, &d, why, sizeof why));
    rs_arch a = dense_arch(RS_ACT_TANH, 4, 200, 1.0, 1e-3);
    rs_npnet_options o;
    rs_npnet_options_default(&o, a.lr);
    o.optimizer = RS_OPT_ADAM;
    o.batch_size = batch;
    rs_npnet *n = rs_npnet_alloc(&a, d->in_dim, d->out_dim, d->n, 0, RS_PRECISION_FLOAT64, &o,
                                 why, sizeof why);
    rs_npnet_init(n, a.gain, key(&a, RS_STREAM_WEIGHTS), shuffle_key);
    rs_npnet_set_threads(n, threads);
    for (int e = 0; e < 3; e++)
        CHECK_OK(rs_npnet_epoch(n, d, NULL, 0, NULL, NULL));
    *np_out = rs_npnet_param_count(n);
    double *p = malloc(*np_out * sizeof *p);
    rs_npnet_get_params(n, p);
    if (order_out)
        memcpy(order_out, rs_npnet_order(n), d->n * sizeof *order_out);
    rs_npnet_free(n);
    rs_dataset_free(d);
    return p;
}

/* float32 from the same initial weights (rounded) follows the float64 trajectory: the
 * rounding, not a different computation, is all that separates them. */
static void test_float32_tracks_float64(void)
{
    rs_dataset *d;
    char why[256] = "";
    CHECK_OK(rs_dataset_orthogonal_features(8, RS_ORTHO_SIGMA, &d, why, sizeof why));
    rs_arch a = dense_arch(RS_ACT_TANH, 4, 100, 1.0, 0.05);
    rs_npnet_options o;
    rs_npnet_options_default(&o, a.lr);
    o.batch_size = 24;
    o.optimizer = RS_OPT_ADAM;
    o.lr = 1e-3;
    rs_npnet *n[2];
    rs_precision prec[2] = {RS_PRECISION_FLOAT64, RS_PRECISION_FLOAT32};
    for (int k = 0; k < 2; k++) {
        n[k] = rs_npnet_alloc(&a, d->in_dim, d->out_dim, d->n, 1, prec[k], &o, why, sizeof why);
        CHECK(n[k] != NULL, "alloc %s: %s", rs_precision_name(prec[k]), why);
        if (!n[k])
            return;
        rs_npnet_init(n[k], a.gain, key(&a, RS_STREAM_WEIGHTS), 9);
    }
    size_t np = rs_npnet_param_count(n[0]);
    double *p64 = malloc(np * sizeof *p64), *p32 = malloc(np * sizeof *p32);
    rs_npnet_get_params(n[0], p64);
    rs_npnet_get_params(n[1], p32);
    int same_init = 1;
    for (size_t i = 0; i < np; i++)
        same_init &= p32[i] == (double)(float)p64[i];
    CHECK(same_init, "float32 initial weights are not float64's rounded");
    rs_npnet_pair pair = {0, 64};
    double worst_loss = 0, worst_dh2 = 0, loss0 = 0, loss_end = 0;
    for (int e = 0; e < 100; e++) {
        rs_npnet_probe q[2];
        double l[2];
        for (int k = 0; k < 2; k++)
            CHECK_OK(rs_npnet_epoch(n[k], d, &pair, 1, &q[k], &l[k]));
        worst_loss = fmax(worst_loss, fabs(l[1] - l[0]) / l[0]);
        worst_dh2 = fmax(worst_dh2, fabs(q[1].dh2 - q[0].dh2) / q[0].dh2);
        loss0 = e == 0 ? l[0] : loss0;
        loss_end = l[0];
    }
    printf("float32 vs float64, 100 minibatch Adam epochs: max rel err loss %.2e, dh2 %.2e "
           "(loss %.3g -> %.3g)\n", worst_loss, worst_dh2, loss0, loss_end);
    CHECK(loss_end < 0.5 * loss0, "the net did not learn: loss %g -> %g", loss0, loss_end);
    CHECK(worst_loss < 1e-3 && worst_dh2 < 1e-3,
          "float32 departs from float64: rel err loss %.3g dh2 %.3g", worst_loss, worst_dh2);
    free(p64);
    free(p32);
    rs_npnet_free(n[0]);
    rs_npnet_free(n[1]);
    rs_dataset_free(d);
}

static void test_threads_do_not_change_results(void)
{
    size_t np1, np2;
    double *one = train_copy(1, 100, 7, &np1, NULL), *two = train_copy(2, 100, 7, &np2, NULL);
    CHECK(np1 == np2 && memcmp(one, two, np1 * sizeof *one) == 0,
          "1 and 2 threads give different weights");
    free(one);
    free(two);
}

static void test_shuffle_is_a_keyed_permutation(void)
{
    size_t n = 288, np, a[288], b[288], c[288];
    double *pa = train_copy(1, 64, 7, &np, a), *pb = train_copy(1, 64, 7, &np, b);
    double *pc = train_copy(1, 64, 8, &np, c);
    CHECK(memcmp(a, b, sizeof a) == 0 && memcmp(pa, pb, np * sizeof *pa) == 0,
          "the same shuffle key gave different orders or weights");
    CHECK(memcmp(a, c, sizeof a) != 0 && memcmp(pa, pc, np * sizeof *pa) != 0,
          "another shuffle key gave the same order");
    int seen[288] = {0}, moved = 0;
    for (size_t i = 0; i < n; i++) {
        if (a[i] < n)
            seen[a[i]]++;
        moved += a[i] != i;
    }
    int perm = 1;
    for (size_t i = 0; i < n; i++)
        perm &= seen[i] == 1;
    CHECK(perm && moved > (int)n / 2, "order is not a shuffled permutation (moved %d)", moved);
    free(pa);
    free(pb);
    free(pc);
}

static void test_full_batch_ignores_the_shuffle(void)
{
    size_t np, order[288];
    double *pa = train_copy(1, 0, 7, &np, order), *pb = train_copy(1, 288, 8, &np, NULL);
    CHECK(memcmp(pa, pb, np * sizeof *pa) == 0, "batch >= N is not the full-batch step");
    for (size_t i = 0; i < 288; i++)
        CHECK(order[i] == i, "full batch reordered the points");
    free(pa);
    free(pb);
}

static void test_refuses_what_it_cannot_train(void)
{
    rs_npnet_options o;
    rs_npnet_options_default(&o, 0.01);
    char why[256] = "";
    rs_arch a = dense_arch(RS_ACT_RELU, 4, 10, 1.0, 0.01);
    a.dropout = 0.1;
    CHECK(rs_npnet_alloc(&a, 2, 1, 4, 0, RS_PRECISION_FLOAT64, &o, why, sizeof why) == NULL &&
              strstr(why, "dropout"),
          "dropout net accepted: %s", why);
    a.dropout = 0;
    a.conv_channels = 4;
    a.conv_kernel = 3;
    CHECK(rs_npnet_alloc(&a, 2, 1, 4, 0, RS_PRECISION_FLOAT64, &o, why, sizeof why) == NULL &&
              strstr(why, "convolution"),
          "conv net accepted: %s", why);
    a.conv_channels = 0;
    o.observed_stage = 4;
    CHECK(rs_npnet_alloc(&a, 2, 1, 4, 0, RS_PRECISION_FLOAT64, &o, why, sizeof why) == NULL &&
              strstr(why, "observed_stage"),
          "observed stage 4 of 4 accepted: %s", why);
    o.observed_stage = -1;
    rs_npnet *n = rs_npnet_alloc(&a, 2, 1, 4, 1, RS_PRECISION_FLOAT64, &o, why, sizeof why);
    rs_dataset *d;
    rs_dataset_xor(&d);
    rs_npnet_init(n, 1.0, 1, 2);
    rs_npnet_pair bad = {0, 4};
    CHECK(rs_npnet_epoch(n, d, &bad, 1, NULL, NULL) == RS_E_INVALID, "pair beyond N accepted");
    rs_dataset *d2;
    rs_dataset_two_point(1, 1, &d2);
    CHECK(rs_npnet_epoch(n, d2, NULL, 0, NULL, NULL) == RS_E_INVALID,
          "data of another width accepted");
    rs_npnet_free(n);
    rs_dataset_free(d);
    rs_dataset_free(d2);
}

static void test_divergence_is_reported(void)
{
    rs_arch a = dense_arch(RS_ACT_LEAKY_RELU, 4, 20, 3.0, 1e3);
    rs_npnet_options o;
    rs_npnet_options_default(&o, a.lr);
    rs_npnet *n = rs_npnet_alloc(&a, 2, 1, 4, 0, RS_PRECISION_FLOAT64, &o, NULL, 0);
    rs_dataset *d;
    rs_dataset_xor(&d);
    rs_npnet_init(n, a.gain, 3, 4);
    int st = RS_OK;
    for (int e = 0; e < 200 && st == RS_OK; e++)
        st = rs_npnet_epoch(n, d, NULL, 0, NULL, NULL);
    CHECK(st == RS_S_DIVERGED, "lr 1e3 at gain 3 did not report divergence (status %d)", st);
    rs_npnet_free(n);
    rs_dataset_free(d);
}

int main(void)
{
    gsl_set_error_handler_off();
    rs_blas_single_thread();
    test_two_point_data_follows_the_two_point_engine();
    test_sgd_step_is_minus_lr_times_the_loss_gradient();
    test_float32_tracks_float64();
    test_threads_do_not_change_results();
    test_shuffle_is_a_keyed_permutation();
    test_full_batch_ignores_the_shuffle();
    test_refuses_what_it_cannot_train();
    test_divergence_is_reported();
    return CHECK_REPORT("test_npnet");
}
