/* cmd_status.c — `repsweep status FILE.nc [--json]`: a sweep's progress from its results
 * file (done/expected, failures, rates, ETA, per architecture), safe while the run goes on:
 * the run replaces FILE.nc by rename, so a reader sees the old file or the new. Before a new
 * run's first write of FILE.nc, what its journal's header says instead. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "commands.h"
#include "json.h"
#include "repsweep/ncio.h"
#include "repsweep/status.h"
#include "repsweep/store.h"

static void status_usage(FILE *out)
{
    fprintf(out,
        "usage: repsweep status FILE.nc [--json]\n"
        "\n"
        "Report a sweep's progress from its results file (repsweep run --out, or a merge):\n"
        "job and shard, trials done of those the file is meant to hold, failures (status\n"
        "!= 0) by status, converged trials, trials per hour of wall time (since the journal\n"
        "was created, to the file's last write) and per core-hour (over the trials' training\n"
        "and fit seconds), the ETA at the wall-time rate, and per architecture (theory-only\n"
        "blocks as \"theory\"): done/expected, failures, median fit_loss_rel. Only FILE.nc is\n"
        "read, so it is safe while the run writes; a run rewrites FILE.nc every --save-every\n"
        "seconds, and if FILE.nc.journal already holds more trials, status says so. Before\n"
        "a new run's first write of FILE.nc, status reports what its journal's header says\n"
        "(with --json: results_file_written false, job null, job_hash, shard_index,\n"
        "shard_count, grid_trials, done and journal_trials (the journal's records; damaged\n"
        "slots count), expected).\n"
        "\n"
        "  --json   one JSON object: job, job_hash, shard_index, shard_count, grid_trials,\n"
        "           done, expected, failures, failures_by_status, converged, wall_seconds,\n"
        "           core_seconds, trials_per_hour, trials_per_core_hour, eta_seconds,\n"
        "           journal_trials, architectures: {name: {done, expected, failures,\n"
        "           median_fit_loss_rel}} (null where a number is unknown)\n"
        "  -h, --help  this text\n"
        "\n"
        "Exit status: 0 reported; 1 out of memory; 2 bad option, or FILE.nc is missing\n"
        "(and has no journal), corrupt or not a repsweep results file.\n");
}

/* One row of the per-architecture table. */
typedef struct {
    const char *name;
    uint64_t done, expected, failures;
    double median_fit_loss_rel;     /* NaN: no finite value */
} arch_row;

/* The numbers of a report. */
typedef struct {
    uint64_t done, expected, failures, converged;
    double wall_seconds, core_seconds, per_hour, per_core_hour, eta_seconds;
    long long journal_trials;       /* -1: no journal, or not more than the file */
    int64_t *statuses;              /* distinct failure statuses, ascending ... */
    uint64_t *status_counts;        /* ... and how many trials have each */
    int n_statuses;
    arch_row *arch;
    int n_arch;
} report;

static int by_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The median of the finite values among v[0..n) (reordered); NaN if none. */
static double median_finite(double *v, size_t n)
{
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (isfinite(v[i]))
            v[m++] = v[i];
    if (m == 0)
        return NAN;
    qsort(v, m, sizeof *v, by_double);
    return m % 2 ? v[m / 2] : 0.5 * (v[m / 2 - 1] + v[m / 2]);
}

/* The table row of architecture `name` (a theory-only trial's "" is "theory"), added with
 * nothing expected if the file's arch_names lacks it. */
static int arch_index(report *r, const char *name)
{
    if (!*name)
        name = "theory";
    for (int i = 0; i < r->n_arch; i++)
        if (strcmp(r->arch[i].name, name) == 0)
            return i;
    r->arch[r->n_arch] = (arch_row){name, 0, 0, 0, NAN};
    return r->n_arch++;
}

/* Count a failure of status st. */
static void count_status(report *r, int64_t st)
{
    int i = 0;
    while (i < r->n_statuses && r->statuses[i] != st)
        i++;
    if (i == r->n_statuses) {
        r->statuses[i] = st;
        r->status_counts[i] = 0;
        r->n_statuses++;
    }
    r->status_counts[i]++;
}

static void report_free(report *r)
{
    free(r->statuses);
    free(r->status_counts);
    free(r->arch);
}

