/* nptrial_driver — a test-only front end to the N-point trial (nptrial.h) for
 * tests/python/test_nptrial_theory.py, which checks its pairwise predictions (Eq. 10-11, 50)
 * and Pearson r against an independent numpy implementation; not installed, not the CLI.
 *
 *   nptrial_driver OUTDIR DATA key=value...
 *   DATA: xor | two_point:INPUT_GAP:TARGET_GAP | orthogonal_features:POSITIONS
 *   keys: activation (leaky_relu), layers (4), units (50), gain (0.7), lr (0.1),
 *         epochs (500), seed (0), subset (M: the first M points sorted by label; 0 = all),
 *         calib (RATE_H:RATE_Y; default: the mean of the tracked pairs' fitted rates),
 *         track (1: track every pair of the subset, fit each; 0: none), stride (fit, 1)
 * Writes to OUTDIR (float64 little-endian raw, m x m row-major unless said):
 *   meta.txt  m, status, loss_initial, loss_final, rate_h, rate_y (the calibration used),
 *             r_linear, r_log, r_log_pairs, r_exp_linear, r_exp_log, r_exp_log_pairs
 *   subset.bin (int64, m)  input_gap2.bin target_gap2.bin dh2_initial.bin dyhat2_initial.bin
 *   w_initial.bin dh2_final.bin dh2_predicted.bin dh2_predicted_exp.bin
 * Exit status 0, or 1 with the cause on stderr. */
#include <gsl/gsl_errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "repsweep/blas.h"
#include "repsweep/dataset.h"
#include "repsweep/nptrial.h"
#include "repsweep/rng.h"
#include "repsweep/status.h"

static int write_raw(const char *dir, const char *name, const void *p, size_t bytes)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(p, 1, bytes, f) != bytes || fclose(f) != 0) {
        fprintf(stderr, "nptrial_driver: cannot write %s\n", path);
        return 1;
    }
    return 0;
}

