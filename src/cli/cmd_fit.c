/* cmd_fit.c — `repsweep fit`: fit the effective theory (Eq. 49, Eq. 9) to trajectories
 * read from files (trajfile.h), and write the fit variables as CSV or JSON. */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "options.h"
#include "repsweep/blas.h"
#include "repsweep/control.h"
#include "repsweep/fit.h"
#include "repsweep/status.h"
#include "repsweep/theory.h"
#include "repsweep/trajfile.h"

static void fit_usage(FILE *out)
{
    fprintf(out,
        "usage: repsweep fit [options] FILE...\n"
        "\n"
        "Fit the effective theory's rates 1/tau_h, 1/tau_y (Eq. 7 by Eq. 49) and, where a loss\n"
        "is given, 1/tau_ybar (Eq. 9) to measured trajectories, as a sweep does, and write\n"
        "the fit variables (the sweep's names) and the fit's diagnostics, one row per\n"
        "trajectory. Files ending in .nc are trial files (repsweep trial --out); others are\n"
        "CSV:\n"
        "\n"
        "  # input_gap = 1            the data's distances |x2-x1|, |y2-y1| (not squared),\n"
        "  # target_gap = 0.7071      for every trajectory of the file (or columns, or flags)\n"
        "  trajectory,epoch,dh2,dyhat2,w,loss\n"
        "  run1,0,12.5,0.031,0.002,0.27\n"
        "  ...\n"
        "\n"
        "  required columns: epoch, dh2, dyhat2, w; optional: loss, trajectory (rows of one\n"
        "  trajectory contiguous), input_gap, target_gap, ybar0_offset (mean prediction minus\n"
        "  mean target at epoch 0; by default derived from the loss at epoch 0, whose Eq. 9\n"
        "  term is 1/2 ybar0_offset^2). Epochs 0, k, 2k, ... (rates stay per epoch).\n"
        "  dh2 = ||h(x2)-h(x1)||^2 at the observed layer, dyhat2 = ||f(x2)-f(x1)||^2,\n"
        "  w = dyhat2 - (f(x2)-f(x1))(y2-y1), loss = 1/2 mean_i (f(x_i)-y_i)^2.\n"
        "\n"
        "  --input-gap DX     |x2 - x1| where a CSV file gives none\n"
        "  --target-gap DY    |y2 - y1| where a CSV file gives none\n"
        "  --control          also fit perturbed versions of Eq. 7 (see repsweep trial --help)\n"
        "  --out FILE         write there (replaced whole at the end) instead of stdout\n"
        "  --json             a JSON array of objects instead of CSV\n"
        "  --help             this text\n"
        "\n"
        "Every file is read and checked before any fit. One process, no MPI: a fit takes\n"
        "milliseconds to a second. Exit status: 0 when every trajectory was fitted (a fit may\n"
        "still have failed: see fit_status), 1 when the output could not be written, 2 for\n"
        "bad options or input.\n");
}

typedef struct {
    const char *out;
    int json, control;
    double input_gap, target_gap;
    char **files;
    int nfiles;
} fit_options;

enum { O_INPUT_GAP = 256, O_TARGET_GAP, O_CONTROL, O_OUT, O_JSON, O_HELP };

static const struct option long_options[] = {
    {"input-gap", required_argument, 0, O_INPUT_GAP},
    {"target-gap", required_argument, 0, O_TARGET_GAP},
    {"control", no_argument, 0, O_CONTROL},
    {"out", required_argument, 0, O_OUT},
    {"json", no_argument, 0, O_JSON},
    {"help", no_argument, 0, O_HELP},
    {0, 0, 0, 0}};

/* Returns -1 to exit 2, 1 to exit 0 (help), 0 to go on. */
static int parse(int argc, char **argv, fit_options *o)
{
    memset(o, 0, sizeof *o);
    o->input_gap = o->target_gap = NAN;
    opterr = 0;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "", long_options, NULL)) != -1) {
        const char *f = argv[optind - 1];
        int bad = 0;
        switch (c) {
        case O_INPUT_GAP:
            bad = opt_double("fit", "--input-gap", optarg, 0, 1e6, &o->input_gap);
            break;
        case O_TARGET_GAP:
            bad = opt_double("fit", "--target-gap", optarg, 0, 1e6, &o->target_gap);
            break;
        case O_CONTROL: o->control = 1; break;
        case O_OUT: o->out = optarg; break;
        case O_JSON: o->json = 1; break;
        case O_HELP: fit_usage(stdout); return 1;
        default:
            fprintf(stderr, "repsweep fit: unknown or incomplete option '%s' (see --help)\n", f);
            return -1;
        }
        if (bad)
            return -1;
    }
    if (optind >= argc) {
        fprintf(stderr, "repsweep fit: no input file (see --help)\n");
        return -1;
    }
    o->files = argv + optind;
    o->nfiles = argc - optind;
    return 0;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* One output value: a number (NaN/Inf: empty in CSV, null in JSON) or text. */
