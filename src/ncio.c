/* ncio.c — netCDF output (see ncio.h). */
#define _POSIX_C_SOURCE 200809L
#include "repsweep/ncio.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <cblas.h> /* openblas_get_config, for provenance */
#include <gsl/gsl_version.h>
#include <netcdf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "repsweep/job.h"
#include "repsweep/status.h"

#include "repsweep_git_commit.h" /* generated at build time: REPSWEEP_GIT_COMMIT */

#ifndef REPSWEEP_VERSION
#define REPSWEEP_VERSION "unknown"
#endif

/* Every netCDF call goes through NC(): on failure, record where and why, and jump out. */
#define NC(call)                                                                           \
    do {                                                                                   \
        int nc_status_ = (call);                                                           \
        if (nc_status_ != NC_NOERR) {                                                      \
            if (err && err_len)                                                            \
                snprintf(err, err_len, "%s: netCDF: %s (%s)", path, nc_strerror(nc_status_), \
                         #call);                                                           \
            status = RS_E_NETCDF;                                                          \
            goto done;                                                                     \
        }                                                                                  \
    } while (0)

static int put_text(int nc, int var, const char *name, const char *value)
{
    return nc_put_att_text(nc, var, name, strlen(value), value);
}

/* Define a double variable with CF long_name and units. */
static int def_var(int nc, const char *name, int ndims, const int *dims, const char *long_name,
                   const char *units, int *var)
{
    int st = nc_def_var(nc, name, NC_DOUBLE, ndims, dims, var);
    if (st == NC_NOERR)
        st = put_text(nc, *var, "long_name", long_name);
    if (st == NC_NOERR)
        st = put_text(nc, *var, "units", units);
    return st;
}

static void iso_time(time_t when, char *buf, size_t len)
{
    struct tm tm;
    gmtime_r(&when, &tm);
    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void iso_time_now(char *buf, size_t len)
{
    iso_time(time(NULL), buf, len);
}

/* Provenance: repsweep's version and commit and the libraries' versions. */
static int put_build_attributes(int nc)
{
    int st = put_text(nc, NC_GLOBAL, "repsweep_version", REPSWEEP_VERSION);
    if (st == NC_NOERR)
        st = put_text(nc, NC_GLOBAL, "repsweep_git_commit", REPSWEEP_GIT_COMMIT);
    if (st == NC_NOERR)
        st = put_text(nc, NC_GLOBAL, "netcdf_version", nc_inq_libvers());
    if (st == NC_NOERR)
        st = put_text(nc, NC_GLOBAL, "gsl_version", GSL_VERSION);
    if (st == NC_NOERR)
        st = put_text(nc, NC_GLOBAL, "openblas_config", openblas_get_config());
    if (st == NC_NOERR)
        st = put_text(nc, NC_GLOBAL, "libconfig_version", rs_job_libconfig_version());
    return st;
}

static int put_arch_attributes(int nc, const rs_trial_spec *s, const char *path, char *err,
                               size_t err_len)
{
    int status = RS_OK;
    const rs_arch *a = &s->arch;
    int ints[5] = {a->hidden_layers, a->units, a->conv_channels, a->conv_kernel, a->skip};
    static const char *int_names[5] = {"hidden_layers", "units", "conv_channels", "conv_kernel",
                                       "skip"};
    double reals[6] = {s->gain, s->lr, s->input_gap, s->target_gap, a->dropout,
                       s->converge_loss};
    static const char *real_names[6] = {"gain", "lr", "input_gap", "target_gap", "dropout",
                                        "converge_loss"};
    long long seed = s->seed, epochs = s->epochs;
    char when[32];
    NC(put_text(nc, NC_GLOBAL, "Conventions", "CF-1.8"));
    NC(put_text(nc, NC_GLOBAL, "title", "repsweep trial: two-point representation dynamics"));
    NC(put_text(nc, NC_GLOBAL, "arch", a->name));
    NC(put_text(nc, NC_GLOBAL, "activation", rs_activation_name(a->activation)));
    for (int i = 0; i < 5; i++)
        NC(nc_put_att_int(nc, NC_GLOBAL, int_names[i], NC_INT, 1, &ints[i]));
    for (int i = 0; i < 6; i++)
        NC(nc_put_att_double(nc, NC_GLOBAL, real_names[i], NC_DOUBLE, 1, &reals[i]));
    NC(nc_put_att_longlong(nc, NC_GLOBAL, "seed", NC_INT64, 1, &seed));
    NC(nc_put_att_longlong(nc, NC_GLOBAL, "max_epochs", NC_INT64, 1, &epochs));
    NC(put_text(nc, NC_GLOBAL, "precision", rs_precision_name(s->precision)));
    NC(put_build_attributes(nc));
    iso_time_now(when, sizeof when);
    NC(put_text(nc, NC_GLOBAL, "created", when));
done:
    return status;
}

/* Close `nc` if open; a failed close (data not flushed) turns an RS_OK `status` into an
 * error. Returns the status to report. */
static int close_nc(int nc, const char *path, int status, char *err, size_t err_len)
{
    if (nc < 0)
        return status;
    int st = nc_close(nc);
    if (st != NC_NOERR && status == RS_OK) {
        snprintf(err, err_len, "%s: netCDF: %s (closing)", path, nc_strerror(st));
        return RS_E_NETCDF;
    }
    return status;
}

enum { T_DH2, T_DYHAT2, T_W, T_LOSS, T_YMEAN, T_DH2_TH, T_DYHAT2_TH, T_W_TH, T_LOSS_TH, T_N };

int rs_ncio_write_trial(const char *path, const rs_trial_spec *s, const rs_trajectory *t,
                        const rs_trial_result *r, const char *command_line, char *err,
                        size_t err_len)
{
    static const char *const names[T_N] = {"dh2", "dyhat2", "w", "loss", "yhat_mean",
                                           "dh2_theory", "dyhat2_theory", "w_theory",
                                           "loss_theory"};
    static const char *const long_names[T_N] = {
        "squared distance of the two hidden representations at the observed layer, ||h(x2)-h(x1)||^2",
        "squared predicted output difference ||f(x2)-f(x1)||^2 (not the target gap)",
        "output alignment w = dyhat2 - (f(x2)-f(x1))(y2-y1)",
        "training loss 1/2 mean_i (f(x_i)-y_i)^2, evaluation mode",
        "mean predicted output (f(x1)+f(x2))/2",
        "dh2 of the effective theory (Eq. 7) with the fitted rates",
        "dyhat2 of the effective theory (Eq. 7) with the fitted rates",
        "w of the effective theory (Eq. 7) with the fitted rates",
        "loss of the effective theory (Eq. 9) with the fitted rates"};
    const double *data[T_N] = {t->dh2, t->dyhat2, t->w, t->loss, t->yhat_mean,
                               t->dh2_theory, t->dyhat2_theory, t->w_theory, t->loss_theory};
    int status = RS_OK, nc = -1, dim_epoch, dim_stage = -1, var[T_N], var_epoch, var_stages = -1;
    NC(nc_create(path, NC_CLOBBER | NC_NETCDF4, &nc));
    NC(nc_def_dim(nc, "epoch", (size_t)t->epochs_run, &dim_epoch));
    NC(nc_def_var(nc, "epoch", NC_INT, 1, &dim_epoch, &var_epoch));
    NC(put_text(nc, var_epoch, "long_name", "epoch (full-batch gradient steps before the record)"));
    NC(put_text(nc, var_epoch, "units", "1"));
    for (int i = 0; i < T_N; i++)
        NC(def_var(nc, names[i], 1, &dim_epoch, long_names[i], "1", &var[i]));
    if (t->dh2_stages) {
        int dims[2];
        NC(nc_def_dim(nc, "stage", (size_t)t->n_stages, &dim_stage));
        dims[0] = dim_epoch;
        dims[1] = dim_stage;
        NC(def_var(nc, "dh2_stage", 2, dims, "dh2 at every hidden stage (0-based)", "1",
                   &var_stages));
    }
    /* scalar results */
    struct { const char *name; double value; const char *long_name; } scalars[] = {
        {"dh2_initial", r->dh2_initial, "dh2 at epoch 0"},
        {"dyhat2_initial", r->dyhat2_initial, "dyhat2 at epoch 0"},
        {"w_initial", r->w_initial, "w at epoch 0"},
        {"loss_initial", r->loss_initial, "loss at epoch 0"},
        {"dh2_final", r->dh2_final, "dh2 at the last recorded epoch"},
        {"dyhat2_final", r->dyhat2_final, "dyhat2 at the last recorded epoch"},
        {"w_final", r->w_final, "w at the last recorded epoch"},
        {"loss_final", r->loss_final, "loss at the last recorded epoch"},
        {"rate_h", r->fit.rate_h, "fitted encoder rate 1/tau_h per epoch (Eq. 49)"},
        {"rate_y", r->fit.rate_y, "fitted decoder rate 1/tau_y per epoch (Eq. 49)"},
        {"rate_ybar", r->fit_ybar.rate_ybar, "fitted mean-output rate 1/tau_ybar per epoch (Eq. 9)"},
        {"fit_loss", r->fit.fit_loss, "Eq. 49 sum of squared residuals of dh2, dyhat2, w"},
        {"fit_loss_rel", r->fit.fit_loss_rel, "fit_loss / sum of dh2^2 + dyhat2^2 + w^2"},
        {"A_high", r->A_high, "A_high (Eq. 11)"},
        {"A_low", r->A_low, "A_low (Eq. 11)"},
        {"dh2_predicted", r->dh2_predicted, "predicted final dh2, stable fixed point (Eq. 10)"},
        {"train_seconds", r->train_seconds, "wall time of training"},
        {"fit_seconds", r->fit_seconds, "wall time of the fits"},
    };
    size_t n_scalars = sizeof scalars / sizeof *scalars;
    int svar[32];
    for (size_t i = 0; i < n_scalars; i++)
        NC(def_var(nc, scalars[i].name, 0, NULL, scalars[i].long_name,
                   strstr(scalars[i].name, "seconds") ? "s" : "1", &svar[i]));
    int var_status, var_conv, var_epochs, var_floor;
    NC(nc_def_var(nc, "status", NC_INT, 0, NULL, &var_status));
    NC(put_text(nc, var_status, "long_name", "trial status"));
    NC(put_text(nc, var_status, "meaning", rs_strerror(r->status)));
    NC(nc_def_var(nc, "converged", NC_INT, 0, NULL, &var_conv));
    NC(put_text(nc, var_conv, "long_name", "1 if the final loss is below converge_loss"));
    NC(nc_def_var(nc, "fit_rate_at_floor", NC_INT, 0, NULL, &var_floor));
    NC(put_text(nc, var_floor, "long_name", "1 if a fitted rate sits at its floor (unconstrained)"));
    NC(nc_def_var(nc, "epochs_run", NC_INT, 0, NULL, &var_epochs));
    NC(put_text(nc, var_epochs, "long_name", "epochs recorded"));
    NC(put_arch_attributes(nc, s, path, err, err_len) == RS_OK ? NC_NOERR : NC_EINVAL);
    int observed = r->observed_stage;
    NC(nc_put_att_int(nc, NC_GLOBAL, "observed_stage", NC_INT, 1, &observed));
    if (command_line)
        NC(put_text(nc, NC_GLOBAL, "command_line", command_line));
    NC(nc_enddef(nc));

    for (long e = 0; e < t->epochs_run; e++) {
        size_t idx = (size_t)e;
        int ev = (int)e;
        NC(nc_put_var1_int(nc, var_epoch, &idx, &ev));
    }
    for (int i = 0; i < T_N; i++)
        NC(nc_put_var_double(nc, var[i], data[i]));
    if (t->dh2_stages)
        NC(nc_put_var_double(nc, var_stages, t->dh2_stages));
    for (size_t i = 0; i < n_scalars; i++)
        NC(nc_put_var_double(nc, svar[i], &scalars[i].value));
    int ival = r->status, conv = r->converged, er = (int)r->epochs_run, floor_ = r->fit.at_floor;
    NC(nc_put_var_int(nc, var_floor, &floor_));
    NC(nc_put_var_int(nc, var_status, &ival));
    NC(nc_put_var_int(nc, var_conv, &conv));
    NC(nc_put_var_int(nc, var_epochs, &er));
done:
    status = close_nc(nc, path, status, err, err_len);
    return status;
}

int rs_ncio_write_weights(const char *path, const rs_net *net, const rs_trial_spec *s,
                          char *err, size_t err_len)
{
    int status = RS_OK, nc = -1;
    size_t n = rs_net_param_count(net);
    double *theta = malloc(n * sizeof *theta);
    if (!theta)
        return RS_E_NOMEM;
    rs_net_get_params(net, theta);
    NC(nc_create(path, NC_CLOBBER | NC_NETCDF4, &nc));
    NC(put_arch_attributes(nc, s, path, err, err_len) == RS_OK ? NC_NOERR : NC_EINVAL);
    int observed = rs_arch_observed_stage(&s->arch), maps = rs_net_tensor_count(net) / 2;
    NC(nc_put_att_int(nc, NC_GLOBAL, "observed_stage", NC_INT, 1, &observed));
    NC(nc_put_att_int(nc, NC_GLOBAL, "maps", NC_INT, 1, &maps));
    int vars[256];
    if (rs_net_tensor_count(net) > 256) {
        snprintf(err, err_len, "%s: too many tensors to export", path);
        status = RS_E_INVALID;
        goto done;
    }
    for (int k = 0; k < rs_net_tensor_count(net); k++) {
        int rank, dimids[3];
        size_t dims[3];
        rs_net_tensor_shape(net, k, &rank, dims);
        char name[32];
        for (int d = 0; d < rank; d++) {
            snprintf(name, sizeof name, "%s_%d_dim%d", k % 2 ? "bias" : "weight", k / 2, d);
            NC(nc_def_dim(nc, name, dims[d], &dimids[d]));
        }
        snprintf(name, sizeof name, "%s_%d", k % 2 ? "bias" : "weight", k / 2);
        NC(nc_def_var(nc, name, NC_DOUBLE, rank, dimids, &vars[k]));
    }
    NC(nc_enddef(nc));
    for (int k = 0; k < rs_net_tensor_count(net); k++) {
        int rank;
        size_t dims[3];
        size_t off = rs_net_tensor_shape(net, k, &rank, dims);
        NC(nc_put_var_double(nc, vars[k], theta + off));
    }
done:
    if (nc >= 0)
        nc_close(nc);
    free(theta);
    return status;
}

/* --- a sweep's results file --- */

static int by_index(const void *a, const void *b)
{
    uint64_t x = ((const rs_store_record *)a)->index, y = ((const rs_store_record *)b)->index;
    return (x > y) - (x < y);
}

/* The per-trial coordinates (grid.h) of the sorted records, one array per variable. */
typedef struct {
    long long *trial, *seed;
    int *block, *arch_index;
    double *gain, *input_gap, *target_gap;
    const char **arch;
} sweep_coords;

static void coords_free(sweep_coords *c)
{
    free(c->trial);
    free(c->seed);
    free(c->block);
    free(c->arch_index);
    free(c->gain);
    free(c->input_gap);
    free(c->target_gap);
    free((void *)c->arch);
}

static int coords_fill(const rs_grid *grid, const rs_store_layout *l, const void *recs,
                       size_t n, sweep_coords *c)
{
    size_t m = n ? n : 1;
    c->trial = malloc(m * sizeof *c->trial);
    c->seed = malloc(m * sizeof *c->seed);
    c->block = malloc(m * sizeof *c->block);
    c->arch_index = malloc(m * sizeof *c->arch_index);
    c->gain = malloc(m * sizeof *c->gain);
    c->input_gap = malloc(m * sizeof *c->input_gap);
    c->target_gap = malloc(m * sizeof *c->target_gap);
    c->arch = malloc(m * sizeof *c->arch);
    if (!c->trial || !c->seed || !c->block || !c->arch_index || !c->gain || !c->input_gap ||
        !c->target_gap || !c->arch)
        return RS_E_NOMEM;
    for (size_t i = 0; i < n; i++) {
        rs_grid_coords g;
        rs_grid_trial t;
        uint64_t index = rs_store_record_at(recs, l, i)->index;
        int st = rs_grid_coords_of(grid, index, &g);
        if (st == RS_OK)
            st = rs_grid_trial_at(grid, &g, &t);
        if (st != RS_OK)
            return st;
        int net = t.kind == RS_BLOCK_NETWORK;
        c->trial[i] = (long long)index;
        c->block[i] = g.block;
        c->arch_index[i] = net ? (int)g.arch : -1;
        c->arch[i] = net ? t.arch->name : "";
        c->gain[i] = net ? t.gain : NAN;
        c->seed[i] = net ? t.seed : -1;
        c->input_gap[i] = t.input_gap;
        c->target_gap[i] = t.target_gap;
    }
    return RS_OK;
}

/* Define a per-trial variable of `type` with CF long_name and units. */
static int def_trial_var(int nc, const char *name, nc_type type, int dim, const char *long_name,
                         const char *units, int *var)
{
    int st = nc_def_var(nc, name, type, 1, &dim, var);
    if (st == NC_NOERR)
        st = put_text(nc, *var, "long_name", long_name);
    if (st == NC_NOERR && units)
        st = put_text(nc, *var, "units", units);
    return st;
}

/* "0: name0, 1: name1, ..." for the `block` variable's attribute. */
static char *block_names(const rs_grid *grid)
{
    size_t len = 1;
    for (int b = 0; b < grid->n_blocks; b++)
        len += strlen(grid->job->blocks[b].name) + 32;
    char *s = malloc(len), *p = s;
    if (!s)
        return NULL;
    *p = 0;
    for (int b = 0; b < grid->n_blocks; b++)
        p += sprintf(p, "%s%d: %s (%s)", b ? ", " : "", b, grid->job->blocks[b].name,
                     grid->job->blocks[b].kind == RS_BLOCK_NETWORK ? "network" : "theory-only");
    return s;
}

/* Write the file itself (to `path`, the temporary name). */
/* Define the coordinate variables `stage` and `epoch` and the extras' variables (store.h)
 * over (trial, stage), (trial, epoch), (trial, epoch, stage). */
static int def_extras(int nc, int dim_trial, const rs_store_layout *l, const rs_store_extra *ex,
                      int n_ex, int *v_stage, int *v_epoch, int *v_ex)
{
    int st = NC_NOERR, dim_stage = -1, dim_epoch = -1;
    if (l->n_stages > 0) {
        st = nc_def_dim(nc, "stage", (size_t)l->n_stages, &dim_stage);
        if (st == NC_NOERR)
            st = def_trial_var(nc, "stage", NC_INT, dim_stage, "hidden stage (0-based, input "
                               "side first)", "1", v_stage);
    }
    if (st == NC_NOERR && l->n_epochs > 0) {
        st = nc_def_dim(nc, "epoch", (size_t)l->n_epochs, &dim_epoch);
        if (st == NC_NOERR)
            st = def_trial_var(nc, "epoch", NC_INT64, dim_epoch, "recorded epoch (gradient "
                               "steps before the record; every trajectory_stride-th)", "1",
                               v_epoch);
    }
    for (int i = 0; i < n_ex && st == NC_NOERR; i++) {
        int dims[3] = {dim_trial, ex[i].shape == RS_STORE_PER_STAGE ? dim_stage : dim_epoch,
                       dim_stage};
        st = def_var(nc, ex[i].name, ex[i].shape == RS_STORE_PER_EPOCH_STAGE ? 3 : 2, dims,
                     ex[i].long_name, ex[i].units, &v_ex[i]);
    }
    return st;
}

/* Write the coordinate variables and, one trial at a time, the extras. */
static int put_extras(int nc, const rs_store_layout *l, const void *recs, size_t n,
                      const rs_store_extra *ex, int n_ex, int v_stage, int v_epoch,
                      const int *v_ex)
{
    int st = NC_NOERR;
    for (size_t k = 0; k < (size_t)l->n_stages && st == NC_NOERR; k++) {
        int value = (int)k;
        st = nc_put_var1_int(nc, v_stage, &k, &value);
    }
    for (size_t k = 0; k < (size_t)l->n_epochs && st == NC_NOERR; k++) {
        long long value = (long long)k * l->stride;
        st = nc_put_var1_longlong(nc, v_epoch, &k, &value);
    }
    for (size_t t = 0; t < n && st == NC_NOERR; t++) {
        const double *x = rs_store_record_extras(rs_store_record_at(recs, l, t));
        for (int i = 0; i < n_ex && st == NC_NOERR; i++) {
            size_t start[3] = {t, 0, 0}, count[3] = {1, (size_t)l->n_epochs,
                                                     (size_t)l->n_stages};
            if (ex[i].shape == RS_STORE_PER_STAGE)
                count[1] = (size_t)l->n_stages;
            st = nc_put_vara_double(nc, v_ex[i], start, count, x + ex[i].offset);
        }
    }
    return st;
}

static int write_sweep_file(const char *path, const rs_grid *grid, const rs_store_layout *l,
                            const void *recs, size_t n, const sweep_coords *c,
                            const rs_ncio_sweep_info *info, char *err, size_t err_len)
{
    rs_store_extra ex[RS_STORE_EXTRAS_MAX];
    int n_ex = rs_store_extras(l, ex), v_ex[RS_STORE_EXTRAS_MAX], v_stage = -1, v_epoch = -1;
    int status = RS_OK, nc = -1, dim, nf;
    const rs_store_field *f = rs_store_fields(&nf);
    int v_trial, v_block, v_arch_index, v_arch, v_gain, v_seed, v_input, v_target, v_field[64];
    char when[32], hash[32], *blocks = block_names(grid);
    double *column = malloc((n ? n : 1) * sizeof *column);
    long long *icolumn = malloc((n ? n : 1) * sizeof *icolumn), total = (long long)rs_grid_count(grid),
              done = (long long)n;
    if (!blocks || !column || !icolumn) {
        status = RS_E_NOMEM;
        goto done;
    }
    NC(nc_create(path, NC_CLOBBER | NC_NETCDF4, &nc));
    NC(nc_def_dim(nc, "trial", n, &dim));
    NC(def_trial_var(nc, "trial", NC_INT64, dim, "the trial's index in the job's grid "
                     "(grid.h: blocks in file order, the last axis fastest)", "1", &v_trial));
    NC(def_trial_var(nc, "block", NC_INT, dim, "block of the job file (0-based)", "1", &v_block));
    NC(put_text(nc, v_block, "block_names", blocks));
    NC(def_trial_var(nc, "arch_index", NC_INT, dim, "index into the block's architectures "
                     "(-1: theory-only)", "1", &v_arch_index));
    NC(def_trial_var(nc, "arch", NC_STRING, dim, "architecture name (empty: theory-only)", NULL,
                     &v_arch));
    NC(def_trial_var(nc, "gain", NC_DOUBLE, dim, "initial weight gain (Xavier-normal); NaN "
                     "for theory-only trials", "1", &v_gain));
    NC(def_trial_var(nc, "input_gap", NC_DOUBLE, dim, "data input gap |x2 - x1| (a distance)",
                     "1", &v_input));
    NC(def_trial_var(nc, "target_gap", NC_DOUBLE, dim, "data target gap |y2 - y1| (a distance; "
                     "not the predicted output difference dyhat2)", "1", &v_target));
    NC(def_trial_var(nc, "seed", NC_INT64, dim, "seed of the initial weights (-1: "
                     "theory-only)", "1", &v_seed));
    for (int i = 0; i < nf; i++)
        NC(def_trial_var(nc, f[i].name, f[i].is_int ? NC_INT64 : NC_DOUBLE, dim,
                         f[i].long_name, f[i].units, &v_field[i]));
    NC(def_extras(nc, dim, l, ex, n_ex, &v_stage, &v_epoch, v_ex));
    NC(put_text(nc, NC_GLOBAL, "Conventions", "CF-1.8"));
    NC(put_text(nc, NC_GLOBAL, "title", "repsweep sweep: one summary per finished trial"));
    NC(put_text(nc, NC_GLOBAL, "job_name", info->job_name));
    NC(put_text(nc, NC_GLOBAL, "job_text", info->job_text));
    snprintf(hash, sizeof hash, "%016llx", (unsigned long long)info->job_hash);
    NC(put_text(nc, NC_GLOBAL, "job_hash", hash));
    if (info->command_line)
        NC(put_text(nc, NC_GLOBAL, "command_line", info->command_line));
    if (info->mpi_version)
        NC(put_text(nc, NC_GLOBAL, "mpi_version", info->mpi_version));
    NC(put_build_attributes(nc));
    NC(nc_put_att_longlong(nc, NC_GLOBAL, "trials_total", NC_INT64, 1, &total));
    NC(nc_put_att_longlong(nc, NC_GLOBAL, "trials_done", NC_INT64, 1, &done));
    iso_time((time_t)info->created, when, sizeof when);
    NC(put_text(nc, NC_GLOBAL, "created", when));
    iso_time_now(when, sizeof when);
    NC(put_text(nc, NC_GLOBAL, "updated", when));
    NC(nc_enddef(nc));
    if (n > 0) {
        NC(nc_put_var_longlong(nc, v_trial, c->trial));
        NC(nc_put_var_int(nc, v_block, c->block));
        NC(nc_put_var_int(nc, v_arch_index, c->arch_index));
        NC(nc_put_var_string(nc, v_arch, c->arch));
        NC(nc_put_var_double(nc, v_gain, c->gain));
        NC(nc_put_var_double(nc, v_input, c->input_gap));
        NC(nc_put_var_double(nc, v_target, c->target_gap));
        NC(nc_put_var_longlong(nc, v_seed, c->seed));
    }
    for (int i = 0; i < nf && n > 0; i++) {
        for (size_t k = 0; k < n; k++) {
            const char *at = (const char *)rs_store_record_at(recs, l, k) + f[i].offset;
            if (f[i].is_int)
                memcpy(&icolumn[k], at, sizeof(long long));
            else
                memcpy(&column[k], at, sizeof(double));
        }
        if (f[i].is_int)
            NC(nc_put_var_longlong(nc, v_field[i], icolumn));
        else
            NC(nc_put_var_double(nc, v_field[i], column));
    }
    NC(put_extras(nc, l, recs, n, ex, n_ex, v_stage, v_epoch, v_ex));
done:
    status = close_nc(nc, path, status, err, err_len);
    free(blocks);
    free(column);
    free(icolumn);
    return status;
}

int rs_ncio_write_sweep(const char *path, const rs_grid *grid, const void *recs, size_t n,
                        const rs_ncio_sweep_info *info, char *err, size_t err_len)
{
    char tmp[4096];
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp", path) >= sizeof tmp) {
        snprintf(err, err_len, "%s: path too long", path);
        return RS_E_INVALID;
    }
    /* sorted by grid index, so the file does not depend on rank count or finishing order */
    rs_store_layout l;
    rs_store_layout_of(grid, &l);
    size_t rec_bytes = rs_store_record_bytes(&l);
    void *sorted = malloc((n ? n : 1) * rec_bytes);
    sweep_coords c;
    memset(&c, 0, sizeof c);
    if (!sorted)
        return RS_E_NOMEM;
    if (n)
        memcpy(sorted, recs, n * rec_bytes);
    qsort(sorted, n, rec_bytes, by_index); /* a record starts with its index */
    int status = coords_fill(grid, &l, sorted, n, &c);
    if (status == RS_OK)
        status = write_sweep_file(tmp, grid, &l, sorted, n, &c, info, err, err_len);
    coords_free(&c);
    free(sorted);
    if (status == RS_E_NOMEM || status == RS_E_INVALID)
        snprintf(err, err_len, "%s: %s while writing the results", path, rs_strerror(status));
    if (status == RS_OK && rs_store_sync_path(tmp, 0) != 0) {
        snprintf(err, err_len, "%s: cannot fsync: %s", tmp, strerror(errno));
        status = RS_E_IO;
    }
    if (status == RS_OK && rename(tmp, path) != 0) {
        snprintf(err, err_len, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
        status = RS_E_IO;
    }
    if (status != RS_OK) {
        unlink(tmp);
        return status;
    }
    rs_store_sync_path(path, 1); /* the rename's directory entry */
    return RS_OK;
}
