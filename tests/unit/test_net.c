/* test_net.c — the network engine: analytic gradients against central finite differences
 * (float64, every activation and variant), the fused update against -lr * gradient,
 * reproducible keyed initialisation, float32 against float64, and the same bits for every
 * thread count. */
#include <gsl/gsl_errno.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "repsweep/blas.h"
#include "repsweep/net.h"
#include "repsweep/rng.h"
#include "repsweep/status.h"

static rs_arch small_arch(const char *name, rs_activation act)
{
    rs_arch a;
    memset(&a, 0, sizeof a);
    snprintf(a.name, sizeof a.name, "%s", name);
    a.activation = act;
    a.hidden_layers = 4;
    a.units = 7;
    a.gain = 1.0;
    a.lr = 0.01;
    a.epochs = 10;
    return a;
}

/* Small random biases so that the bias paths carry signal (they start at zero otherwise). */
static void jitter_biases(rs_net *net, double *theta, unsigned seed)
{
    gsl_rng *r = rs_rng_alloc_keyed(seed);
    for (int k = 1; k < rs_net_tensor_count(net); k += 2) {
        int rank;
        size_t dims[3];
        size_t off = rs_net_tensor_shape(net, k, &rank, dims);
        for (size_t i = 0; i < dims[0]; i++)
            theta[off + i] = 0.2 * (gsl_rng_uniform(r) - 0.5);
    }
    gsl_rng_free(r);
    rs_net_set_params(net, theta);
}

/* Max over parameters of |fd - analytic| / max(|analytic|, |fd|, floor), where floor is
 * 1e-4 of the largest gradient component (components below it are checked absolutely). */
static double gradcheck(const rs_arch *arch, double *worst_abs)
{
    *worst_abs = 0;
    rs_net *net = rs_net_alloc(arch, RS_PRECISION_FLOAT64);
    CHECK(net != NULL, "alloc %s", arch->name);
    if (!net)
        return 1;
    rs_pair d;
    rs_pair_from_gaps(&d, 0.5, 1.0);
    CHECK_OK(rs_net_init(net, arch->gain, rs_rng_trial_key(arch->name, 1, 0.5, 1, 3, RS_STREAM_WEIGHTS),
                         rs_rng_trial_key(arch->name, 1, 0.5, 1, 3, RS_STREAM_DROPOUT)));
    size_t n = rs_net_param_count(net);
    double *theta = malloc(n * sizeof *theta), *grad = malloc(n * sizeof *grad);
    double *dummy = malloc(n * sizeof *dummy);
    rs_net_get_params(net, theta);
    jitter_biases(net, theta, 99);
    rs_net_draw_dropout(net); /* a fixed mask for the whole check (no-op without dropout) */
    double loss;
    CHECK_OK(rs_net_loss_gradient(net, &d, &loss, grad));
    double gmax = 0;
    for (size_t i = 0; i < n; i++)
        gmax = fabs(grad[i]) > gmax ? fabs(grad[i]) : gmax;
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        /* fourth-order central differences: truncation O(h^4), rounding ~eps*L/h */
        double t0 = theta[i], h = 1e-5 * (fabs(t0) > 1 ? fabs(t0) : 1), l[4];
        const double steps[4] = {2, 1, -1, -2};
        for (int j = 0; j < 4; j++) {
            theta[i] = t0 + steps[j] * h;
            rs_net_set_params(net, theta);
            rs_net_loss_gradient(net, &d, &l[j], dummy);
        }
        theta[i] = t0;
        double fd = (-l[0] + 8 * l[1] - 8 * l[2] + l[3]) / (12 * h);
        double scale = fmax(fmax(fabs(grad[i]), fabs(fd)), 1e-4 * gmax);
        double rel = fabs(fd - grad[i]) / scale;
        if (rel > worst)
            worst = rel;
        if (fabs(fd - grad[i]) > *worst_abs)
            *worst_abs = fabs(fd - grad[i]);
    }
    rs_net_set_params(net, theta);
    free(theta);
    free(grad);
    free(dummy);
    rs_net_free(net);
    return worst;
}

/* The convolutional variant of a small test net: 3 channels, kernel 3, a 30-long signal. */
static void small_conv(rs_arch *a)
{
    a->units = 30;
    a->conv_channels = 3;
    a->conv_kernel = 3;
}

