/* trajfile.c — trajectories from CSV and trial files (see trajfile.h). */
#include "repsweep/trajfile.h"
#include "repsweep/status.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <netcdf.h>

void rs_traj_set_free(rs_traj_set *set)
{
    if (!set)
        return;
    for (size_t i = 0; i < set->count; i++) {
        rs_traj_input *t = &set->traj[i];
        free(t->name);
        free(t->source);
        free(t->dh2);
        free(t->dyhat2);
        free(t->w);
        free(t->loss);
    }
    free(set->traj);
    *set = (rs_traj_set){0};
}

/* A new, empty trajectory at the end of `set` (NULL when out of memory). */
static rs_traj_input *set_push(rs_traj_set *set, const char *name, const char *source)
{
    if (set->count == set->cap) {
        size_t cap = set->cap ? 2 * set->cap : 8;
        rs_traj_input *p = realloc(set->traj, cap * sizeof *p);
        if (!p)
            return NULL;
        set->traj = p, set->cap = cap;
    }
    rs_traj_input *t = &set->traj[set->count];
    *t = (rs_traj_input){.name = strdup(name), .source = strdup(source), .epoch_step = 1,
                         .input_gap = NAN, .target_gap = NAN, .ybar0_offset = NAN};
    if (!t->name || !t->source) {
        free(t->name);
        free(t->source);
        return NULL;
    }
    set->count++;
    return t;
}

/* Drop trajectories [from, count) (a file that failed half-way). */
static void set_truncate(rs_traj_set *set, size_t from)
{
    rs_traj_set tail = {set->traj + from, set->count - from, 0};
    for (size_t i = 0; i < tail.count; i++) {
        rs_traj_input *t = &tail.traj[i];
        free(t->name), free(t->source), free(t->dh2), free(t->dyhat2), free(t->w),
            free(t->loss);
    }
    set->count = from;
}

/* ---- CSV ---- */

enum { C_EPOCH, C_DH2, C_DYHAT2, C_W, C_LOSS, C_TRAJ, C_INPUT_GAP, C_TARGET_GAP, C_OFFSET, C_N };
static const char *const col_names[C_N] = {"epoch", "dh2", "dyhat2", "w", "loss", "trajectory",
                                           "input_gap", "target_gap", "ybar0_offset"};

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1]))
        *--e = '\0';
    return s;
}

/* Split line (modified) at commas into at most max fields; returns the count. */
static int split(char *line, char **field, int max)
{
    int n = 0;
    for (char *p = line;; ) {
        char *c = strchr(p, ',');
        if (c)
            *c = '\0';
        if (n < max)
            field[n] = trim(p);
        n++;
        if (!c)
            return n;
        p = c + 1;
    }
}

static int parse_number(const char *s, double *v)
{
    char *end;
    errno = 0;
    *v = strtod(s, &end);
    return *s && *end == '\0' && errno != ERANGE;
}

typedef struct {
    double *v[4];       /* dh2, dyhat2, w, loss */
    size_t n, cap;
} columns;

static int columns_push(columns *c, const double x[4])
{
    if (c->n == c->cap) {
        size_t cap = c->cap ? 2 * c->cap : 1024;
        for (int k = 0; k < 4; k++) {
            double *p = realloc(c->v[k], cap * sizeof *p);
            if (!p)
                return RS_E_NOMEM;
            c->v[k] = p;
        }
        c->cap = cap;
    }
    for (int k = 0; k < 4; k++)
        c->v[k][c->n] = x[k];
    c->n++;
    return RS_OK;
}

typedef struct {
    const char *path;
    double input_gap, target_gap, offset;   /* header values / command-line defaults */
    int col[C_N];                            /* column index of each name, -1 if absent */
    int ncols;
    rs_traj_input *cur;                      /* the trajectory being read */
    columns data;
    long first_line, last_epoch;
} csv_state;

