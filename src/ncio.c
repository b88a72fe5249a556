/* ncio.c — netCDF output (see ncio.h). */
#define _POSIX_C_SOURCE 200809L
#include "repsweep/ncio.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <math.h>
#include <gsl/gsl_version.h>
#include <netcdf.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "repsweep/blas.h"
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

/* O_EXCL: a file this creates is known to be ours to remove (a symlink, even a dangling one,
 * is never followed or replaced); O_NONBLOCK: a FIFO must not block the check. An existing
 * path is opened without O_TRUNC, so its content is untouched. */
int rs_ncio_check_creatable(const char *path, char *err, size_t err_len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NONBLOCK, 0644);
    if (fd >= 0) {
        close(fd);
        unlink(path);
        return RS_OK;
    }
    if (errno == EEXIST) {
        fd = open(path, O_WRONLY | O_NONBLOCK);
        if (fd < 0 && errno == ENOENT)
            return RS_OK; /* a dangling symlink: nc_create follows it, as it always did */
        if (fd >= 0) {
            struct stat st;
            int regular = fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
            close(fd);
            if (regular)
                return RS_OK;
            errno = EINVAL;
        }
    }
    if (err && err_len)
        snprintf(err, err_len, "%s: cannot create: %s", path,
                 errno == EINVAL || errno == ENXIO ? "not a regular file" : strerror(errno));
    return RS_E_IO;
}

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
        st = put_text(nc, NC_GLOBAL, "openblas_config", rs_blas_config());
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
    if (rs_ncio_check_creatable(path, err, err_len) != RS_OK) {
        status = RS_E_IO;
        goto done;
    }
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
    if (rs_ncio_check_creatable(path, err, err_len) != RS_OK) {
        status = RS_E_IO;
        goto done;
    }
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

/* The shard and per-architecture attributes (ncio.h: rs_ncio_write_sweep). */
static int put_shard_attributes(int nc, const rs_grid *grid, const rs_grid_shard *shard,
                                const char *path, char *err, size_t err_len)
{
    int status = RS_OK, slots = rs_grid_arch_slots(grid);
    const char **names = malloc((size_t)slots * sizeof *names);
    uint64_t *in_shard = malloc((size_t)slots * sizeof *in_shard);
    uint64_t *in_grid = malloc((size_t)slots * sizeof *in_grid);
    long long *values = malloc((size_t)slots * sizeof *values);
    char *joined = NULL;
    if (!names || !in_shard || !in_grid || !values) {
        status = RS_E_NOMEM;
        goto done;
    }
    int n = rs_grid_arch_trials(grid, shard, names, in_shard, in_grid);
    size_t len = 1;
    for (int i = 0; i < n; i++)
        len += strlen(names[i]) + 1;
    if (!(joined = malloc(len))) {
        status = RS_E_NOMEM;
        goto done;
    }
    joined[0] = 0;
    for (int i = 0; i < n; i++)
        strcat(strcat(joined, i ? "," : ""), names[i]);
    long long grid_trials = (long long)rs_grid_count(grid), index = (long long)shard->index,
              count = (long long)shard->count,
              expected = (long long)rs_grid_shard_trials(shard, 0, rs_grid_count(grid));
    NC(nc_put_att_longlong(nc, NC_GLOBAL, "grid_trials", NC_INT64, 1, &grid_trials));
    NC(nc_put_att_longlong(nc, NC_GLOBAL, "shard_index", NC_INT64, 1, &index));
    NC(nc_put_att_longlong(nc, NC_GLOBAL, "shard_count", NC_INT64, 1, &count));
    NC(nc_put_att_longlong(nc, NC_GLOBAL, "trials_expected", NC_INT64, 1, &expected));
    NC(put_text(nc, NC_GLOBAL, "arch_names", joined));
    for (int i = 0; i < n; i++)
        values[i] = (long long)in_shard[i];
    NC(nc_put_att_longlong(nc, NC_GLOBAL, "arch_trials_expected", NC_INT64, (size_t)n, values));
    for (int i = 0; i < n; i++)
        values[i] = (long long)in_grid[i];
    NC(nc_put_att_longlong(nc, NC_GLOBAL, "arch_grid_trials", NC_INT64, (size_t)n, values));
done:
    free(names);
    free(in_shard);
    free(in_grid);
    free(values);
    free(joined);
    return status;
}

