/* ncio.c — netCDF output (see ncio.h). */
#define _POSIX_C_SOURCE 200809L
#include "repsweep/ncio.h"

#include <netcdf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "repsweep/status.h"

#ifndef REPSWEEP_VERSION
#define REPSWEEP_VERSION "unknown"
#endif
#ifndef REPSWEEP_GIT_COMMIT
#define REPSWEEP_GIT_COMMIT "unknown"
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

static void iso_time_now(char *buf, size_t len)
{
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
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
    NC(put_text(nc, NC_GLOBAL, "repsweep_version", REPSWEEP_VERSION));
    NC(put_text(nc, NC_GLOBAL, "repsweep_git_commit", REPSWEEP_GIT_COMMIT));
    NC(put_text(nc, NC_GLOBAL, "netcdf_version", nc_inq_libvers()));
    iso_time_now(when, sizeof when);
    NC(put_text(nc, NC_GLOBAL, "created", when));
done:
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
    if (nc >= 0) {
        int st = nc_close(nc);
        if (st != NC_NOERR && status == RS_OK) {
            snprintf(err, err_len, "%s: netCDF: %s (closing)", path, nc_strerror(st));
            status = RS_E_NETCDF;
        }
    }
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