/* Finish the current trajectory: check it and move its columns into it. */
static int csv_close(csv_state *s, char *err, size_t err_len)
{
    rs_traj_input *t = s->cur;
    if (!t)
        return RS_OK;
    s->cur = NULL;
    if (s->data.n < 3) {
        snprintf(err, err_len, "%s:%ld: trajectory '%s' has %zu epochs; a fit needs at least 3",
                 s->path, s->first_line, t->name, s->data.n);
        return RS_E_INVALID;
    }
    if (isnan(t->input_gap))
        t->input_gap = s->input_gap;
    if (isnan(t->target_gap))
        t->target_gap = s->target_gap;
    if (isnan(t->ybar0_offset))
        t->ybar0_offset = s->offset;
    if (!(t->input_gap >= 0.0) || !(t->target_gap >= 0.0)) {
        snprintf(err, err_len, "%s:%ld: trajectory '%s': no %s (give a column, a '# %s = X' "
                 "line or --%s)", s->path, s->first_line, t->name,
                 !(t->input_gap >= 0.0) ? "input_gap" : "target_gap",
                 !(t->input_gap >= 0.0) ? "input_gap" : "target_gap",
                 !(t->input_gap >= 0.0) ? "input-gap" : "target-gap");
        return RS_E_INVALID;
    }
    t->n = s->data.n;
    double **dst[4] = {&t->dh2, &t->dyhat2, &t->w, &t->loss};
    for (int k = 0; k < 4; k++) {
        *dst[k] = malloc(t->n * sizeof(double));
        if (!*dst[k])
            return RS_E_NOMEM;
        memcpy(*dst[k], s->data.v[k], t->n * sizeof(double));
    }
    if (s->col[C_LOSS] < 0) {
        free(t->loss);
        t->loss = NULL;
    }
    s->data.n = 0;
    return RS_OK;
}

/* A per-row value that must stay constant within a trajectory. */
static int csv_constant(csv_state *s, long line, const char *what, double v, double *slot,
                        char *err, size_t err_len)
{
    if (isnan(*slot))
        *slot = v;
    else if (*slot != v) {
        snprintf(err, err_len, "%s:%ld: %s %g differs from %g earlier in trajectory '%s'",
                 s->path, line, what, v, *slot, s->cur->name);
        return RS_E_PARSE;
    }
    return RS_OK;
}

static int csv_header(csv_state *s, char *line, long ln, char *err, size_t err_len)
{
    char *field[64];
    int n = split(line, field, 64);
    if (n > 64) {
        snprintf(err, err_len, "%s:%ld: more than 64 columns", s->path, ln);
        return RS_E_PARSE;
    }
    for (int c = 0; c < C_N; c++)
        s->col[c] = -1;
    for (int i = 0; i < n; i++)
        for (int c = 0; c < C_N; c++)
            if (strcmp(field[i], col_names[c]) == 0) {
                if (s->col[c] >= 0) {
                    snprintf(err, err_len, "%s:%ld: column '%s' twice", s->path, ln, field[i]);
                    return RS_E_PARSE;
                }
                s->col[c] = i;
            }
    for (int c = C_EPOCH; c <= C_W; c++)
        if (s->col[c] < 0) {
            snprintf(err, err_len, "%s:%ld: no column '%s' in the header (need epoch, dh2, "
                     "dyhat2, w; see repsweep fit --help)", s->path, ln, col_names[c]);
            return RS_E_PARSE;
        }
    s->ncols = n;
    return RS_OK;
}

/* `# key = value` */
static int csv_comment(csv_state *s, char *line, long ln, char *err, size_t err_len)
{
    char *eq = strchr(line, '=');
    if (!eq)
        return RS_OK;
    *eq = '\0';
    const char *key = trim(line + 1), *val = trim(eq + 1);
    double *slot = strcmp(key, "input_gap") == 0    ? &s->input_gap
                   : strcmp(key, "target_gap") == 0 ? &s->target_gap
                   : strcmp(key, "ybar0_offset") == 0 ? &s->offset
                                                       : NULL;
    if (!slot)
        return RS_OK;
    double v;
    if (!parse_number(val, &v) || !isfinite(v) || (slot != &s->offset && v < 0.0)) {
        snprintf(err, err_len, "%s:%ld: %s: expected a %snumber, got '%s'", s->path, ln, key,
                 slot != &s->offset ? "non-negative " : "", val);
        return RS_E_PARSE;
    }
    *slot = v;
    return RS_OK;
}