/* created (ISO 8601) and created_unix, and updated (unix time). */
static int put_times(int nc, int64_t created, int64_t updated)
{
    char when[32];
    long long c = (long long)created, u = (long long)updated;
    iso_time((time_t)created, when, sizeof when);
    int st = put_text(nc, NC_GLOBAL, "created", when);
    if (st == NC_NOERR)
        st = nc_put_att_longlong(nc, NC_GLOBAL, "created_unix", NC_INT64, 1, &c);
    if (st == NC_NOERR)
        st = nc_put_att_longlong(nc, NC_GLOBAL, "updated", NC_INT64, 1, &u);
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
    char hash[32], *blocks = block_names(grid);
    double *column = malloc((n ? n : 1) * sizeof *column);
    long long *icolumn = malloc((n ? n : 1) * sizeof *icolumn), total = (long long)rs_grid_count(grid),
              done = (long long)n;
    if (!blocks || !column || !icolumn) {
        status = RS_E_NOMEM;
        goto done;
    }
    if (rs_ncio_check_creatable(path, err, err_len) != RS_OK) {
        status = RS_E_IO;
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
    NC(put_times(nc, info->created, (int64_t)time(NULL)));
    status = put_shard_attributes(nc, grid, &info->shard, path, err, err_len);
    if (status != RS_OK)
        goto done;
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

/* "PATH.tmp" into tmp (room for 4096); RS_E_INVALID if the path is too long. */
static int tmp_path(const char *path, char *tmp, char *err, size_t err_len)
{
    if ((size_t)snprintf(tmp, 4096, "%s.tmp", path) >= 4096) {
        snprintf(err, err_len, "%s: path too long", path);
        return RS_E_INVALID;
    }
    return RS_OK;
}

/* After writing `tmp` (with `status`): fsync it and rename it over `path`, so that a kill at
 * any moment leaves the old file or the new one; on any failure remove tmp. */
static int replace_with(const char *tmp, const char *path, int status, char *err,
                        size_t err_len)
{
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

int rs_ncio_write_sweep(const char *path, const rs_grid *grid, const void *recs, size_t n,
                        const rs_ncio_sweep_info *info, char *err, size_t err_len)
{
    char tmp[4096];
    if (tmp_path(path, tmp, err, err_len) != RS_OK)
        return RS_E_INVALID;
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
    return replace_with(tmp, path, status, err, err_len);
}

/* --- reading results files back: status and merge --- */

/* An input-side problem: the message into err; RS_E_INVALID. */
static int refuse(char *err, size_t err_len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int refuse(char *err, size_t err_len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, err_len, fmt, ap);
    va_end(ap);
    return RS_E_INVALID;
}

/* A results file's identity, from its global attributes and its `trial` dimension. */
typedef struct {
    char job_name[256], job_hash[32];
    long long grid_trials, shard_index, shard_count, expected, created, updated;
    size_t n;
} sweep_identity;

static int open_results(const char *path, int *nc, char *err, size_t err_len)
{
    int st = nc_open(path, NC_NOWRITE, nc);
    if (st != NC_NOERR) {
        *nc = -1;
        return refuse(err, err_len, "%s: cannot be read as netCDF: %s", path, nc_strerror(st));
    }
    return RS_OK;
}

/* A text attribute into buf (NUL-terminated, at most len - 1 characters); 0 or -1. */
static int get_text_att(int nc, const char *name, char *buf, size_t len)
{
    nc_type type;
    size_t n;
    if (nc_inq_att(nc, NC_GLOBAL, name, &type, &n) != NC_NOERR || type != NC_CHAR || n >= len)
        return -1;
    if (nc_get_att_text(nc, NC_GLOBAL, name, buf) != NC_NOERR)
        return -1;
    buf[n] = 0;
    return 0;
}

/* A one-value integer attribute; 0 or -1. */
static int get_int_att(int nc, const char *name, long long *v)
{
    nc_type type;
    size_t n;
    if (nc_inq_att(nc, NC_GLOBAL, name, &type, &n) != NC_NOERR || n != 1 ||
        (type != NC_INT64 && type != NC_INT && type != NC_UINT64))
        return -1;
    return nc_get_att_longlong(nc, NC_GLOBAL, name, v) == NC_NOERR ? 0 : -1;
}

static const char *const OLDER_FILE = "(a results file of an older repsweep? rerun its "
                                      "`repsweep run` command to rewrite it)";

static int read_identity(int nc, const char *path, sweep_identity *id, char *err,
                         size_t err_len)
{
    static const char *const ints[] = {"grid_trials", "shard_index", "shard_count",
                                       "trials_expected", "created_unix", "updated"};
    long long *values[] = {&id->grid_trials, &id->shard_index, &id->shard_count,
                           &id->expected, &id->created, &id->updated};
    char title[128];
    int dim;
    memset(id, 0, sizeof *id);
    if (get_text_att(nc, "title", title, sizeof title) != 0 ||
        strncmp(title, "repsweep sweep", 14) != 0 ||
        get_text_att(nc, "job_hash", id->job_hash, sizeof id->job_hash) != 0 ||
        get_text_att(nc, "job_name", id->job_name, sizeof id->job_name) != 0 ||
        nc_inq_dimid(nc, "trial", &dim) != NC_NOERR || nc_inq_dimlen(nc, dim, &id->n) != NC_NOERR)
        return refuse(err, err_len, "%s is not a repsweep results file (no title 'repsweep "
                      "sweep ...', job_name, job_hash or dimension trial)", path);
    for (size_t i = 0; i < sizeof ints / sizeof *ints; i++)
        if (get_int_att(nc, ints[i], values[i]) != 0)
            return refuse(err, err_len, "%s: no integer global attribute '%s' %s", path,
                          ints[i], OLDER_FILE);
    if (id->shard_count < 1 || id->shard_index < 0 || id->shard_index >= id->shard_count ||
        id->grid_trials < 0 || id->expected < 0 || (long long)id->n > id->expected)
        return refuse(err, err_len, "%s: inconsistent attributes: shard %lld/%lld, %lld trials "
                      "expected, %zu held, %lld in the grid", path, id->shard_index,
                      id->shard_count, id->expected, id->n, id->grid_trials);
    return RS_OK;
}

/* Variable `name` over `trial` of type `type` into buf (n values). */
static int get_column(int nc, const char *path, const char *name, nc_type type, void *buf,
                      char *err, size_t err_len)
{
    int var, ndims;
    nc_type t;
    if (nc_inq_varid(nc, name, &var) != NC_NOERR || nc_inq_vartype(nc, var, &t) != NC_NOERR ||
        nc_inq_varndims(nc, var, &ndims) != NC_NOERR || t != type || ndims != 1)
        return refuse(err, err_len, "%s: no variable '%s' over trial of the expected type %s",
                      path, name, OLDER_FILE);
    int st = nc_get_var(nc, var, buf);
    if (st != NC_NOERR)
        return refuse(err, err_len, "%s: cannot read '%s': %s", path, name, nc_strerror(st));
    return RS_OK;
}

/* arch_names split at ',' and arch_trials_expected into s. */
static int read_arch_table(int nc, const char *path, rs_ncio_summary *s, char *err,
                           size_t err_len)
{
    nc_type type;
    size_t len, n_values;
    if (nc_inq_att(nc, NC_GLOBAL, "arch_names", &type, &len) != NC_NOERR || type != NC_CHAR ||
        nc_inq_att(nc, NC_GLOBAL, "arch_trials_expected", &type, &n_values) != NC_NOERR)
        return refuse(err, err_len, "%s: no attributes arch_names and arch_trials_expected %s",
                      path, OLDER_FILE);
    char *names = malloc(len + 1);
    long long *values = malloc((n_values ? n_values : 1) * sizeof *values);
    s->arch_names = calloc(n_values ? n_values : 1, sizeof *s->arch_names);
    s->arch_expected = calloc(n_values ? n_values : 1, sizeof *s->arch_expected);
    int status = RS_OK;
    if (!names || !values || !s->arch_names || !s->arch_expected) {
        status = RS_E_NOMEM;
        goto done;
    }
    if (nc_get_att_text(nc, NC_GLOBAL, "arch_names", names) != NC_NOERR ||
        (n_values && nc_get_att_longlong(nc, NC_GLOBAL, "arch_trials_expected", values) !=
                         NC_NOERR)) {
        status = refuse(err, err_len, "%s: cannot read arch_names or arch_trials_expected",
                        path);
        goto done;
    }
    names[len] = 0;
    char *save = NULL;
    for (char *tok = len ? strtok_r(names, ",", &save) : NULL; tok;
         tok = strtok_r(NULL, ",", &save)) {
        if ((size_t)s->n_arch == n_values || !(s->arch_names[s->n_arch] = strdup(tok))) {
            status = (size_t)s->n_arch == n_values ? RS_E_INVALID : RS_E_NOMEM;
            break;
        }
        s->arch_expected[s->n_arch] = (uint64_t)values[s->n_arch];
        s->n_arch++;
    }
    if (status == RS_E_INVALID || (status == RS_OK && (size_t)s->n_arch != n_values))
        status = refuse(err, err_len, "%s: arch_names has not as many names as "
                        "arch_trials_expected has values (%zu)", path, n_values);
done:
    free(names);
    free(values);
    return status;
}

void rs_ncio_summary_free(rs_ncio_summary *s)
{
    free(s->job_name);
    free(s->job_hash);
    for (int i = 0; i < s->n_arch; i++)
        free(s->arch_names[i]);
    free(s->arch_names);
    free(s->arch_expected);
    free(s->trial);
    free(s->status);
    free(s->converged);
    free(s->fit_loss_rel);
    free(s->train_seconds);
    free(s->fit_seconds);
    if (s->arch)
        nc_free_string(s->n, s->arch); /* library-allocated strings (NULL where unread) */
    free(s->arch);
    memset(s, 0, sizeof *s);
}

int rs_ncio_read_summary(const char *path, rs_ncio_summary *s, char *err, size_t err_len)
{
    sweep_identity id;
    int nc;
    memset(s, 0, sizeof *s);
    int status = open_results(path, &nc, err, err_len);
    if (status != RS_OK)
        return status;
    status = read_identity(nc, path, &id, err, err_len);
    if (status == RS_OK)
        status = read_arch_table(nc, path, s, err, err_len);
    if (status != RS_OK)
        goto done;
    size_t m = id.n ? id.n : 1;
    s->job_name = strdup(id.job_name);
    s->job_hash = strdup(id.job_hash);
    s->trial = malloc(m * sizeof *s->trial);
    s->status = malloc(m * sizeof *s->status);
    s->converged = malloc(m * sizeof *s->converged);
    s->fit_loss_rel = malloc(m * sizeof *s->fit_loss_rel);
    s->train_seconds = malloc(m * sizeof *s->train_seconds);
    s->fit_seconds = malloc(m * sizeof *s->fit_seconds);
    s->arch = calloc(m, sizeof *s->arch);
    if (!s->job_name || !s->job_hash || !s->trial || !s->status || !s->converged ||
        !s->fit_loss_rel || !s->train_seconds || !s->fit_seconds || !s->arch) {
        status = RS_E_NOMEM;
        goto done;
    }
    s->grid_trials = (uint64_t)id.grid_trials;
    s->trials_expected = (uint64_t)id.expected;
    s->shard.index = (uint64_t)id.shard_index;
    s->shard.count = (uint64_t)id.shard_count;
    s->created = id.created;
    s->updated = id.updated;
    s->n = id.n; /* s->arch is zeroed: freeing its strings is safe however far a read got */
    if (id.n == 0)
        goto done;
    const struct { const char *name; nc_type type; void *buf; } cols[] = {
        {"trial", NC_INT64, s->trial}, {"status", NC_INT64, s->status},
        {"converged", NC_INT64, s->converged}, {"fit_loss_rel", NC_DOUBLE, s->fit_loss_rel},
        {"train_seconds", NC_DOUBLE, s->train_seconds},
        {"fit_seconds", NC_DOUBLE, s->fit_seconds}, {"arch", NC_STRING, s->arch}};
    for (size_t i = 0; i < sizeof cols / sizeof *cols && status == RS_OK; i++)
        status = get_column(nc, path, cols[i].name, cols[i].type, cols[i].buf, err, err_len);
done:
    nc_close(nc);
    if (status == RS_E_NOMEM)
        snprintf(err, err_len, "%s: out of memory while reading it", path);
    if (status != RS_OK)
        rs_ncio_summary_free(s);
    return status;
}

/* --- merging the results files of a job's shards --- */

/* One input of a merge, open. */
typedef struct {
    int nc;
    const char *path;
    sweep_identity id;
    long long *trial;       /* its trial column */
    size_t first, count;    /* its rows in the output block being written */
    size_t offset;          /* where they sit in the block's input buffer */
} merge_source;

/* Output row j comes from row `row` of source `src`. */
typedef struct {
    long long trial;
    size_t src, row;
} merge_row;

static int by_trial(const void *a, const void *b)
{
    long long x = ((const merge_row *)a)->trial, y = ((const merge_row *)b)->trial;
    return (x > y) - (x < y);
}

/* Do files a and b have the same dimensions (but `trial`'s length) and the same variables
 * with the same types and dimension names? */
static int same_layout(const merge_source *a, const merge_source *b, char *err, size_t err_len)
{
    int nd[2], nv[2], ids[NC_MAX_DIMS];
    char name[NC_MAX_NAME + 1], dname[NC_MAX_NAME + 1];
    const merge_source *f[2] = {a, b};
    for (int i = 0; i < 2; i++)
        if (nc_inq_ndims(f[i]->nc, &nd[i]) != NC_NOERR || nc_inq_nvars(f[i]->nc, &nv[i]) !=
            NC_NOERR)
            return refuse(err, err_len, "%s: cannot read its dimensions", f[i]->path);
    if (nd[0] != nd[1] || nv[0] != nv[1])
        return refuse(err, err_len, "%s and %s have different layouts (%d and %d dimensions, "
                      "%d and %d variables)", a->path, b->path, nd[0], nd[1], nv[0], nv[1]);
    int n;
    nc_inq_dimids(a->nc, &n, ids, 0);
    for (int i = 0; i < n; i++) {
        size_t la, lb;
        int other;
        nc_inq_dim(a->nc, ids[i], name, &la);
        if (nc_inq_dimid(b->nc, name, &other) != NC_NOERR)
            return refuse(err, err_len, "%s and %s have different layouts (dimension '%s' "
                          "only in the first)", a->path, b->path, name);
        nc_inq_dimlen(b->nc, other, &lb);
        if (strcmp(name, "trial") != 0 && la != lb)
            return refuse(err, err_len, "%s and %s have different layouts (dimension '%s': "
                          "%zu and %zu)", a->path, b->path, name, la, lb);
    }
    for (int v = 0; v < nv[0]; v++) {
        int vb, na, nb, da[NC_MAX_VAR_DIMS], db[NC_MAX_VAR_DIMS];
        nc_type ta, tb;
        nc_inq_var(a->nc, v, name, &ta, &na, da, NULL);
        if (nc_inq_varid(b->nc, name, &vb) != NC_NOERR ||
            nc_inq_var(b->nc, vb, NULL, &tb, &nb, db, NULL) != NC_NOERR || ta != tb || na != nb)
            return refuse(err, err_len, "%s and %s have different layouts (variable '%s')",
                          a->path, b->path, name);
        for (int d = 0; d < na; d++) {
            nc_inq_dimname(a->nc, da[d], dname);
            char other[NC_MAX_NAME + 1];
            nc_inq_dimname(b->nc, db[d], other);
            if (strcmp(dname, other) != 0)
                return refuse(err, err_len, "%s and %s have different layouts (variable "
                              "'%s' over '%s' and '%s')", a->path, b->path, name, dname,
                              other);
        }
    }
    return RS_OK;
}

/* Open every input, read its identity and trial column, and check that they can be merged:
 * one job, one layout, shards that do not overlap, sorted trials of their shard. */
static int open_sources(merge_source *src, rs_ncio_merge_input *in, size_t n, char *err,
                        size_t err_len)
{
    for (size_t i = 0; i < n; i++) {
        merge_source *s = &src[i];
        s->path = in[i].path;
        int st = open_results(s->path, &s->nc, err, err_len);
        if (st == RS_OK)
            st = read_identity(s->nc, s->path, &s->id, err, err_len);
        if (st != RS_OK)
            return st;
        int att;
        if (nc_inq_attid(s->nc, NC_GLOBAL, "arch_grid_trials", &att) != NC_NOERR)
            return refuse(err, err_len, "%s: no attribute arch_grid_trials %s", s->path,
                          OLDER_FILE);
        in[i].shard.index = (uint64_t)s->id.shard_index;
        in[i].shard.count = (uint64_t)s->id.shard_count;
        in[i].done = s->id.n;
        in[i].expected = (uint64_t)s->id.expected;
        if (strcmp(s->id.job_hash, src[0].id.job_hash) != 0 ||
            s->id.grid_trials != src[0].id.grid_trials)
            return refuse(err, err_len, "%s and %s are results of different jobs ('%s', hash %s, "
                          "and '%s', hash %s): merge only the shards of one job", src[0].path,
                          s->path, src[0].id.job_name, src[0].id.job_hash, s->id.job_name,
                          s->id.job_hash);
        if (i > 0 && (st = same_layout(&src[0], s, err, err_len)) != RS_OK)
            return st;
        for (size_t j = 0; j < i; j++)
            if (rs_grid_shards_overlap(&in[j].shard, &in[i].shard,
                                       (uint64_t)s->id.grid_trials))
                return refuse(err, err_len, "%s (shard %lld/%lld) and %s (shard %lld/%lld) "
                              "overlap: %s", src[j].path, src[j].id.shard_index,
                              src[j].id.shard_count, s->path, s->id.shard_index,
                              s->id.shard_count, in[j].shard.index == in[i].shard.index &&
                              in[j].shard.count == in[i].shard.count ? "the same shard twice"
                              : "shards of different --shard N share trials");
        if (!(s->trial = malloc((s->id.n ? s->id.n : 1) * sizeof *s->trial)))
            return RS_E_NOMEM;
        if (s->id.n && (st = get_column(s->nc, s->path, "trial", NC_INT64, s->trial, err,
                                        err_len)) != RS_OK)
            return st;
        rs_grid_shard shard = in[i].shard;
        for (size_t r = 0; r < s->id.n; r++)
            if (s->trial[r] < 0 || s->trial[r] >= s->id.grid_trials ||
                !rs_grid_shard_has(&shard, (uint64_t)s->trial[r]) ||
                (r > 0 && s->trial[r] <= s->trial[r - 1]))
                return refuse(err, err_len, "%s: trial %lld (row %zu) is not in its shard "
                              "%lld/%lld of %lld trials, or out of order", s->path,
                              s->trial[r], r, s->id.shard_index, s->id.shard_count,
                              s->id.grid_trials);
    }
    return RS_OK;
}

/* Every source's rows in one list, sorted by trial; a trial held twice is refused. */
static int plan_rows(merge_source *src, size_t n, merge_row **rows, size_t *total, char *err,
                     size_t err_len)
{
    size_t t = 0;
    for (size_t i = 0; i < n; i++)
        t += src[i].id.n;
    merge_row *r = malloc((t ? t : 1) * sizeof *r);
    if (!r)
        return RS_E_NOMEM;
    for (size_t i = 0, k = 0; i < n; i++)
        for (size_t j = 0; j < src[i].id.n; j++, k++)
            r[k] = (merge_row){src[i].trial[j], i, j};
    qsort(r, t, sizeof *r, by_trial);
    for (size_t k = 1; k < t; k++)
        if (r[k].trial == r[k - 1].trial) {
            int st = refuse(err, err_len, "%s and %s both hold trial %lld: overlapping shards",
                            src[r[k - 1].src].path, src[r[k].src].path, r[k].trial);
            free(r);
            return st;
        }
    *rows = r;
    *total = t;
    return RS_OK;
}

/* Define in `out` the dimensions and variables of `in` (trial: `total` long), with every
 * variable and global attribute. */
static int define_like(int out, int in, size_t total, const char *path, char *err,
                       size_t err_len)
{
    int status = RS_OK, n, ids[NC_MAX_DIMS], map[NC_MAX_DIMS], nvars, natts;
    char name[NC_MAX_NAME + 1];
    NC(nc_inq_dimids(in, &n, ids, 0));
    for (int i = 0; i < n; i++) {
        size_t len;
        NC(nc_inq_dim(in, ids[i], name, &len));
        NC(nc_def_dim(out, name, strcmp(name, "trial") == 0 ? total : len, &map[i]));
    }
    NC(nc_inq_nvars(in, &nvars));
    for (int v = 0; v < nvars; v++) {
        int nd, dims[NC_MAX_VAR_DIMS], ov;
        nc_type type;
        NC(nc_inq_var(in, v, name, &type, &nd, dims, &natts));
        for (int d = 0; d < nd; d++)
            for (int i = 0; i < n; i++)
                if (ids[i] == dims[d]) {
                    dims[d] = map[i];
                    break;
                }
        NC(nc_def_var(out, name, type, nd, dims, &ov));
        for (int a = 0; a < natts; a++) {
            NC(nc_inq_attname(in, v, a, name));
            NC(nc_copy_att(in, v, name, out, ov));
        }
    }
    NC(nc_inq_natts(in, &natts));
    for (int a = 0; a < natts; a++) {
        NC(nc_inq_attname(in, NC_GLOBAL, a, name));
        NC(nc_copy_att(in, NC_GLOBAL, name, out, NC_GLOBAL));
    }
done:
    return status;
}

/* The global attributes that make the merged file a whole job's (ncio.h). */
static int put_merged_attributes(int out, const merge_source *src, rs_ncio_merge_input *in,
                                 size_t n, size_t total, const char *command_line,
                                 const char *path, char *err, size_t err_len)
{
    int status = RS_OK;
    long long zero = 0, one = 1, done_ = (long long)total, created = src[0].id.created,
              updated = src[0].id.updated;
    size_t n_arch;
    long long *arch = NULL;
    const char **paths = malloc(n * sizeof *paths);
    NC(nc_inq_attlen(src[0].nc, NC_GLOBAL, "arch_grid_trials", &n_arch));
    arch = malloc((n_arch ? n_arch : 1) * sizeof *arch);
    if (!paths || !arch) {
        status = RS_E_NOMEM;
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        paths[i] = in[i].path;
        created = src[i].id.created < created ? src[i].id.created : created;
        updated = src[i].id.updated > updated ? src[i].id.updated : updated;
    }
    NC(nc_put_att_longlong(out, NC_GLOBAL, "shard_index", NC_INT64, 1, &zero));
    NC(nc_put_att_longlong(out, NC_GLOBAL, "shard_count", NC_INT64, 1, &one));
    NC(nc_put_att_longlong(out, NC_GLOBAL, "trials_expected", NC_INT64, 1,
                           &src[0].id.grid_trials));
    NC(nc_put_att_longlong(out, NC_GLOBAL, "trials_done", NC_INT64, 1, &done_));
    if (n_arch) {
        NC(nc_get_att_longlong(src[0].nc, NC_GLOBAL, "arch_grid_trials", arch));
        NC(nc_put_att_longlong(out, NC_GLOBAL, "arch_trials_expected", NC_INT64, n_arch, arch));
    }
    NC(put_times(out, created, updated));
    if (command_line)
        NC(put_text(out, NC_GLOBAL, "command_line", command_line));
    NC(nc_put_att_string(out, NC_GLOBAL, "merged_from", n, paths));
done:
    free(paths);
    free(arch);
    return status;
}

/* Bytes of one block of rows read and written at once: bounds memory for long trajectories. */
enum { MERGE_BLOCK_BYTES = 16 << 20 };

/* Copy variable `name` over trial from the sources into out, rows in `rows` order, a block
 * of rows at a time: a block's rows of one source are consecutive in that source (both are
 * sorted by trial), so each source is read once per block. */
static int copy_trial_var(int out, int ov, merge_source *src, size_t n, const merge_row *rows,
                          size_t total, const char *path, char *err, size_t err_len)
{
    int status = RS_OK, nd, dims[NC_MAX_VAR_DIMS];
    nc_type type;
    size_t esize, row_elems = 1, count[NC_MAX_VAR_DIMS], start[NC_MAX_VAR_DIMS] = {0};
    char name[NC_MAX_NAME + 1];
    unsigned char *inbuf = NULL, *outbuf = NULL;
    NC(nc_inq_var(out, ov, name, &type, &nd, dims, NULL));
    NC(nc_inq_type(out, type, NULL, &esize));
    for (int d = 1; d < nd; d++) {
        NC(nc_inq_dimlen(out, dims[d], &count[d]));
        row_elems *= count[d];
    }
    size_t row_bytes = row_elems * esize, block = MERGE_BLOCK_BYTES / (row_bytes ? row_bytes : 1);
    block = block < 1 ? 1 : block > total ? total : block;
    inbuf = malloc(block * row_bytes + 1);
    outbuf = malloc(block * row_bytes + 1);
    if (!inbuf || !outbuf) {
        status = RS_E_NOMEM;
        goto done;
    }
    for (size_t j0 = 0; j0 < total; j0 += block) {
        size_t j1 = j0 + block < total ? j0 + block : total, offset = 0;
        for (size_t i = 0; i < n; i++)
            src[i].count = 0;
        for (size_t j = j0; j < j1; j++) {
            merge_source *s = &src[rows[j].src];
            if (s->count++ == 0)
                s->first = rows[j].row;
        }
        for (size_t i = 0; i < n; i++) {
            int iv;
            if (src[i].count == 0)
                continue;
            src[i].offset = offset;
            start[0] = src[i].first;
            count[0] = src[i].count;
            NC(nc_inq_varid(src[i].nc, name, &iv));
            int st = nc_get_vara(src[i].nc, iv, start, count, inbuf + offset * row_bytes);
            if (st != NC_NOERR) {
                snprintf(err, err_len, "%s: cannot read '%s': %s", src[i].path, name,
                         nc_strerror(st));
                status = RS_E_INVALID;
                goto done;
            }
            offset += src[i].count;
        }
        for (size_t j = j0; j < j1; j++) {
            const merge_source *s = &src[rows[j].src];
            memcpy(outbuf + (j - j0) * row_bytes,
                   inbuf + (s->offset + rows[j].row - s->first) * row_bytes, row_bytes);
        }
        start[0] = j0;
        count[0] = j1 - j0;
        int st = nc_put_vara(out, ov, start, count, outbuf);
        if (type == NC_STRING) /* outbuf holds the same pointers: free them once */
            nc_free_string((j1 - j0) * row_elems, (char **)inbuf);
        NC(st);
    }
done:
    free(inbuf);
    free(outbuf);
    return status;
}

/* A variable without the trial dimension (a coordinate: stage, epoch): from the first input. */
static int copy_whole_var(int out, int ov, const merge_source *first, const char *path,
                          char *err, size_t err_len)
{
    int status = RS_OK, nd, dims[NC_MAX_VAR_DIMS], iv;
    nc_type type;
    size_t esize, elems = 1, len;
    char name[NC_MAX_NAME + 1];
    void *buf = NULL;
    NC(nc_inq_var(out, ov, name, &type, &nd, dims, NULL));
    NC(nc_inq_type(out, type, NULL, &esize));
    for (int d = 0; d < nd; d++) {
        NC(nc_inq_dimlen(out, dims[d], &len));
        elems *= len;
    }
    if (!(buf = malloc(elems * esize + 1))) {
        status = RS_E_NOMEM;
        goto done;
    }
    NC(nc_inq_varid(first->nc, name, &iv));
    NC(nc_get_var(first->nc, iv, buf));
    int st = nc_put_var(out, ov, buf);
    if (type == NC_STRING)
        nc_free_string(elems, (char **)buf);
    NC(st);
done:
    free(buf);
    return status;
}

static int write_merged(const char *path, merge_source *src, rs_ncio_merge_input *in,
                        size_t n, const merge_row *rows, size_t total,
                        const char *command_line, char *err, size_t err_len)
{
    int status = RS_OK, nc = -1, nvars, trial_dim;
    if (rs_ncio_check_creatable(path, err, err_len) != RS_OK) {
        status = RS_E_IO;
        goto done;
    }
    NC(nc_create(path, NC_CLOBBER | NC_NETCDF4, &nc));
    status = define_like(nc, src[0].nc, total, path, err, err_len);
    if (status == RS_OK)
        status = put_merged_attributes(nc, src, in, n, total, command_line, path, err,
                                       err_len);
    if (status != RS_OK)
        goto done;
    NC(nc_enddef(nc));
    NC(nc_inq_dimid(nc, "trial", &trial_dim));
    NC(nc_inq_nvars(nc, &nvars));
    for (int v = 0; v < nvars && status == RS_OK; v++) {
        int nd, dims[NC_MAX_VAR_DIMS];
        NC(nc_inq_var(nc, v, NULL, NULL, &nd, dims, NULL));
        if (nd > 0 && dims[0] == trial_dim)
            status = total ? copy_trial_var(nc, v, src, n, rows, total, path, err, err_len)
                           : RS_OK;
        else
            status = copy_whole_var(nc, v, &src[0], path, err, err_len);
    }
done:
    return close_nc(nc, path, status, err, err_len);
}

int rs_ncio_merge_sweeps(const char *out, rs_ncio_merge_input *in, size_t n,
                         const char *command_line, uint64_t *grid_trials, char *err,
                         size_t err_len)
{
    char tmp[4096];
    merge_row *rows = NULL;
    size_t total = 0;
    if (n == 0)
        return refuse(err, err_len, "%s: nothing to merge", out);
    if (tmp_path(out, tmp, err, err_len) != RS_OK)
        return RS_E_INVALID;
    merge_source *src = calloc(n, sizeof *src);
    if (!src)
        return RS_E_NOMEM;
    for (size_t i = 0; i < n; i++)
        src[i].nc = -1;
    int status = open_sources(src, in, n, err, err_len);
    if (status == RS_OK)
        status = plan_rows(src, n, &rows, &total, err, err_len);
    if (status == RS_OK) {
        *grid_trials = (uint64_t)src[0].id.grid_trials;
        status = write_merged(tmp, src, in, n, rows, total, command_line, err, err_len);
        if (status == RS_E_NOMEM)
            snprintf(err, err_len, "%s: out of memory while merging", out);
        status = replace_with(tmp, out, status, err, err_len);
    } else if (status == RS_E_NOMEM) {
        snprintf(err, err_len, "out of memory while reading the inputs of %s", out);
    }
    for (size_t i = 0; i < n; i++) {
        if (src[i].nc >= 0)
            nc_close(src[i].nc);
        free(src[i].trial);
    }
    free(src);
    free(rows);
    return status;
}