/* A float64 net of `a` at its initial weights (keys 11, 12), and the data it is tested on. */
static rs_net *float64_net_at_init(const rs_arch *a, rs_pair *d)
{
    rs_net *net = rs_net_alloc(a, RS_PRECISION_FLOAT64);
    rs_pair_from_gaps(d, 1.0, 0.7);
    CHECK_OK(rs_net_init(net, 1.0, 11, 12));
    return net;
}

static void test_gradients_match_finite_differences(void)
{
    const rs_activation acts[] = {RS_ACT_LEAKY_RELU, RS_ACT_RELU, RS_ACT_ELU, RS_ACT_TANH,
                                  RS_ACT_SWISH, RS_ACT_IDENTITY};
    for (size_t i = 0; i < sizeof acts / sizeof *acts; i++) {
        for (int variant = 0; variant < 4; variant++) {
            static const char *vname[] = {"dense", "conv", "skip", "dropout"};
            char name[64];
            snprintf(name, sizeof name, "%s-%s", rs_activation_name(acts[i]), vname[variant]);
            rs_arch a = small_arch(name, acts[i]);
            if (variant == 1) {
                small_conv(&a);
            } else if (variant == 2) {
                a.hidden_layers = 6;
                a.skip = 1;
            } else if (variant == 3) {
                a.dropout = 0.3;
            }
            double worst_abs, worst = gradcheck(&a, &worst_abs);
            printf("gradcheck %-22s max rel err %.2e (max abs %.2e)\n", name, worst, worst_abs);
            CHECK(worst < 1e-6, "%s: finite differences disagree, rel err %.3g", name, worst);
        }
    }
}

/* The training step (fused backward + update) must equal theta - lr * gradient. */
static void test_epoch_step_is_gradient_step(void)
{
    const int variants[] = {0, 1, 2, 3};
    for (size_t v = 0; v < 4; v++) {
        rs_arch a = small_arch("step", RS_ACT_TANH);
        if (variants[v] == 1) {
            small_conv(&a);
        } else if (variants[v] == 2) {
            a.hidden_layers = 5;
            a.skip = 1;
            a.units = 40; /* more than one fused row block */
        } else if (variants[v] == 3) {
            a.hidden_layers = 3;
            a.units = 200; /* 40000 weights: split into 8 row blocks (net_private.h) */
        }
        rs_pair d;
        rs_net *net = float64_net_at_init(&a, &d);
        size_t n = rs_net_param_count(net);
        double *theta = malloc(n * sizeof *theta), *grad = malloc(n * sizeof *grad);
        double *after = malloc(n * sizeof *after), loss;
        rs_net_get_params(net, theta);
        CHECK_OK(rs_net_loss_gradient(net, &d, &loss, grad));
        rs_probe pr;
        CHECK_OK(rs_net_epoch(net, &d, 0.05, &pr, NULL));
        CHECK_CLOSE(pr.loss, loss, 1e-14, 1e-300, "probe loss = training loss (no dropout)");
        rs_net_get_params(net, after);
        double worst = 0;
        for (size_t i = 0; i < n; i++) {
            double want = theta[i] - 0.05 * grad[i];
            double err = fabs(after[i] - want) / fmax(fabs(want), 1e-12);
            worst = err > worst ? err : worst;
        }
        printf("epoch step variant %d: max rel deviation from theta - lr*grad %.2e\n",
               variants[v], worst);
        CHECK(worst < 1e-12, "variant %d: fused update deviates by %.3g", variants[v], worst);
        free(theta);
        free(grad);
        free(after);
        rs_net_free(net);
    }
}

