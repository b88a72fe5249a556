/* npoint_driver — a test-only front end to the N-point engine (npnet.h) for the PyTorch oracle
 * (tests/python/test_npoint_oracle.py); not installed, not part of the CLI.
 *
 *   npoint_driver OUTDIR DATA ARCH key=value...
 *   DATA: xor | orthogonal_features:POSITIONS | csv:PATH | idx:IMAGES:LABELS[:LIMIT]
 *   keys: activation (leaky_relu), layers (4), units (100), gain (1), lr (0.01), epochs (100),
 *         batch (0 = full), optimizer (sgd|adam), seed (0), chunk (256), pairs (i:j,i:j...),
 *         subset (first M points sorted by label; 0 = none), threads (1; OpenBLAS runs at 1),
 *         precision (float64)
 * Writes to OUTDIR, all float64 little-endian raw arrays unless said:
 *   meta.txt      n in_dim out_dim n_params observed_stage (one "key value" per line), and
 *                 seconds: the wall time of the training epochs (for tests/bench only)
 *   x.bin y.bin   the data set (n x in_dim, n x out_dim)
 *   init.bin      the initial parameters (npnet.h's flat order)
 *   record.bin    per epoch: loss, then dh2 dyhat2 w per pair (epochs x (1 + 3 pairs))
 *   order.bin     per epoch, the minibatch permutation (int64, epochs x n; minibatch only)
 *   subset.bin    the subset's point indices (int64), pairwise.bin its m x m dh2 after training
 * Exit status 0, or 1 with the cause on stderr. */
#include <cblas.h>
#include "repsweep/blas.h"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "repsweep/dataset.h"
#include "repsweep/npnet.h"
#include "repsweep/rng.h"
#include "repsweep/status.h"

#define MAX_PAIRS 16

static int write_raw(const char *dir, const char *name, const void *p, size_t bytes)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(p, 1, bytes, f) != bytes || fclose(f) != 0) {
        fprintf(stderr, "npoint_driver: cannot write %s\n", path);
        return 1;
    }
    return 0;
}