static int make_report(const rs_ncio_summary *s, report *r)
{
    size_t n = s->n;
    memset(r, 0, sizeof *r);
    r->statuses = malloc((n + 1) * sizeof *r->statuses);
    r->status_counts = malloc((n + 1) * sizeof *r->status_counts);
    r->arch = malloc(((size_t)s->n_arch + n + 1) * sizeof *r->arch);
    int *row_of = malloc((n + 1) * sizeof *row_of);
    double *losses = malloc((n + 1) * sizeof *losses);
    if (!r->statuses || !r->status_counts || !r->arch || !row_of || !losses) {
        free(row_of);
        free(losses);
        report_free(r);
        return RS_E_NOMEM;
    }
    for (int i = 0; i < s->n_arch; i++)
        r->arch[r->n_arch++] = (arch_row){s->arch_names[i], 0, s->arch_expected[i], 0, NAN};
    r->done = n;
    r->expected = s->trials_expected;
    for (size_t k = 0; k < n; k++) {
        int a = row_of[k] = arch_index(r, s->arch[k] ? s->arch[k] : "");
        r->arch[a].done++;
        if (s->status[k] != RS_OK) {
            r->failures++;
            r->arch[a].failures++;
            count_status(r, s->status[k]);
        }
        r->converged += s->converged[k] != 0;
        /* theory-only trials have no timings (NaN): they cost next to nothing */
        if (isfinite(s->train_seconds[k]))
            r->core_seconds += s->train_seconds[k];
        if (isfinite(s->fit_seconds[k]))
            r->core_seconds += s->fit_seconds[k];
    }
    for (int a = 0; a < r->n_arch; a++) {
        size_t m = 0;
        for (size_t k = 0; k < n; k++)
            if (row_of[k] == a)
                losses[m++] = s->fit_loss_rel[k];
        r->arch[a].median_fit_loss_rel = median_finite(losses, m);
    }
    /* failure statuses ascending (insertion sort: there are a handful) */
    for (int i = 1; i < r->n_statuses; i++)
        for (int j = i; j > 0 && r->statuses[j - 1] > r->statuses[j]; j--) {
            int64_t st = r->statuses[j];
            uint64_t c = r->status_counts[j];
            r->statuses[j] = r->statuses[j - 1];
            r->status_counts[j] = r->status_counts[j - 1];
            r->statuses[j - 1] = st;
            r->status_counts[j - 1] = c;
        }
    r->wall_seconds = (double)(s->updated - s->created);
    r->per_hour = r->wall_seconds > 0 ? 3600.0 * (double)n / r->wall_seconds : NAN;
    r->per_core_hour = r->core_seconds > 0 ? 3600.0 * (double)n / r->core_seconds : NAN;
    uint64_t left = r->expected > n ? r->expected - n : 0;
    r->eta_seconds = left == 0 ? 0 : r->per_hour > 0 ? 3600.0 * (double)left / r->per_hour : NAN;
    r->journal_trials = -1;
    free(row_of);
    free(losses);
    return RS_OK;
}

/* The header of FILE.nc's journal (its path into journal): RS_OK, or not there or not one. */
static int peek_journal(const char *path, char journal[4096], rs_store_peek_info *info)
{
    char err[1024];
    if ((size_t)snprintf(journal, 4096, "%s.journal", path) >= 4096)
        return RS_E_INVALID;
    return rs_store_peek(journal, info, err, sizeof err);
}

/* The journal beside FILE.nc, if it is this file's and holds more trials than it. */
static void look_at_journal(const char *path, const rs_ncio_summary *s, report *r)
{
    char journal[4096], hash[32];
    rs_store_peek_info info;
    if (peek_journal(path, journal, &info) != RS_OK)
        return; /* no journal (a merged file, or a copy): nothing to add */
    snprintf(hash, sizeof hash, "%016llx", (unsigned long long)info.job_hash);
    if (strcmp(hash, s->job_hash) == 0 && info.records > s->n)
        r->journal_trials = (long long)info.records;
}

static void print_duration(double seconds)
{
    long t = (long)(seconds + 0.5);
    if (t >= 86400)
        printf("%ldd%02ldh%02ldm", t / 86400, t / 3600 % 24, t / 60 % 60);
    else
        printf("%ldh%02ldm%02lds", t / 3600, t / 60 % 60, t % 60);
}