static void test_init_is_keyed_and_reproducible(void)
{
    rs_arch a = small_arch("default", RS_ACT_LEAKY_RELU);
    rs_net *n1 = rs_net_alloc(&a, RS_PRECISION_FLOAT64), *n2 = rs_net_alloc(&a, RS_PRECISION_FLOAT64);
    size_t n = rs_net_param_count(n1);
    double *p1 = malloc(n * sizeof *p1), *p2 = malloc(n * sizeof *p2);
    uint64_t k = rs_rng_trial_key("default", 1.0, 1.0, 0.7071, 0, RS_STREAM_WEIGHTS);
    rs_net_init(n1, 1.0, k, 0);
    rs_net_init(n2, 1.0, k, 0);
    rs_net_get_params(n1, p1);
    rs_net_get_params(n2, p2);
    CHECK(memcmp(p1, p2, n * sizeof *p1) == 0, "same key gave different weights");
    uint64_t k2 = rs_rng_trial_key("default", 1.0, 1.0, 0.7071, 1, RS_STREAM_WEIGHTS);
    CHECK(k2 != k, "seed does not enter the key");
    CHECK(rs_rng_trial_key("default", 1.0, 1.0, 0.7072, 0, RS_STREAM_WEIGHTS) != k,
          "target_gap does not enter the key");
    rs_net_init(n2, 1.0, k2, 0);
    rs_net_get_params(n2, p2);
    CHECK(memcmp(p1, p2, n * sizeof *p1) != 0, "different keys gave the same weights");
    /* Xavier std: the hidden 7x7 maps have std sqrt(2/14) */
    double ss = 0;
    size_t cnt = 0;
    for (int t = 2; t < rs_net_tensor_count(n1) - 2; t += 2) {
        int rank;
        size_t dims[3], off = rs_net_tensor_shape(n1, t, &rank, dims);
        for (size_t i = 0; i < dims[0] * dims[1]; i++, cnt++)
            ss += p1[off + i] * p1[off + i];
    }
    printf("xavier: %zu hidden weights, sample std %.4f, expected %.4f\n", cnt, sqrt(ss / cnt),
           sqrt(2.0 / 14));
    CHECK(fabs(sqrt(ss / cnt) / sqrt(2.0 / 14) - 1) < 0.25, "Xavier std off");
    free(p1);
    free(p2);
    rs_net_free(n1);
    rs_net_free(n2);
}

static void test_float32_tracks_float64(void)
{
    rs_arch a = small_arch("f32", RS_ACT_LEAKY_RELU);
    a.units = 50;
    a.hidden_layers = 6;
    rs_net *n64 = rs_net_alloc(&a, RS_PRECISION_FLOAT64), *n32 = rs_net_alloc(&a, RS_PRECISION_FLOAT32);
    rs_pair d;
    rs_pair_from_gaps(&d, 1.0, 0.7071);
    rs_net_init(n64, 1.0, 5, 0);
    rs_net_init(n32, 1.0, 5, 0);
    rs_probe p64, p32;
    double worst = 0;
    for (int e = 0; e < 50; e++) {
        rs_net_epoch(n64, &d, 0.01, &p64, NULL);
        rs_net_epoch(n32, &d, 0.01, &p32, NULL);
        double err = fabs(p64.dh2 - p32.dh2) / p64.dh2;
        worst = err > worst ? err : worst;
    }
    printf("float32 vs float64 over 50 epochs: max rel diff of dh2 %.2e\n", worst);
    CHECK(worst < 1e-4, "float32 drifts from float64: %.3g", worst);
    CHECK(rs_net_bytes(n32) < rs_net_bytes(n64), "float32 workspace not smaller");
    rs_net_free(n64);
    rs_net_free(n32);
}

static void test_invalid_architectures_are_refused(void)
{
    rs_arch a = small_arch("bad", RS_ACT_RELU);
    char why[128];
    a.units = 0;
    CHECK(rs_arch_validate(&a, why, sizeof why) == RS_E_INVALID, "units 0 accepted");
    a = small_arch("bad", RS_ACT_RELU);
    a.conv_channels = 4;
    a.conv_kernel = 5;
    a.units = 10; /* (4+1)*4 = 20 > 10: the signal vanishes */
    CHECK(rs_arch_validate(&a, why, sizeof why) == RS_E_INVALID, "vanishing conv accepted");
    CHECK(rs_net_alloc(&a, RS_PRECISION_FLOAT64) == NULL, "alloc of invalid arch succeeded");
    a = small_arch("bad", RS_ACT_RELU);
    a.dropout = 1.0;
    CHECK(rs_arch_validate(&a, why, sizeof why) == RS_E_INVALID, "dropout 1 accepted");
}

/* rs_net_loss_gradient overwrites its gradient buffers: a gradient taken at parameters that
 * overflow (Inf/NaN everywhere) must not leave anything behind, so the gradient at the
 * restored parameters equals the first one (0 * Inf = NaN would keep it), dense and conv. */