static int load_data(const char *spec, rs_dataset **d, char *why, size_t len)
{
    if (strcmp(spec, "xor") == 0)
        return rs_dataset_xor(d);
    if (strncmp(spec, "orthogonal_features:", 20) == 0)
        return rs_dataset_orthogonal_features(atoi(spec + 20), RS_ORTHO_SIGMA, d, why, len);
    if (strncmp(spec, "csv:", 4) == 0)
        return rs_dataset_load_csv(spec + 4, d, why, len);
    if (strncmp(spec, "idx:", 4) == 0) {
        char buf[4096];
        snprintf(buf, sizeof buf, "%s", spec + 4);
        char *img = buf, *lab = strchr(img, ':');
        if (!lab)
            return RS_E_INVALID;
        *lab++ = '\0';
        char *lim = strchr(lab, ':');
        if (lim)
            *lim++ = '\0';
        return rs_dataset_load_idx(img, lab, 10, lim ? strtoul(lim, NULL, 10) : 0, d, why, len);
    }
    snprintf(why, len, "unknown data set %s", spec);
    return RS_E_INVALID;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: npoint_driver OUTDIR DATA key=value...\n");
        return 1;
    }
    const char *dir = argv[1];
    rs_arch arch = {.name = "oracle", .activation = RS_ACT_LEAKY_RELU, .hidden_layers = 4,
                    .units = 100, .gain = 1.0, .lr = 0.01, .epochs = 100};
    rs_npnet_options opt;
    rs_npnet_options_default(&opt, 0.01);
    long seed = 0;
    int threads = 1;
    rs_precision precision = RS_PRECISION_FLOAT64;
    size_t subset_m = 0;
    rs_npnet_pair pairs[MAX_PAIRS];
    int n_pairs = 0;
    for (int k = 3; k < argc; k++) {
        char *eq = strchr(argv[k], '=');
        if (!eq) {
            fprintf(stderr, "npoint_driver: expected key=value, got %s\n", argv[k]);
            return 1;
        }
        *eq = '\0';
        const char *key = argv[k], *v = eq + 1;
        if (!strcmp(key, "activation")) {
            if (rs_activation_from_name(v, &arch.activation) != RS_OK) {
                fprintf(stderr, "npoint_driver: unknown activation %s\n", v);
                return 1;
            }
        } else if (!strcmp(key, "layers"))
            arch.hidden_layers = atoi(v);
        else if (!strcmp(key, "units"))
            arch.units = atoi(v);
        else if (!strcmp(key, "gain"))
            arch.gain = atof(v);
        else if (!strcmp(key, "lr"))
            opt.lr = arch.lr = atof(v);
        else if (!strcmp(key, "epochs"))
            arch.epochs = atol(v);
        else if (!strcmp(key, "batch"))
            opt.batch_size = strtoul(v, NULL, 10);
        else if (!strcmp(key, "chunk"))
            opt.chunk_rows = atoi(v);
        else if (!strcmp(key, "precision")) {
            if (rs_precision_from_name(v, &precision) != RS_OK) {
                fprintf(stderr, "npoint_driver: unknown precision %s\n", v);
                return 1;
            }
        } else if (!strcmp(key, "threads"))
            threads = atoi(v);
        else if (!strcmp(key, "seed"))
            seed = atol(v);
        else if (!strcmp(key, "subset"))
            subset_m = strtoul(v, NULL, 10);
        else if (!strcmp(key, "optimizer")) {
            if (rs_optimizer_from_name(v, &opt.optimizer) != RS_OK) {
                fprintf(stderr, "npoint_driver: unknown optimizer %s\n", v);
                return 1;
            }
        } else if (!strcmp(key, "pairs")) {
            for (const char *p = v; *p && n_pairs < MAX_PAIRS;) {
                char *end;
                pairs[n_pairs].i = strtoul(p, &end, 10);
                pairs[n_pairs].j = strtoul(end + 1, &end, 10);
                n_pairs++;
                p = *end ? end + 1 : end;
            }
        } else {
            fprintf(stderr, "npoint_driver: unknown key %s\n", key);
            return 1;
        }
    }
    char why[512] = "";
    rs_dataset *d = NULL;
    int st = load_data(argv[2], &d, why, sizeof why);
    if (st != RS_OK) {
        fprintf(stderr, "npoint_driver: %s (%s)\n", why, rs_strerror(st));
        return 1;
    }
    rs_npnet *net = rs_npnet_alloc(&arch, d->in_dim, d->out_dim, d->n, n_pairs, precision,
                                   &opt, why, sizeof why);
    if (!net) {
        fprintf(stderr, "npoint_driver: %s\n", why);
        return 1;
    }
    /* The trial's keys as net.h's: the weights stream; the shuffle takes the next stream
     * number (rng.h names 1 and 2) until rng.h names one for it. */
    uint64_t wkey = rs_rng_trial_key(arch.name, arch.gain, 0, 0, seed, RS_STREAM_WEIGHTS);
    uint64_t skey = rs_rng_trial_key(arch.name, arch.gain, 0, 0, seed, (rs_stream)3);
    rs_npnet_init(net, arch.gain, wkey, skey);
    rs_blas_single_thread(); /* as the CLI: threads go to the engine's row blocks */
    rs_npnet_set_threads(net, threads);

    size_t np = rs_npnet_param_count(net), n = d->n, rec_w = 1 + 3 * (size_t)n_pairs;
    double *params = malloc(np * sizeof *params);
    double *record = malloc((size_t)arch.epochs * rec_w * sizeof *record);
    int minibatch = opt.batch_size > 0 && opt.batch_size < n;
    int64_t *orders = malloc((minibatch ? (size_t)arch.epochs * n : 1) * sizeof *orders);
    if (!params || !record || !orders) {
        fprintf(stderr, "npoint_driver: out of memory\n");
        return 1;
    }
    rs_npnet_get_params(net, params);
    FILE *meta = NULL;
    char path[4096];
    snprintf(path, sizeof path, "%s/meta.txt", dir);
    if (!(meta = fopen(path, "w"))) {
        fprintf(stderr, "npoint_driver: cannot write %s\n", path);
        return 1;
    }
    fprintf(meta, "n %zu\nin_dim %d\nout_dim %d\nn_params %zu\nobserved_stage %d\n", n,
            d->in_dim, d->out_dim, np, rs_npnet_observed_stage(net));
    fclose(meta);
    if (write_raw(dir, "x.bin", d->x, n * (size_t)d->in_dim * sizeof(double)) ||
        write_raw(dir, "y.bin", d->y, n * (size_t)d->out_dim * sizeof(double)) ||
        write_raw(dir, "init.bin", params, np * sizeof(double)))
        return 1;
    rs_npnet_probe probes[MAX_PAIRS];
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (long e = 0; e < arch.epochs; e++) {
        double loss;
        st = rs_npnet_epoch(net, d, pairs, n_pairs, probes, &loss);
        if (st != RS_OK) {
            fprintf(stderr, "npoint_driver: epoch %ld: %s\n", e, rs_strerror(st));
            return 1;
        }
        double *r = record + (size_t)e * rec_w;
        r[0] = loss;
        for (int p = 0; p < n_pairs; p++) {
            r[1 + 3 * p] = probes[p].dh2;
            r[2 + 3 * p] = probes[p].dyhat2;
            r[3 + 3 * p] = probes[p].w;
        }
        const size_t *order = rs_npnet_order(net);
        for (size_t i = 0; minibatch && i < n; i++)
            orders[(size_t)e * n + i] = (int64_t)order[i];
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    snprintf(path, sizeof path, "%s/meta.txt", dir);
    if (!(meta = fopen(path, "a"))) {
        fprintf(stderr, "npoint_driver: cannot write %s\n", path);
        return 1;
    }
    fprintf(meta, "seconds %.9f\n",
            (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec));
    fclose(meta);
    if (write_raw(dir, "record.bin", record, (size_t)arch.epochs * rec_w * sizeof(double)) ||
        (minibatch &&
         write_raw(dir, "order.bin", orders, (size_t)arch.epochs * n * sizeof(int64_t))))
        return 1;
    if (subset_m > 0) {
        if (subset_m > n)
            subset_m = n;
        size_t *idx = malloc(subset_m * sizeof *idx);
        int64_t *idx64 = malloc(subset_m * sizeof *idx64);
        double *dist = malloc(subset_m * subset_m * sizeof *dist);
        if (!idx || !idx64 || !dist)
            return 1;
        rs_dataset_first_sorted(d, subset_m, idx);
        for (size_t k = 0; k < subset_m; k++)
            idx64[k] = (int64_t)idx[k];
        if (rs_npnet_pairwise_dh2(net, d, idx, subset_m, dist) != RS_OK ||
            write_raw(dir, "subset.bin", idx64, subset_m * sizeof(int64_t)) ||
            write_raw(dir, "pairwise.bin", dist, subset_m * subset_m * sizeof(double)))
            return 1;
        free(idx);
        free(idx64);
        free(dist);
    }
    free(params);
    free(record);
    free(orders);
    rs_npnet_free(net);
    rs_dataset_free(d);
    return 0;
}