typedef struct {
    const char *key;
    int is_text;
    double num;
    const char *text;
} cell;

#define MAX_CELLS 64
typedef struct {
    cell c[MAX_CELLS];
    int n;
} row;

static void num(row *r, const char *key, double v)
{
    r->c[r->n++] = (cell){key, 0, v, NULL};
}

static void text(row *r, const char *key, const char *v)
{
    r->c[r->n++] = (cell){key, 1, 0.0, v};
}

static const char *fit_status_word(int status)
{
    switch (status) {
    case RS_OK: return "ok";
    case RS_S_NOT_CONVERGED: return "not_converged";
    default: return "fit_failed";
    }
}

/* The fits of one trajectory, as one row. Rates per epoch: a trajectory sampled every k
 * epochs is fitted in samples (t = index) and its rates divided by k (Eq. 7 and Eq. 9 are
 * autonomous: rescaling time rescales every rate). */
static void fit_one(const rs_traj_input *t, int control, rs_fit_result *fit,
                    rs_fit_loss_result *lf, rs_fit_control_result *ctl, row *r)
{
    const double g2 = t->input_gap * t->input_gap, y2 = t->target_gap * t->target_gap;
    const double k = (double)t->epoch_step;
    double A_high = NAN, A_low = NAN, pred = NAN;
    *lf = (rs_fit_loss_result){RS_S_FIT_FAILED, NAN, NAN, NAN};
    if (rs_fit_rates(t->dh2, t->dyhat2, t->w, t->n, g2, y2, NULL, fit) != RS_OK)
        *fit = (rs_fit_result){.status = RS_S_FIT_FAILED, .rate_h = NAN, .rate_y = NAN,
                               .fit_loss = NAN, .fit_loss_rel = NAN};
    const int fitted = fit->status != RS_S_FIT_FAILED;
    if (fitted) {
        const rs_theory_params p = {fit->rate_h, fit->rate_y, g2, y2};
        const rs_theory_state s0 = {t->dh2[0], t->dyhat2[0], t->w[0]};
        rs_theory_fixed_point(&p, s0, &A_high, &A_low, &pred);
        if (t->loss) {
            double off = t->ybar0_offset;
            if (isnan(off)) /* Eq. 9 at t = 0: loss = 1/2 off^2 + the ODE's part */
                off = sqrt(fmax(0.0, 2.0 * (t->loss[0] - rs_theory_loss(&p, 0.0, 0.0, 0.0, s0))));
            if (rs_fit_loss_rate(t->loss, t->dh2, t->dyhat2, t->w, t->n, g2, y2, off, fit, NULL,
                                 lf) != RS_OK)
                lf->status = RS_S_FIT_FAILED;
        }
    }
    *ctl = (rs_fit_control_result){0};
    if (control && fitted)
        rs_fit_control(t->dh2, t->dyhat2, t->w, t->n, g2, y2, fit, NULL, ctl);

    text(r, "trajectory", t->name);
    text(r, "source", t->source);
    num(r, "samples", (double)t->n);
    num(r, "epoch_step", k);
    num(r, "input_gap", t->input_gap);
    num(r, "target_gap", t->target_gap);
    text(r, "fit_status", fit_status_word(fit->status));
    num(r, "fit_converged", fit->converged);
    num(r, "fit_iterations", fit->iterations);
    num(r, "fit_rate_at_floor", fit->at_floor);
    num(r, "rate_h", fit->rate_h / k);
    num(r, "rate_y", fit->rate_y / k);
    num(r, "rate_ybar", lf->status == RS_OK ? lf->rate_ybar / k : NAN);
    num(r, "fit_loss", fit->fit_loss);
    num(r, "fit_loss_rel", fit->fit_loss_rel);
    num(r, "loss_fit_rel", lf->status == RS_OK ? lf->fit_loss_rel : NAN);
    num(r, "A_high", A_high);
    num(r, "A_low", A_low);
    num(r, "dh2_predicted", pred);
    num(r, "dh2_final", t->dh2[t->n - 1]);
    text(r, "rate_h_determination", rs_rate_determination_name(fit->determined_h));
    text(r, "rate_y_determination", rs_rate_determination_name(fit->determined_y));
    num(r, "rates_determined", rs_fit_rates_determined(fit));
    num(r, "se_ln_rate_h", fit->se_ln_rate_h);
    num(r, "se_ln_rate_y", fit->se_ln_rate_y);
    num(r, "corr_ln_rates", fit->corr_ln_rates);
    num(r, "r2_dh2", fit->r2_dh2);
    num(r, "r2_dyhat2", fit->r2_dyhat2);
    num(r, "r2_w", fit->r2_w);
    if (control)
        for (int v = 0; v < RS_CONTROL_VARIANTS; v++)
            num(r, rs_fit_control_variant_name(v), ctl->status == RS_OK ? ctl->fit_loss_rel[v]
                                                                        : NAN);
}