static void test_gradient_recovers_after_overflow(void)
{
    for (int conv = 0; conv < 2; conv++) {
        rs_arch a = small_arch("overflow", RS_ACT_TANH);
        if (conv)
            small_conv(&a);
        rs_pair d;
        rs_net *net = float64_net_at_init(&a, &d);
        size_t n = rs_net_param_count(net);
        double *theta = malloc(n * sizeof *theta), *huge = malloc(n * sizeof *huge);
        double *first = malloc(n * sizeof *first), *again = malloc(n * sizeof *again), loss;
        rs_net_get_params(net, theta);
        CHECK_OK(rs_net_loss_gradient(net, &d, &loss, first));
        for (size_t i = 0; i < n; i++)
            huge[i] = theta[i] * 1e200 + 1e200; /* biases too */
        rs_net_set_params(net, huge);
        rs_net_loss_gradient(net, &d, &loss, again); /* non-finite: only its buffers matter */
        rs_net_set_params(net, theta);
        CHECK_OK(rs_net_loss_gradient(net, &d, &loss, again));
        size_t bad = 0;
        for (size_t i = 0; i < n; i++)
            bad += !(again[i] == first[i]);
        CHECK(bad == 0, "%s: %zu of %zu gradient entries differ after an overflowed gradient",
              conv ? "conv" : "dense", bad, n);
        free(theta);
        free(huge);
        free(first);
        free(again);
        rs_net_free(net);
    }
}

/* Dense maps of >= 32768 weights are split into row blocks that threads share out, and a
 * convolution into its two data points; the parts are fixed by the shape, so every thread
 * count must give the same bits: weights, probes and gradients after 25 epochs, for the plain,
 * skip, dropout and convolution variants in both precisions. 200 units: 8 blocks of 28 rows,
 * the last one short (4 rows). The convolutions' points go to threads only while OpenBLAS
 * runs single-threaded, as main() sets it. */
static void run_with_threads(const rs_arch *a, rs_precision prec, int threads, double *params,
                             double *probes, double *grad)
{
    rs_net *net = rs_net_alloc(a, prec);
    CHECK(net != NULL, "alloc %s", a->name);
    if (!net)
        return;
    rs_net_set_threads(net, threads);
    rs_pair d;
    rs_pair_from_gaps(&d, 1.0, 0.7);
    CHECK_OK(rs_net_init(net, 1.0, 21, 22));
    for (int e = 0; e < 25; e++) {
        rs_probe pr;
        CHECK_OK(rs_net_epoch(net, &d, 0.02, &pr, NULL));
        probes[2 * e] = pr.dh2;
        probes[2 * e + 1] = pr.loss;
    }
    double loss;
    CHECK_OK(rs_net_loss_gradient(net, &d, &loss, grad));
    rs_net_get_params(net, params);
    rs_net_free(net);
}

static void test_threads_do_not_change_results(void)
{
    for (int variant = 0; variant < 4; variant++)
        for (int prec = 0; prec < 2; prec++) {
            rs_arch a = small_arch("threads", RS_ACT_LEAKY_RELU);
            a.hidden_layers = 3;
            a.units = 200;
            a.skip = variant == 1;
            a.dropout = variant == 2 ? 0.1 : 0;
            if (variant == 3) { /* a dense map of 200 rows, then convolutions of 5 channels */
                a.conv_channels = 5;
                a.conv_kernel = 7;
            }
            rs_precision p = prec ? RS_PRECISION_FLOAT32 : RS_PRECISION_FLOAT64;
            size_t n = rs_arch_param_count(&a);
            double *ref = malloc(2 * n * sizeof *ref), *got = malloc(2 * n * sizeof *got);
            double ref_probes[50], got_probes[50];
            run_with_threads(&a, p, 1, ref, ref_probes, ref + n);
            for (int threads = 2; threads <= 3; threads++) {
                run_with_threads(&a, p, threads, got, got_probes, got + n);
                CHECK(memcmp(ref, got, 2 * n * sizeof *ref) == 0 &&
                          memcmp(ref_probes, got_probes, sizeof ref_probes) == 0,
                      "variant %d, %s: %d threads changed the results", variant,
                      rs_precision_name(p), threads);
            }
            free(ref);
            free(got);
        }
}

int main(void)
{
    gsl_set_error_handler_off();
    rs_blas_single_thread(); /* as the CLI does: --threads goes to the network */
    test_gradients_match_finite_differences();
    test_epoch_step_is_gradient_step();
    test_init_is_keyed_and_reproducible();
    test_float32_tracks_float64();
    test_invalid_architectures_are_refused();
    test_threads_do_not_change_results();
    test_gradient_recovers_after_overflow();
    return CHECK_REPORT("test_net");
}
