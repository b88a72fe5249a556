/* ncio.c — netCDF output (see ncio.h). */
#define _POSIX_C_SOURCE 200809L
#include "repsweep/ncio.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <math.h>
#include <gsl/gsl_version.h>
#include <hdf5.h> /* H5Eset_auto2 only: see quiet_hdf5 */
#include <netcdf.h>
#include <pthread.h>
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

/* Every netCDF call goes through NC(): on failure, record where and why (netCDF says "HDF
 * error" for a failed write: the system's reason, e.g. "No space left on device", is errno),
 * and jump out. */
#define NC(call)                                                                           \
    do {                                                                                   \
        errno = 0;                                                                         \
        int nc_status_ = (call);                                                           \
        if (nc_status_ != NC_NOERR) {                                                      \
            if (err && err_len)                                                            \
                nc_message(err, err_len, path, nc_status_, #call);                         \
            status = RS_E_NETCDF;                                                          \
            goto done;                                                                     \
        }                                                                                  \
    } while (0)

/* "PATH: netCDF: WHY (WHAT)"; when a system call below failed, its reason first: "PATH: No
 * space left on device (netCDF: WHY, WHAT)" (netCDF reports a full disk as "HDF error", or
 * as "Permission denied" when creating). */
static void nc_message(char *err, size_t len, const char *path, int st, const char *what)
{
    int sys = errno;
    if (sys)
        snprintf(err, len, "%s: %s (%s, in %s)", path, strerror(sys), nc_strerror(st), what);
    else
        snprintf(err, len, "%s: netCDF: %s (%s)", path, nc_strerror(st), what);
}

/* Before HDF5 starts (pthread_once): no closing of open files at exit. A close that fails
 * (a full disk) leaves its file open inside netCDF and HDF5 (netCDF keeps it, and aborting
 * it then crashes), and HDF5's exit handler would crash closing it again; the file is our
 * temporary one, removed already. */
static void hdf5_no_atexit(void)
{
    H5dont_atexit();
}

/* netCDF turns HDF5's printing of its error stacks off, but HDF5 (Debian's is thread-safe)
 * keeps that setting per thread, and only for the thread that first used netCDF: a write from
 * another thread (repsweep run's background checkpoints) that fails, e.g. on a full disk,
 * would print dozens of HDF5-DIAG lines beside our one message. Every entry point that
 * writes calls this first. */
static void quiet_hdf5(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, hdf5_no_atexit);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

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

/* CF attributes of a variable: long_name, units (if any), comment (if any). */
static int put_cf_attributes(int nc, int var, const char *long_name, const char *units,
                             const char *comment)
{
    int st = put_text(nc, var, "long_name", long_name);
    if (st == NC_NOERR && units)
        st = put_text(nc, var, "units", units);
    if (st == NC_NOERR && comment)
        st = put_text(nc, var, "comment", comment);
    return st;
}

/* flag_values (of the variable's type: NC_INT or NC_INT64) and flag_meanings. */
static int put_flags(int nc, int var, nc_type type, int n, const long long *values,
                     const char *meanings)
{
    int st = nc_put_att_longlong(nc, var, "flag_values", type, (size_t)n, values);
    if (st == NC_NOERR)
        st = put_text(nc, var, "flag_meanings", meanings);
    return st;
}

/* zlib level of every compressed variable (with the shuffle filter): level 4 takes the
 * quickstart file from 1.63 to 0.97 MB; higher levels gain little for much more time. */
enum { DEFLATE_LEVEL = 4 };

/* Define a variable with CF attributes; doubles get _FillValue RS_STORE_FILL_DOUBLE (write
 * them through fill_nan). chunks: NULL for contiguous storage, else the chunk shape, and the
 * variable is compressed (zlib level 4 with the shuffle filter). */
static int def_cf_var(int nc, const char *name, nc_type type, int ndims, const int *dims,
                      const size_t *chunks, const char *long_name, const char *units,
                      const char *comment, int *var)
{
    int st = nc_def_var(nc, name, type, ndims, dims, var);
    if (st == NC_NOERR && chunks && ndims > 0) {
        st = nc_def_var_chunking(nc, *var, NC_CHUNKED, chunks);
        if (st == NC_NOERR)
            st = nc_def_var_deflate(nc, *var, 1, 1, DEFLATE_LEVEL);
    }
    if (st == NC_NOERR && type == NC_DOUBLE) {
        double fill = RS_STORE_FILL_DOUBLE;
        st = nc_def_var_fill(nc, *var, 0, &fill);
    }
    if (st == NC_NOERR)
        st = put_cf_attributes(nc, *var, long_name, units, comment);
    return st;
}

/* NaN (a missing value in a record or trajectory) to the _FillValue, in place. */
static void fill_nan(double *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (isnan(x[i]))
            x[i] = RS_STORE_FILL_DOUBLE;
}

static void iso_time(time_t when, char *buf, size_t len);

/* The CF global attributes every file of repsweep's has: Conventions, source, references,
 * history (`command_line`, may be NULL, run at `when`). */
static int put_cf_globals(int nc, const char *title, const char *command_line, time_t when)
{
    static const char references[] =
        "van Rossem, L. and Saxe, A. M.: When Representations Align: Universality in "
        "Representation Learning Dynamics, ICML 2024";
    char stamp[32], *history;
    iso_time(when, stamp, sizeof stamp);
    const char *cmd = command_line ? command_line : "repsweep";
    if (!(history = malloc(strlen(stamp) + strlen(cmd) + 4)))
        return NC_ENOMEM;
    sprintf(history, "%s: %s", stamp, cmd);
    int st = put_text(nc, NC_GLOBAL, "Conventions", "CF-1.8");
    if (st == NC_NOERR)
        st = put_text(nc, NC_GLOBAL, "title", title);
    if (st == NC_NOERR)
        st = put_text(nc, NC_GLOBAL, "source", "repsweep " REPSWEEP_VERSION " (git "
                      REPSWEEP_GIT_COMMIT ")");
    if (st == NC_NOERR)
        st = put_text(nc, NC_GLOBAL, "references", references);
    if (st == NC_NOERR)
        st = put_text(nc, NC_GLOBAL, "history", history);
    free(history);
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
    /* the layer width is hidden_units: a global `units` reads as the file's CF units */
    static const char *int_names[5] = {"hidden_layers", "hidden_units", "conv_channels",
                                       "conv_kernel", "skip"};
    double reals[6] = {s->gain, s->lr, s->input_gap, s->target_gap, a->dropout,
                       s->converge_loss};
    static const char *real_names[6] = {"gain", "lr", "input_gap", "target_gap", "dropout",
                                        "converge_loss"};
    long long seed = s->seed, epochs = s->epochs;
    char when[32];
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
    errno = 0;
    int st = nc_close(nc);
    if (st != NC_NOERR) {
        if (status == RS_OK)
            nc_message(err, err_len, path, st, "closing");
        return status == RS_OK ? RS_E_NETCDF : status; /* the file stays open: quiet_hdf5 */
    }
    return status;
}

enum { T_DH2, T_DYHAT2, T_W, T_LOSS, T_YMEAN, T_DH2_TH, T_DYHAT2_TH, T_W_TH, T_LOSS_TH, T_N };

/* Write `n` doubles of `data` to `var` with NaN as the fill value (through a copy). */
static int put_filled(int nc, int var, const double *data, size_t n)
{
    double *x = malloc((n ? n : 1) * sizeof *x);
    if (!x)
        return NC_ENOMEM;
    memcpy(x, data, n * sizeof *x);
    fill_nan(x, n);
    int st = nc_put_var_double(nc, var, x);
    free(x);
    return st;
}

/* A record field's value from a record, as a double or an integer. */
static const void *field_at(const rs_store_record *rec, const rs_store_field *f)
{
    return (const char *)rec + f->offset;
}

int rs_ncio_write_trial(const char *path, const rs_trial_spec *s, const rs_trajectory *t,
                        const rs_trial_result *r, const char *command_line, char *err,
                        size_t err_len)
{
    quiet_hdf5();
    static const char *const names[T_N] = {"dh2", "dyhat2", "w", "loss", "yhat_mean",
                                           "dh2_theory", "dyhat2_theory", "w_theory",
                                           "loss_theory"};
    static const char *const long_names[T_N] = {"dh2", "dyhat2", "w", "loss",
                                                "mean predicted output", "theory dh2",
                                                "theory dyhat2", "theory w", "theory loss"};
    static const char *const comments[T_N] = {
        "squared distance of the two hidden representations at the observed layer, "
        "||h(x2)-h(x1)||^2",
        "squared predicted output difference ||f(x2)-f(x1)||^2 (not the target gap)",
        "output alignment w = dyhat2 - (f(x2)-f(x1))(y2-y1)",
        "training loss 1/2 mean_i (f(x_i)-y_i)^2, evaluation mode",
        "(f(x1)+f(x2))/2",
        "dh2 of the effective theory (Eq. 7) with the fitted rates; missing without a fit",
        "dyhat2 of the effective theory (Eq. 7) with the fitted rates; missing without a fit",
        "w of the effective theory (Eq. 7) with the fitted rates; missing without a fit",
        "loss of the effective theory (Eq. 9) with the fitted rates; missing without a fit"};
    const double *data[T_N] = {t->dh2, t->dyhat2, t->w, t->loss, t->yhat_mean,
                               t->dh2_theory, t->dyhat2_theory, t->w_theory, t->loss_theory};
    int status = RS_OK, nc = -1, dim_epoch, dim_stage = -1, var[T_N], var_epoch, var_stages = -1;
    int nf, svar[64];
    const rs_store_field *f = rs_store_fields(&nf);
    /* the trial's scalars are its sweep record (store.h), so both files say the same */
    rs_store_layout summary_only = {0, 0, 0};
    rs_store_record rec;
    rs_store_record_from_trial(0, &summary_only, s, t, r, &rec);
    if (rs_ncio_check_creatable(path, err, err_len) != RS_OK) {
        status = RS_E_IO;
        goto done;
    }
    NC(nc_create(path, NC_CLOBBER | NC_NETCDF4, &nc));
    NC(nc_def_dim(nc, "epoch", (size_t)t->epochs_run, &dim_epoch));
    size_t chunk = t->epochs_run > 0 ? (size_t)t->epochs_run : 1, chunks[2];
    NC(def_cf_var(nc, "epoch", NC_INT, 1, &dim_epoch, NULL, "epoch", "1",
                  "full-batch gradient steps before the record", &var_epoch));
    for (int i = 0; i < T_N; i++)
        NC(def_cf_var(nc, names[i], NC_DOUBLE, 1, &dim_epoch, t->epochs_run ? &chunk : NULL,
                      long_names[i], "1", comments[i], &var[i]));
    if (t->dh2_stages) {
        int dims[2];
        NC(nc_def_dim(nc, "stage", (size_t)t->n_stages, &dim_stage));
        dims[0] = dim_epoch;
        dims[1] = dim_stage;
        chunks[0] = chunk;
        chunks[1] = t->n_stages > 0 ? (size_t)t->n_stages : 1;
        NC(def_cf_var(nc, "dh2_stage", NC_DOUBLE, 2, dims,
                      t->epochs_run && t->n_stages ? chunks : NULL, "dh2 per stage", "1",
                      "dh2 at every hidden stage (0-based, input side first)", &var_stages));
    }
    for (int i = 0; i < nf; i++) {
        NC(def_cf_var(nc, f[i].name, f[i].is_int ? NC_INT64 : NC_DOUBLE, 0, NULL, NULL,
                      f[i].long_name, f[i].units, f[i].comment, &svar[i]));
        if (f[i].n_flags)
            NC(put_flags(nc, svar[i], NC_INT64, f[i].n_flags, f[i].flag_values,
                         f[i].flag_meanings));
    }
    NC(put_cf_globals(nc, "repsweep trial: two-point representation dynamics", command_line,
                      time(NULL)));
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
        NC(put_filled(nc, var[i], data[i], (size_t)t->epochs_run));
    if (t->dh2_stages)
        NC(put_filled(nc, var_stages, t->dh2_stages, (size_t)t->epochs_run * (size_t)t->n_stages));
    for (int i = 0; i < nf; i++) {
        if (f[i].is_int) {
            long long v;
            memcpy(&v, field_at(&rec, &f[i]), sizeof v);
            NC(nc_put_var_longlong(nc, svar[i], &v));
        } else {
            NC(put_filled(nc, svar[i], field_at(&rec, &f[i]), 1));
        }
    }
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
    NC(put_cf_globals(nc, "repsweep initial weights: a trial's network before training", NULL,
                      time(NULL)));
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

/* The job's architecture table (rs_grid_arch_trials: names in grid order, "theory" for the
 * theory-only blocks): the `arch` variable holds an index into it, so that CDO and
 * netCDF-4-classic tools, which skip strings, read the label too. */
typedef struct {
    int n;
    const char **names;
    uint64_t *in_shard, *in_grid;
} arch_table;

static void arch_table_free(arch_table *t)
{
    free(t->names);
    free(t->in_shard);
    free(t->in_grid);
    memset(t, 0, sizeof *t);
}

static int arch_table_of(const rs_grid *grid, const rs_grid_shard *shard, arch_table *t)
{
    int slots = rs_grid_arch_slots(grid);
    size_t m = (size_t)(slots > 0 ? slots : 1);
    memset(t, 0, sizeof *t);
    t->names = malloc(m * sizeof *t->names);
    t->in_shard = malloc(m * sizeof *t->in_shard);
    t->in_grid = malloc(m * sizeof *t->in_grid);
    if (!t->names || !t->in_shard || !t->in_grid) {
        arch_table_free(t);
        return RS_E_NOMEM;
    }
    t->n = rs_grid_arch_trials(grid, shard, t->names, t->in_shard, t->in_grid);
    return RS_OK;
}

/* CF flag_meanings of the table: its names, blanks made underscores. */
static char *arch_meanings(const arch_table *t)
{
    size_t len = 1;
    for (int i = 0; i < t->n; i++)
        len += strlen(t->names[i]) + 1;
    char *s = malloc(len), *p = s;
    if (!s)
        return NULL;
    for (int i = 0; i < t->n; i++) {
        if (i)
            *p++ = ' ';
        for (const char *c = t->names[i]; *c; c++)
            *p++ = *c == ' ' || *c == '\t' ? '_' : *c;
    }
    *p = 0;
    return s;
}

/* The per-trial coordinates (grid.h) of a batch of sorted records, one array per variable;
 * the missing ones (a theory-only trial's arch, gain and seed) hold the fill values. */
typedef struct {
    long long *trial, *seed;
    int *block, *arch;
    double *gain, *input_gap, *target_gap;
} sweep_coords;

static void coords_free(sweep_coords *c)
{
    free(c->trial);
    free(c->seed);
    free(c->block);
    free(c->arch);
    free(c->gain);
    free(c->input_gap);
    free(c->target_gap);
    memset(c, 0, sizeof *c);
}

static int coords_alloc(sweep_coords *c, size_t n)
{
    size_t m = n ? n : 1;
    memset(c, 0, sizeof *c);
    c->trial = malloc(m * sizeof *c->trial);
    c->seed = malloc(m * sizeof *c->seed);
    c->block = malloc(m * sizeof *c->block);
    c->arch = malloc(m * sizeof *c->arch);
    c->gain = malloc(m * sizeof *c->gain);
    c->input_gap = malloc(m * sizeof *c->input_gap);
    c->target_gap = malloc(m * sizeof *c->target_gap);
    if (!c->trial || !c->seed || !c->block || !c->arch || !c->gain || !c->input_gap ||
        !c->target_gap) {
        coords_free(c);
        return RS_E_NOMEM;
    }
    return RS_OK;
}

static int coords_fill(const rs_grid *grid, const arch_table *archs, const rs_store_layout *l,
                       const void *recs, size_t n, sweep_coords *c)
{
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
        c->arch[i] = NC_FILL_INT;
        for (int a = 0; net && a < archs->n; a++)
            if (strcmp(archs->names[a], t.arch->name) == 0) {
                c->arch[i] = a;
                break;
            }
        c->gain[i] = net ? t.gain : RS_STORE_FILL_DOUBLE;
        c->seed[i] = net ? t.seed : NC_FILL_INT64;
        c->input_gap[i] = t.input_gap;
        c->target_gap[i] = t.target_gap;
    }
    return RS_OK;
}

/* "0: name0 (network), 1: name1 (theory-only), ..." for the `block` variable's comment. */
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

/* The block names as CF flag_meanings (blanks made underscores). */
static char *block_meanings(const rs_grid *grid)
{
    size_t len = 1;
    for (int b = 0; b < grid->n_blocks; b++)
        len += strlen(grid->job->blocks[b].name) + 1;
    char *s = malloc(len), *p = s;
    if (!s)
        return NULL;
    for (int b = 0; b < grid->n_blocks; b++) {
        if (b)
            *p++ = ' ';
        for (const char *c = grid->job->blocks[b].name; *c; c++)
            *p++ = *c == ' ' || *c == '\t' ? '_' : *c;
    }
    *p = 0;
    return s;
}

/* Trials per chunk of a variable whose trial holds `per_trial` values: about 64 Ki values
 * (512 KiB of doubles) per chunk, so reading one variable over all trials reads few chunks
 * and reading one trial's trajectory decompresses one chunk of each variable. */
static size_t trials_per_chunk(size_t n, size_t per_trial)
{
    size_t k = ((size_t)1 << 16) / (per_trial ? per_trial : 1);
    k = k < 1 ? 1 : k;
    return k < n ? k : n;
}

/* The file's variables: ids and what write_batch needs. */
typedef struct {
    int trial, block, arch, gain, seed, input, target, stage, epoch;
    int field[64], extra[RS_STORE_EXTRAS_MAX];
    int n_fields, n_extras;
    const rs_store_field *fields;
    rs_store_extra extras[RS_STORE_EXTRAS_MAX];
} sweep_vars;

/* Define the coordinate variables `stage` and `epoch` and the extras' variables (store.h)
 * over (trial, stage), (trial, epoch), (trial, epoch, stage). */
static int def_extras(int nc, int dim_trial, size_t n, const rs_store_layout *l,
                      sweep_vars *v)
{
    int st = NC_NOERR, dim_stage = -1, dim_epoch = -1;
    size_t S = (size_t)l->n_stages, E = (size_t)l->n_epochs;
    if (S > 0) {
        st = nc_def_dim(nc, "stage", S, &dim_stage);
        if (st == NC_NOERR)
            st = def_cf_var(nc, "stage", NC_INT, 1, &dim_stage, NULL, "hidden stage", "1",
                            "0-based, input side first", &v->stage);
    }
    if (st == NC_NOERR && E > 0) {
        st = nc_def_dim(nc, "epoch", E, &dim_epoch);
        if (st == NC_NOERR)
            st = def_cf_var(nc, "epoch", NC_INT64, 1, &dim_epoch, NULL, "epoch", "1",
                            "gradient steps before the record; every trajectory_stride-th",
                            &v->epoch);
    }
    for (int i = 0; i < v->n_extras && st == NC_NOERR; i++) {
        const rs_store_extra *x = &v->extras[i];
        int dims[3] = {dim_trial, x->shape == RS_STORE_PER_STAGE ? dim_stage : dim_epoch,
                       dim_stage};
        int nd = x->shape == RS_STORE_PER_EPOCH_STAGE ? 3 : 2;
        size_t chunks[3] = {trials_per_chunk(n, x->count), x->shape == RS_STORE_PER_STAGE ? S : E,
                            S};
        st = def_cf_var(nc, x->name, NC_DOUBLE, nd, dims, n ? chunks : NULL, x->long_name,
                        x->units, x->comment, &v->extra[i]);
    }
    return st;
}

/* Define the per-trial coordinates, the record's fields and the extras. */
static int def_sweep_vars(int nc, const rs_grid *grid, const arch_table *archs,
                          const rs_store_layout *l, size_t n, sweep_vars *v, const char *path,
                          char *err, size_t err_len)
{
    int status = RS_OK, dim;
    size_t chunk = trials_per_chunk(n, 1), *chunks = n ? &chunk : NULL;
    char *blocks = block_names(grid), *block_flags = block_meanings(grid),
         *arch_flags = arch_meanings(archs);
    long long *values = malloc((size_t)(grid->n_blocks + archs->n + 1) * sizeof *values);
    if (!blocks || !block_flags || !arch_flags || !values) {
        status = RS_E_NOMEM;
        goto done;
    }
    v->fields = rs_store_fields(&v->n_fields);
    v->n_extras = rs_store_extras(l, v->extras);
    v->stage = v->epoch = -1;
    NC(nc_def_dim(nc, "trial", n, &dim));
    NC(def_cf_var(nc, "trial", NC_INT64, 1, &dim, chunks, "grid index", "1", "the trial's "
                  "index in the job's grid (blocks in file order, the last axis fastest)",
                  &v->trial));
    NC(def_cf_var(nc, "block", NC_INT, 1, &dim, chunks, "job block", "1", "block of the job "
                  "file (0-based); block_names says which are theory-only", &v->block));
    NC(put_text(nc, v->block, "block_names", blocks));
    for (int b = 0; b < grid->n_blocks; b++)
        values[b] = b;
    NC(put_flags(nc, v->block, NC_INT, grid->n_blocks, values, block_flags));
    NC(def_cf_var(nc, "arch", NC_INT, 1, &dim, chunks, "architecture", "1", "index into "
                  "flag_meanings (the global arch_names); missing for theory-only trials",
                  &v->arch));
    {
        int fill = NC_FILL_INT;
        NC(nc_def_var_fill(nc, v->arch, 0, &fill));
    }
    for (int a = 0; a < archs->n; a++)
        values[a] = a;
    if (archs->n > 0)
        NC(put_flags(nc, v->arch, NC_INT, archs->n, values, arch_flags));
    NC(def_cf_var(nc, "gain", NC_DOUBLE, 1, &dim, chunks, "initial weight gain", "1",
                  "Xavier-normal gain of the initial weights; missing for theory-only trials",
                  &v->gain));
    NC(def_cf_var(nc, "input_gap", NC_DOUBLE, 1, &dim, chunks, "input gap", "1",
                  "data input gap |x2 - x1| (a distance)", &v->input));
    NC(def_cf_var(nc, "target_gap", NC_DOUBLE, 1, &dim, chunks, "target gap", "1",
                  "data target gap |y2 - y1| (a distance; not the predicted output "
                  "difference dyhat2)", &v->target));
    NC(def_cf_var(nc, "seed", NC_INT64, 1, &dim, chunks, "seed", "1", "seed of the initial "
                  "weights; missing for theory-only trials", &v->seed));
    {
        long long fill = NC_FILL_INT64;
        NC(nc_def_var_fill(nc, v->seed, 0, &fill));
    }
    for (int i = 0; i < v->n_fields; i++) {
        const rs_store_field *f = &v->fields[i];
        NC(def_cf_var(nc, f->name, f->is_int ? NC_INT64 : NC_DOUBLE, 1, &dim, chunks,
                      f->long_name, f->units, f->comment, &v->field[i]));
        if (f->n_flags)
            NC(put_flags(nc, v->field[i], NC_INT64, f->n_flags, f->flag_values,
                         f->flag_meanings));
    }
    NC(def_extras(nc, dim, n, l, v));
    /* a global `coordinates` (xarray reads it): per-variable ones make CDO take them for
     * geolocation, warn and skip the trajectories */
    NC(put_text(nc, NC_GLOBAL, "coordinates", "block arch gain seed input_gap target_gap"));
done:
    free(blocks);
    free(block_flags);
    free(arch_flags);
    free(values);
    return status;
}

/* The coordinate variables stage and epoch. */
static int put_stage_epoch(int nc, const rs_store_layout *l, const sweep_vars *v)
{
    int st = NC_NOERR;
    for (size_t k = 0; k < (size_t)l->n_stages && st == NC_NOERR; k++) {
        int value = (int)k;
        st = nc_put_var1_int(nc, v->stage, &k, &value);
    }
    for (size_t k = 0; k < (size_t)l->n_epochs && st == NC_NOERR; k++) {
        long long value = (long long)k * l->stride;
        st = nc_put_var1_longlong(nc, v->epoch, &k, &value);
    }
    return st;
}

/* Write `n` sorted records (their coordinates in c) as rows first.. of every variable over
 * trial; buf has room for n x (the largest per-trial count) doubles. */
static int write_batch(int nc, const rs_store_layout *l, const sweep_vars *v, size_t first,
                       const void *recs, size_t n, const sweep_coords *c, double *buf)
{
    size_t start[3] = {first, 0, 0}, count[3] = {n, 0, 0};
    int st = nc_put_vara_longlong(nc, v->trial, start, count, c->trial);
    if (st == NC_NOERR)
        st = nc_put_vara_int(nc, v->block, start, count, c->block);
    if (st == NC_NOERR)
        st = nc_put_vara_int(nc, v->arch, start, count, c->arch);
    if (st == NC_NOERR)
        st = nc_put_vara_double(nc, v->gain, start, count, c->gain);
    if (st == NC_NOERR)
        st = nc_put_vara_double(nc, v->input, start, count, c->input_gap);
    if (st == NC_NOERR)
        st = nc_put_vara_double(nc, v->target, start, count, c->target_gap);
    if (st == NC_NOERR)
        st = nc_put_vara_longlong(nc, v->seed, start, count, c->seed);
    for (int i = 0; i < v->n_fields && st == NC_NOERR; i++) {
        const rs_store_field *f = &v->fields[i];
        for (size_t k = 0; k < n; k++) /* 8-byte fields: doubles and int64 alike */
            memcpy(&buf[k], field_at(rs_store_record_at(recs, l, k), f), sizeof(double));
        if (f->is_int)
            st = nc_put_vara_longlong(nc, v->field[i], start, count, (long long *)buf);
        else {
            fill_nan(buf, n);
            st = nc_put_vara_double(nc, v->field[i], start, count, buf);
        }
    }
    for (int i = 0; i < v->n_extras && st == NC_NOERR; i++) {
        const rs_store_extra *x = &v->extras[i];
        for (size_t k = 0; k < n; k++)
            memcpy(buf + k * x->count, rs_store_record_extras(rs_store_record_at(recs, l, k)) +
                   x->offset, x->count * sizeof *buf);
        fill_nan(buf, n * x->count);
        count[1] = x->shape == RS_STORE_PER_STAGE ? (size_t)l->n_stages : (size_t)l->n_epochs;
        count[2] = (size_t)l->n_stages;
        st = nc_put_vara_double(nc, v->extra[i], start, count, buf);
    }
    return st;
}

static int put_shard_attributes(int nc, const rs_grid *grid, const rs_grid_shard *shard,
                                const arch_table *archs, const char *path, char *err,
                                size_t err_len)
{
    int status = RS_OK, n = archs->n;
    const char **names = archs->names;
    long long *values = malloc((size_t)(n ? n : 1) * sizeof *values);
    char *joined = NULL;
    if (!values) {
        status = RS_E_NOMEM;
        goto done;
    }
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
        values[i] = (long long)archs->in_shard[i];
    NC(nc_put_att_longlong(nc, NC_GLOBAL, "arch_trials_expected", NC_INT64, (size_t)n, values));
    for (int i = 0; i < n; i++)
        values[i] = (long long)archs->in_grid[i];
    NC(nc_put_att_longlong(nc, NC_GLOBAL, "arch_grid_trials", NC_INT64, (size_t)n, values));
done:
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

/* Bytes of records read and written per batch: with the coordinates and one variable's
 * column (write_batch's buf), the writer's memory, whatever the trial count. */
enum { SWEEP_BATCH_BYTES = 8 << 20 };

/* Trials per batch: about SWEEP_BATCH_BYTES of records, a multiple of the trajectory
 * variables' chunk (trials_per_chunk) when one fits, so that each batch fills whole chunks. */
static size_t sweep_batch(size_t n, const rs_store_layout *l)
{
    size_t rec = rs_store_record_bytes(l), batch = SWEEP_BATCH_BYTES / rec, per_chunk = 0;
    rs_store_extra ex[RS_STORE_EXTRAS_MAX];
    int n_ex = rs_store_extras(l, ex);
    for (int i = 0; i < n_ex; i++) {
        size_t k = trials_per_chunk(n, ex[i].count);
        per_chunk = k > per_chunk ? k : per_chunk;
    }
    if (per_chunk > 0 && batch >= per_chunk)
        batch -= batch % per_chunk;
    batch = batch < 1 ? 1 : batch;
    return batch < n ? batch : (n ? n : 1);
}

size_t rs_ncio_sweep_writer_bytes(const rs_store_layout *l)
{
    /* a batch of records, write_batch's column buffer and coordinates (7 arrays of at most
     * 8 bytes), and per variable over trial the chunk being filled (HDF5's cache: about
     * 64 Ki values) */
    int n_fields;
    rs_store_extra ex[RS_STORE_EXTRAS_MAX];
    rs_store_fields(&n_fields);
    size_t batch = sweep_batch(SIZE_MAX / 2, l), vars = 7 + (size_t)n_fields +
                                                        (size_t)rs_store_extras(l, ex);
    return batch * (rs_store_record_bytes(l) + (1 + rs_store_layout_doubles(l) + 7) *
                    sizeof(double)) + vars * ((size_t)1 << 16) * sizeof(double);
}

static int write_sweep_file(const char *path, const rs_grid *grid, rs_store_snapshot *snap,
                            const rs_ncio_sweep_info *info, char *err, size_t err_len)
{
    int status = RS_OK, nc = -1;
    sweep_vars v;
    arch_table archs;
    sweep_coords c;
    char hash[32];
    const rs_store_layout *l = rs_store_snapshot_layout(snap);
    size_t n = rs_store_snapshot_count(snap), batch = sweep_batch(n, l);
    long long total = (long long)rs_grid_count(grid), done = (long long)n;
    size_t per_trial = 1 + rs_store_layout_doubles(l);
    double *buf = malloc(batch * per_trial * sizeof *buf);
    void *recs = malloc(batch * rs_store_record_bytes(l));
    memset(&c, 0, sizeof c);
    memset(&archs, 0, sizeof archs);
    if (!buf || !recs || arch_table_of(grid, &info->shard, &archs) != RS_OK ||
        coords_alloc(&c, batch) != RS_OK) {
        status = RS_E_NOMEM;
        goto done;
    }
    if (rs_ncio_check_creatable(path, err, err_len) != RS_OK) {
        status = RS_E_IO;
        goto done;
    }
    NC(nc_create(path, NC_CLOBBER | NC_NETCDF4, &nc));
    status = def_sweep_vars(nc, grid, &archs, l, n, &v, path, err, err_len);
    if (status != RS_OK)
        goto done;
    NC(put_cf_globals(nc, "repsweep sweep: one summary per finished trial", info->command_line,
                      time(NULL)));
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
    status = put_shard_attributes(nc, grid, &info->shard, &archs, path, err, err_len);
    if (status != RS_OK)
        goto done;
    NC(nc_enddef(nc));
    NC(put_stage_epoch(nc, l, &v));
    /* the records in grid order, a batch at a time, straight from the journal */
    for (size_t first = 0; first < n; first += batch) {
        size_t m = n - first < batch ? n - first : batch;
        if ((status = rs_store_snapshot_read(snap, first, m, recs, err, err_len)) != RS_OK ||
            (status = coords_fill(grid, &archs, l, recs, m, &c)) != RS_OK)
            goto done;
        NC(write_batch(nc, l, &v, first, recs, m, &c, buf));
    }
done:
    status = close_nc(nc, path, status, err, err_len);
    coords_free(&c);
    arch_table_free(&archs);
    free(buf);
    free(recs);
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

int rs_ncio_write_sweep(const char *path, const rs_grid *grid, rs_store_snapshot *snap,
                        const rs_ncio_sweep_info *info, char *err, size_t err_len)
{
    quiet_hdf5();
    char tmp[4096];
    if (err_len)
        err[0] = 0;
    if (tmp_path(path, tmp, err, err_len) != RS_OK)
        return RS_E_INVALID;
    int status = write_sweep_file(tmp, grid, snap, info, err, err_len);
    if (status == RS_E_NOMEM || (status == RS_E_INVALID && !*err))
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
    free(s->arch); /* its strings are arch_names' */
    memset(s, 0, sizeof *s);
}

int rs_ncio_read_summary(const char *path, rs_ncio_summary *s, char *err, size_t err_len)
{
    sweep_identity id;
    int nc, *arch = NULL;
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
    arch = malloc(m * sizeof *arch);
    if (!arch || !s->job_name || !s->job_hash || !s->trial || !s->status || !s->converged ||
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
    s->n = id.n;
    if (id.n == 0)
        goto done;
    const struct { const char *name; nc_type type; void *buf; } cols[] = {
        {"trial", NC_INT64, s->trial}, {"status", NC_INT64, s->status},
        {"converged", NC_INT64, s->converged}, {"fit_loss_rel", NC_DOUBLE, s->fit_loss_rel},
        {"train_seconds", NC_DOUBLE, s->train_seconds},
        {"fit_seconds", NC_DOUBLE, s->fit_seconds}, {"arch", NC_INT, arch}};
    for (size_t i = 0; i < sizeof cols / sizeof *cols && status == RS_OK; i++)
        status = get_column(nc, path, cols[i].name, cols[i].type, cols[i].buf, err, err_len);
    for (size_t k = 0; k < id.n && status == RS_OK; k++) {
        /* the arch index names an entry of arch_names; theory-only trials hold the fill */
        s->arch[k] = arch[k] >= 0 && arch[k] < s->n_arch ? s->arch_names[arch[k]] : "";
        double *missing[3] = {&s->fit_loss_rel[k], &s->train_seconds[k], &s->fit_seconds[k]};
        for (int i = 0; i < 3; i++)
            if (*missing[i] == RS_STORE_FILL_DOUBLE)
                *missing[i] = NAN;
    }
done:
    free(arch);
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

/* Output variable ov's storage, as the results writer chooses it (def_sweep_vars): a
 * variable over trial is compressed in chunks of trials_per_chunk(total, values per trial)
 * trials, whole along its other dimensions; the rest (stage, epoch) contiguous. */
static int copy_storage(int out, int ov, int nd, const int *dims, size_t total)
{
    int trial_dim, st;
    size_t chunks[NC_MAX_VAR_DIMS], per_trial = 1;
    if ((st = nc_inq_dimid(out, "trial", &trial_dim)) != NC_NOERR)
        return st;
    if (nd == 0 || total == 0 || dims[0] != trial_dim)
        return NC_NOERR;
    for (int d = 1; d < nd; d++) {
        if ((st = nc_inq_dimlen(out, dims[d], &chunks[d])) != NC_NOERR)
            return st;
        per_trial *= chunks[d];
    }
    chunks[0] = trials_per_chunk(total, per_trial);
    if ((st = nc_def_var_chunking(out, ov, NC_CHUNKED, chunks)) != NC_NOERR)
        return st;
    return nc_def_var_deflate(out, ov, 1, 1, DEFLATE_LEVEL);
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
        NC(copy_storage(out, ov, nd, dims, total));
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

/* CF history: the first input's, then a line for this merge. */
static int append_history(int out, int in, const char *command_line)
{
    size_t len = 0;
    char stamp[32], *history;
    const char *cmd = command_line ? command_line : "repsweep merge";
    if (nc_inq_attlen(in, NC_GLOBAL, "history", &len) != NC_NOERR)
        len = 0;
    iso_time(time(NULL), stamp, sizeof stamp);
    if (!(history = malloc(len + strlen(stamp) + strlen(cmd) + 8)))
        return NC_ENOMEM;
    if (len && nc_get_att_text(in, NC_GLOBAL, "history", history) != NC_NOERR)
        len = 0;
    sprintf(history + len, "%s%s: %s", len ? "\n" : "", stamp, cmd);
    int st = put_text(out, NC_GLOBAL, "history", history);
    free(history);
    return st;
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
    NC(append_history(out, src[0].nc, command_line));
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
    quiet_hdf5();
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