static void write_csv(FILE *f, const row *rows, size_t n)
{
    for (int i = 0; n > 0 && i < rows[0].n; i++)
        fprintf(f, "%s%s", i ? "," : "", rows[0].c[i].key);
    fprintf(f, "\n");
    for (size_t j = 0; j < n; j++) {
        for (int i = 0; i < rows[j].n; i++) {
            const cell *c = &rows[j].c[i];
            fprintf(f, "%s", i ? "," : "");
            if (c->is_text)
                fprintf(f, "%s", c->text);
            else if (isfinite(c->num))
                fprintf(f, "%.17g", c->num);
        }
        fprintf(f, "\n");
    }
}

static void json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            fprintf(f, "\\%c", *s);
        else if ((unsigned char)*s < 0x20)
            fprintf(f, "\\u%04x", *s);
        else
            fputc(*s, f);
    }
    fputc('"', f);
}

static void write_json(FILE *f, const row *rows, size_t n)
{
    fprintf(f, "[\n");
    for (size_t j = 0; j < n; j++) {
        fprintf(f, "  {");
        for (int i = 0; i < rows[j].n; i++) {
            const cell *c = &rows[j].c[i];
            fprintf(f, "%s\"%s\": ", i ? ", " : "", c->key);
            if (c->is_text)
                json_string(f, c->text);
            else if (isfinite(c->num))
                fprintf(f, "%.17g", c->num);
            else
                fprintf(f, "null");
        }
        fprintf(f, "}%s\n", j + 1 < n ? "," : "");
    }
    fprintf(f, "]\n");
}

/* Writes to o->out through a temporary file renamed over it (no half-written output). */
static int write_output(const fit_options *o, const row *rows, size_t n)
{
    if (!o->out) {
        (o->json ? write_json : write_csv)(stdout, rows, n);
        return fflush(stdout) == 0 ? 0 : 1;
    }
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", o->out);
    FILE *f = fopen(tmp, "w");
    if (!f) {
        fprintf(stderr, "repsweep fit: --out: %s: cannot create: ", tmp);
        perror(NULL);
        return 1;
    }
    (o->json ? write_json : write_csv)(f, rows, n);
    if (ferror(f) | fclose(f) || rename(tmp, o->out) != 0) {
        fprintf(stderr, "repsweep fit: --out: %s: cannot write: ", o->out);
        perror(NULL);
        remove(tmp);
        return 1;
    }
    return 0;
}

int cmd_fit(int argc, char **argv)
{
    fit_options o;
    int p = parse(argc, argv, &o);
    if (p)
        return p > 0 ? 0 : 2;
    /* as trial and run do: GSL's least squares call OpenBLAS, whose threaded kernels sum in
     * another order; an ill-conditioned fit (narrow, gain 1.6, lr 3e-4, gap 1, seed 1)
     * then ends at 1/tau_h 110.53208998 instead of the sweep's 110.53209000 */
    rs_blas_single_thread();
    rs_traj_set set = {0};
    char err[1024];
    for (int i = 0; i < o.nfiles; i++) {
        const char *path = o.files[i];
        int st = ends_with(path, ".nc")
                     ? rs_trajfile_read_trial(path, &set, err, sizeof err)
                     : rs_trajfile_read_csv(path, o.input_gap, o.target_gap, &set, err, sizeof err);
        if (st != RS_OK) {
            fprintf(stderr, "repsweep fit: %s\n", err);
            rs_traj_set_free(&set);
            return 2;
        }
    }
    row *rows = calloc(set.count, sizeof *rows);
    rs_fit_result *fits = calloc(set.count, sizeof *fits);
    if (!rows || !fits) {
        fprintf(stderr, "repsweep fit: out of memory for %zu trajectories\n", set.count);
        free(rows), free(fits);
        rs_traj_set_free(&set);
        return 1;
    }
    for (size_t i = 0; i < set.count; i++) {
        rs_fit_loss_result lf;
        rs_fit_control_result ctl;
        fit_one(&set.traj[i], o.control, &fits[i], &lf, &ctl, &rows[i]);
    }
    int rc = write_output(&o, rows, set.count);
    free(rows);
    free(fits);
    rs_traj_set_free(&set);
    return rc;
}