static int csv_row(csv_state *s, rs_traj_set *set, char *line, long ln, char *err,
                   size_t err_len)
{
    char *field[64];
    int n = split(line, field, 64);
    if (n != s->ncols) {
        snprintf(err, err_len, "%s:%ld: %d fields, the header has %d", s->path, ln, n, s->ncols);
        return RS_E_PARSE;
    }
    const char *key = s->col[C_TRAJ] >= 0 ? field[s->col[C_TRAJ]] : "0";
    int st;
    if (!s->cur || strcmp(s->cur->name, key) != 0) {
        if ((st = csv_close(s, err, err_len)) != RS_OK)
            return st;
        for (size_t i = 0; i < set->count; i++)
            if (strcmp(set->traj[i].name, key) == 0 && strcmp(set->traj[i].source, s->path) == 0) {
                snprintf(err, err_len, "%s:%ld: trajectory '%s' again after other rows (a "
                         "trajectory's rows must be contiguous)", s->path, ln, key);
                return RS_E_PARSE;
            }
        if (!(s->cur = set_push(set, key, s->path)))
            return RS_E_NOMEM;
        s->first_line = ln;
        s->last_epoch = -1;
    }
    double x[C_N];
    for (int c = 0; c < C_N; c++) {
        x[c] = NAN;
        if (c == C_TRAJ || s->col[c] < 0)
            continue;
        if (!parse_number(field[s->col[c]], &x[c]) || !isfinite(x[c])) {
            snprintf(err, err_len, "%s:%ld: column '%s': expected a finite number, got '%s'",
                     s->path, ln, col_names[c], field[s->col[c]]);
            return RS_E_PARSE;
        }
    }
    /* epochs 0, k, 2k, ...: the second sample sets k */
    const size_t have = s->data.n;
    const long e = (long)x[C_EPOCH];
    const long want = have == 0 ? 0 : have == 1 ? -1 : s->last_epoch + s->cur->epoch_step;
    const int ok = (double)e == x[C_EPOCH] && (have == 1 ? e > 0 : e == want);
    if (!ok) {
        snprintf(err, err_len, "%s:%ld: epoch %s in trajectory '%s': epochs must be integers "
                 "0, k, 2k, ... (expected %s%ld)", s->path, ln, field[s->col[C_EPOCH]], key,
                 have == 1 ? "more than " : "", have == 1 ? 0L : want);
        return RS_E_PARSE;
    }
    if (have == 1)
        s->cur->epoch_step = e;
    s->last_epoch = e;
    if (s->col[C_INPUT_GAP] >= 0 &&
        (st = csv_constant(s, ln, "input_gap", x[C_INPUT_GAP], &s->cur->input_gap, err,
                           err_len)) != RS_OK)
        return st;
    if (s->col[C_TARGET_GAP] >= 0 &&
        (st = csv_constant(s, ln, "target_gap", x[C_TARGET_GAP], &s->cur->target_gap, err,
                           err_len)) != RS_OK)
        return st;
    if (s->col[C_OFFSET] >= 0 &&
        (st = csv_constant(s, ln, "ybar0_offset", x[C_OFFSET], &s->cur->ybar0_offset, err,
                           err_len)) != RS_OK)
        return st;
    const double v[4] = {x[C_DH2], x[C_DYHAT2], x[C_W], x[C_LOSS]};
    return columns_push(&s->data, v);
}