static void print_text(const char *path, const rs_ncio_summary *s, const report *r)
{
    printf("job '%s' (hash %s), ", s->job_name, s->job_hash);
    if (s->shard.count > 1)
        printf("shard %llu/%llu of %llu trials\n", (unsigned long long)s->shard.index,
               (unsigned long long)s->shard.count, (unsigned long long)s->grid_trials);
    else
        printf("shard 0/1 (the whole job, %llu trials)\n", (unsigned long long)s->grid_trials);
    printf("done: %llu of %llu trials (%.1f%%)\n", (unsigned long long)r->done,
           (unsigned long long)r->expected,
           r->expected ? 100.0 * (double)r->done / (double)r->expected : 100.0);
    printf("failures: %llu", (unsigned long long)r->failures);
    for (int i = 0; i < r->n_statuses; i++)
        printf("%s%llu status %lld (%s)", i ? ", " : " (", (unsigned long long)r->status_counts[i],
               (long long)r->statuses[i], rs_strerror((int)r->statuses[i]));
    printf("%s\n", r->n_statuses ? ")" : "");
    printf("converged: %llu\n", (unsigned long long)r->converged);
    printf("rate: ");
    if (isfinite(r->per_hour))
        printf("%.1f trials/hour over ", r->per_hour);
    else
        printf("unknown trials/hour over ");
    print_duration(r->wall_seconds > 0 ? r->wall_seconds : 0);
    printf(" of wall time; ");
    if (isfinite(r->per_core_hour))
        printf("%.1f trials per core-hour\n", r->per_core_hour);
    else
        printf("unknown trials per core-hour\n");
    printf("ETA: ");
    if (isfinite(r->eta_seconds)) {
        print_duration(r->eta_seconds);
        printf("%s\n", r->eta_seconds > 0 ? " at that rate" : " (complete)");
    } else {
        printf("unknown\n");
    }
    size_t width = strlen("architecture");
    for (int a = 0; a < r->n_arch; a++)
        if (strlen(r->arch[a].name) > width)
            width = strlen(r->arch[a].name);
    printf("%-*s  %15s  %8s  %19s\n", (int)width, "architecture", "done/expected", "failures",
           "median fit_loss_rel");
    for (int a = 0; a < r->n_arch; a++) {
        char frac[48], med[32];
        snprintf(frac, sizeof frac, "%llu/%llu", (unsigned long long)r->arch[a].done,
                 (unsigned long long)r->arch[a].expected);
        if (isfinite(r->arch[a].median_fit_loss_rel))
            snprintf(med, sizeof med, "%.3g", r->arch[a].median_fit_loss_rel);
        else
            snprintf(med, sizeof med, "-");
        printf("%-*s  %15s  %8llu  %19s\n", (int)width, r->arch[a].name, frac,
               (unsigned long long)r->arch[a].failures, med);
    }
    if (r->journal_trials >= 0)
        printf("journal holds %lld trials; %s is rewritten every --save-every seconds\n",
               r->journal_trials, path);
}

static void print_json(const rs_ncio_summary *s, const report *r)
{
    json_writer w;
    json_begin(&w, stdout, 0);
    json_open_object(&w, NULL);
    json_string(&w, "job", s->job_name);
    json_string(&w, "job_hash", s->job_hash);
    json_uint(&w, "shard_index", s->shard.index);
    json_uint(&w, "shard_count", s->shard.count);
    json_uint(&w, "grid_trials", s->grid_trials);
    json_uint(&w, "done", r->done);
    json_uint(&w, "expected", r->expected);
    json_uint(&w, "failures", r->failures);
    json_open_object(&w, "failures_by_status");
    for (int i = 0; i < r->n_statuses; i++) {
        char key[32];
        snprintf(key, sizeof key, "%lld", (long long)r->statuses[i]);
        json_uint(&w, key, r->status_counts[i]);
    }
    json_close(&w);
    json_uint(&w, "converged", r->converged);
    json_number(&w, "wall_seconds", r->wall_seconds);
    json_number(&w, "core_seconds", r->core_seconds);
    json_number(&w, "trials_per_hour", r->per_hour);
    json_number(&w, "trials_per_core_hour", r->per_core_hour);
    json_number(&w, "eta_seconds", r->eta_seconds);
    if (r->journal_trials >= 0)
        json_int(&w, "journal_trials", r->journal_trials);
    else
        json_null(&w, "journal_trials");
    json_open_object(&w, "architectures");
    for (int a = 0; a < r->n_arch; a++) {
        json_open_object(&w, r->arch[a].name);
        json_uint(&w, "done", r->arch[a].done);
        json_uint(&w, "expected", r->arch[a].expected);
        json_uint(&w, "failures", r->arch[a].failures);
        json_number(&w, "median_fit_loss_rel", r->arch[a].median_fit_loss_rel);
        json_close(&w);
    }
    json_close(&w);
    json_close(&w);
    json_end(&w);
}