static int load_data(const char *spec, rs_dataset **d, char *why, size_t len)
{
    if (strcmp(spec, "xor") == 0)
        return rs_dataset_xor(d);
    if (strncmp(spec, "two_point:", 10) == 0) {
        char *end;
        double gx = strtod(spec + 10, &end);
        return rs_dataset_two_point(gx, strtod(end + 1, NULL), d);
    }
    if (strncmp(spec, "orthogonal_features:", 20) == 0)
        return rs_dataset_orthogonal_features(atoi(spec + 20), RS_ORTHO_SIGMA, d, why, len);
    snprintf(why, len, "unknown data set %s", spec);
    return RS_E_INVALID;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: nptrial_driver OUTDIR DATA key=value...\n");
        return 1;
    }
    gsl_set_error_handler_off();
    rs_blas_single_thread();
    const char *dir = argv[1];
    rs_arch arch = {.name = "nptrial_driver", .activation = RS_ACT_LEAKY_RELU,
                    .hidden_layers = 4, .units = 50, .gain = 0.7, .lr = 0.1, .epochs = 500};
    long seed = 0;
    size_t m = 0;
    int track = 1;
    double calib_h = 0, calib_y = 0;
    size_t stride = 1;
    for (int k = 3; k < argc; k++) {
        char *eq = strchr(argv[k], '=');
        if (!eq) {
            fprintf(stderr, "nptrial_driver: expected key=value, got %s\n", argv[k]);
            return 1;
        }
        *eq = '\0';
        const char *key = argv[k], *v = eq + 1;
        if (!strcmp(key, "activation")) {
            if (rs_activation_from_name(v, &arch.activation) != RS_OK) {
                fprintf(stderr, "nptrial_driver: unknown activation %s\n", v);
                return 1;
            }
        } else if (!strcmp(key, "layers"))
            arch.hidden_layers = atoi(v);
        else if (!strcmp(key, "units"))
            arch.units = atoi(v);
        else if (!strcmp(key, "gain"))
            arch.gain = atof(v);
        else if (!strcmp(key, "lr"))
            arch.lr = atof(v);
        else if (!strcmp(key, "epochs"))
            arch.epochs = atol(v);
        else if (!strcmp(key, "seed"))
            seed = atol(v);
        else if (!strcmp(key, "subset"))
            m = strtoul(v, NULL, 10);
        else if (!strcmp(key, "track"))
            track = atoi(v);
        else if (!strcmp(key, "stride"))
            stride = strtoul(v, NULL, 10);
        else if (!strcmp(key, "calib")) {
            char *end;
            calib_h = strtod(v, &end);
            calib_y = *end ? strtod(end + 1, NULL) : 0;
        } else {
            fprintf(stderr, "nptrial_driver: unknown key %s\n", key);
            return 1;
        }
    }
    char why[512] = "";
    rs_dataset *d = NULL;
    int st = load_data(argv[2], &d, why, sizeof why);
    if (st != RS_OK) {
        fprintf(stderr, "nptrial_driver: %s (%s)\n", why, rs_strerror(st));
        return 1;
    }
    if (m == 0 || m > d->n)
        m = d->n;
    size_t *subset = malloc(m * sizeof *subset);
    int64_t *subset64 = malloc(m * sizeof *subset64);
    int n_pairs = track ? (int)(m * (m - 1) / 2) : 0;
    rs_npnet_pair *pairs = malloc((size_t)(n_pairs ? n_pairs : 1) * sizeof *pairs);
    if (!subset || !subset64 || !pairs)
        return 1;
    rs_dataset_first_sorted(d, m, subset);
    for (size_t a = 0, k = 0; a < m; a++) {
        subset64[a] = (int64_t)subset[a];
        for (size_t b = a + 1; track && b < m; b++)
            pairs[k++] = (rs_npnet_pair){subset[a], subset[b]};
    }
    rs_nptrial_spec s;
    rs_nptrial_spec_default(&s, &arch, arch.gain, arch.lr, arch.epochs);
    s.weights_key = rs_rng_trial_key(arch.name, arch.gain, 0, 0, seed, RS_STREAM_WEIGHTS);
    s.shuffle_key = rs_rng_trial_key(arch.name, arch.gain, 0, 0, seed, (rs_stream)3);
    s.pairs = pairs;
    s.n_pairs = n_pairs;
    s.subset = subset;
    s.subset_m = m;
    s.fit = track;
    s.fit_options.stride = stride;
    rs_nptrajectory t;
    rs_nptrial_result r;
    if (rs_nptrajectory_alloc(&t, arch.epochs, n_pairs) != RS_OK)
        return 1;
    st = rs_nptrial_run(&s, d, &t, &r, why, sizeof why);
    if (st != RS_OK) {
        fprintf(stderr, "nptrial_driver: %s (%s)\n", why, rs_strerror(st));
        return 1;
    }
    if (!(calib_h > 0 && calib_y > 0)) { /* the mean of the fitted pairs' rates */
        int fitted = 0;
        for (int p = 0; p < n_pairs; p++)
            if (r.pair[p].fit.status != RS_S_FIT_FAILED) {
                calib_h += r.pair[p].fit.rate_h;
                calib_y += r.pair[p].fit.rate_y;
                fitted++;
            }
        if (!fitted) {
            fprintf(stderr, "nptrial_driver: no calibration: give calib=RATE_H:RATE_Y\n");
            return 1;
        }
        calib_h /= fitted;
        calib_y /= fitted;
    }
    st = rs_nptrial_predict(&r, calib_h, calib_y);
    if (st != RS_OK) {
        fprintf(stderr, "nptrial_driver: prediction: %s\n", rs_strerror(st));
        return 1;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/meta.txt", dir);
    FILE *meta = fopen(path, "w");
    if (!meta) {
        fprintf(stderr, "nptrial_driver: cannot write %s\n", path);
        return 1;
    }
    fprintf(meta, "m %zu\nstatus %d\nloss_initial %.17g\nloss_final %.17g\nrate_h %.17g\n"
                  "rate_y %.17g\nr_linear %.17g\nr_log %.17g\nr_log_pairs %zu\n"
                  "r_exp_linear %.17g\nr_exp_log %.17g\nr_exp_log_pairs %zu\n",
            m, r.status, r.loss_initial, r.loss_final, calib_h, calib_y, r.r_linear, r.r_log,
            r.r_log_pairs, r.r_exp_linear, r.r_exp_log, r.r_exp_log_pairs);
    fclose(meta);
    size_t mm = m * m * sizeof(double);
    if (write_raw(dir, "subset.bin", subset64, m * sizeof *subset64) ||
        write_raw(dir, "input_gap2.bin", r.input_gap2, mm) ||
        write_raw(dir, "target_gap2.bin", r.target_gap2, mm) ||
        write_raw(dir, "dh2_initial.bin", r.dh2_initial, mm) ||
        write_raw(dir, "dyhat2_initial.bin", r.dyhat2_initial, mm) ||
        write_raw(dir, "w_initial.bin", r.w_initial, mm) ||
        write_raw(dir, "dh2_final.bin", r.dh2_final, mm) ||
        write_raw(dir, "dh2_predicted.bin", r.dh2_predicted, mm) ||
        write_raw(dir, "dh2_predicted_exp.bin", r.dh2_predicted_exp, mm))
        return 1;
    rs_nptrial_result_free(&r);
    rs_nptrajectory_free(&t);
    free(subset);
    free(subset64);
    free(pairs);
    rs_dataset_free(d);
    return 0;
}