int rs_trajfile_read_csv(const char *path, double input_gap, double target_gap,
                         rs_traj_set *set, char *err, size_t err_len)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, err_len, "%s: cannot open: %s", path, strerror(errno));
        return RS_E_IO;
    }
    csv_state s = {.path = path, .input_gap = input_gap, .target_gap = target_gap,
                   .offset = NAN, .ncols = 0};
    const size_t first = set->count;
    char *line = NULL;
    size_t cap = 0;
    long ln = 0;
    int st = RS_OK;
    while (st == RS_OK && getline(&line, &cap, f) >= 0) {
        ln++;
        char *l = trim(line);
        if (*l == '\0')
            continue;
        if (*l == '#')
            st = s.ncols ? RS_OK : csv_comment(&s, l, ln, err, err_len);
        else if (!s.ncols)
            st = csv_header(&s, l, ln, err, err_len);
        else
            st = csv_row(&s, set, l, ln, err, err_len);
    }
    if (st == RS_OK && ferror(f)) {
        snprintf(err, err_len, "%s: read error: %s", path, strerror(errno));
        st = RS_E_IO;
    }
    if (st == RS_OK)
        st = csv_close(&s, err, err_len);
    if (st == RS_OK && set->count == first) {
        snprintf(err, err_len, "%s: no trajectory (no header line or no rows)", path);
        st = RS_E_PARSE;
    }
    if (st == RS_E_NOMEM)
        snprintf(err, err_len, "%s: out of memory", path);
    free(line);
    fclose(f);
    for (int k = 0; k < 4; k++)
        free(s.data.v[k]);
    if (st != RS_OK)
        set_truncate(set, first);
    return st;
}

/* ---- trial files ---- */

static int read_var(int nc, const char *name, size_t n, double **out)
{
    int var;
    int st = nc_inq_varid(nc, name, &var);
    if (st != NC_NOERR)
        return st;
    *out = malloc(n * sizeof **out);
    if (!*out)
        return NC_ENOMEM;
    return nc_get_var_double(nc, var, *out);
}

int rs_trajfile_read_trial(const char *path, rs_traj_set *set, char *err, size_t err_len)
{
    int nc, dim, st = nc_open(path, NC_NOWRITE, &nc);
    if (st != NC_NOERR) {
        snprintf(err, err_len, "%s: netCDF: %s", path, nc_strerror(st));
        return RS_E_NETCDF;
    }
    size_t n = 0;
    double *ymean = NULL;
    rs_traj_input *t = NULL;
    const char *what = "dimension 'epoch'";
    st = nc_inq_dimid(nc, "epoch", &dim);
    if (st == NC_NOERR)
        st = nc_inq_dimlen(nc, dim, &n);
    if (st == NC_NOERR && !(t = set_push(set, path, path)))
        st = NC_ENOMEM;
    if (st == NC_NOERR)
        what = "attribute 'input_gap'", st = nc_get_att_double(nc, NC_GLOBAL, "input_gap",
                                                                &t->input_gap);
    if (st == NC_NOERR)
        what = "attribute 'target_gap'", st = nc_get_att_double(nc, NC_GLOBAL, "target_gap",
                                                                 &t->target_gap);
    if (st == NC_NOERR)
        what = "variable 'dh2'", st = read_var(nc, "dh2", n, &t->dh2);
    if (st == NC_NOERR)
        what = "variable 'dyhat2'", st = read_var(nc, "dyhat2", n, &t->dyhat2);
    if (st == NC_NOERR)
        what = "variable 'w'", st = read_var(nc, "w", n, &t->w);
    if (st == NC_NOERR)
        what = "variable 'loss'", st = read_var(nc, "loss", n, &t->loss);
    if (st == NC_NOERR)
        what = "variable 'yhat_mean'", st = read_var(nc, "yhat_mean", n, &ymean);
    nc_close(nc);
    if (st != NC_NOERR) {
        snprintf(err, err_len, "%s: not a repsweep trial file: %s: %s", path, what,
                 nc_strerror(st));
        if (t)
            set_truncate(set, set->count - 1);
        free(ymean);
        return st == NC_ENOMEM ? RS_E_NOMEM : RS_E_NETCDF;
    }
    t->n = n;
    /* as rs_trial_run does: targets 0.6 and 0.6 + target_gap (net.c) */
    t->ybar0_offset = n > 0 ? ymean[0] - (0.6 + 0.5 * t->target_gap) : NAN;
    free(ymean);
    return RS_OK;
}