/* FILE.nc does not exist yet but its journal does (a new run before its first write):
 * report the journal's header; 0 if there was one to report. */
static int report_journal_only(const char *path, int json)
{
    char journal[4096];
    rs_store_peek_info info;
    struct stat st;
    if (stat(path, &st) == 0 || errno != ENOENT)
        return -1; /* FILE.nc exists (or cannot be looked at): its own error stands */
    if (peek_journal(path, journal, &info) != RS_OK)
        return -1;
    if (json) {
        /* the keys of the full report that the header can give; job (the name) is not in it */
        uint64_t expected = rs_grid_shard_trials(&info.shard, 0, info.trials);
        char hash[17];
        snprintf(hash, sizeof hash, "%016llx", (unsigned long long)info.job_hash);
        json_writer w;
        json_begin(&w, stdout, 0);
        json_open_object(&w, NULL);
        json_bool(&w, "results_file_written", 0);
        json_null(&w, "job");
        json_string(&w, "job_hash", hash);
        json_uint(&w, "shard_index", info.shard.index);
        json_uint(&w, "shard_count", info.shard.count);
        json_uint(&w, "grid_trials", info.trials);
        json_uint(&w, "done", info.records);
        json_uint(&w, "expected", expected);
        json_uint(&w, "journal_trials", info.records);
        json_close(&w);
        json_end(&w);
    } else {
        printf("%s: not written yet (a run writes it every --save-every seconds and when it "
               "stops); its journal %s holds %llu trials of job hash %016llx (grid of %llu "
               "trials", path, journal, (unsigned long long)info.records,
               (unsigned long long)info.job_hash, (unsigned long long)info.trials);
        if (info.shard.count > 1)
            printf(", shard %llu/%llu", (unsigned long long)info.shard.index,
                   (unsigned long long)info.shard.count);
        printf(")\n");
    }
    return 0;
}

int cmd_status(int argc, char **argv)
{
    static const struct option long_options[] = {
        {"json", no_argument, 0, 'j'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    int json = 0, c;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", long_options, NULL)) != -1) {
        if (c == 'j') {
            json = 1;
        } else if (c == 'h') {
            status_usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "repsweep status: unknown option '%s' (see repsweep status "
                    "--help)\n", argv[optind - 1]);
            return 2;
        }
    }
    if (optind != argc - 1) {
        fprintf(stderr, "repsweep status: expected one results file FILE.nc, got %d arguments "
                "(see repsweep status --help)\n", argc - optind);
        return 2;
    }
    const char *path = argv[optind];
    char err[1024];
    rs_ncio_summary s;
    int st = rs_ncio_read_summary(path, &s, err, sizeof err);
    if (st != RS_OK && st != RS_E_NOMEM && report_journal_only(path, json) == 0)
        return 0;
    if (st != RS_OK) {
        fprintf(stderr, "repsweep status: %s\n", err);
        return st == RS_E_NOMEM ? 1 : 2;
    }
    report r;
    if (make_report(&s, &r) != RS_OK) {
        fprintf(stderr, "repsweep status: %s: out of memory\n", path);
        rs_ncio_summary_free(&s);
        return 1;
    }
    look_at_journal(path, &s, &r);
    if (json)
        print_json(&s, &r);
    else
        print_text(path, &s, &r);
    report_free(&r);
    rs_ncio_summary_free(&s);
    return 0;
}
