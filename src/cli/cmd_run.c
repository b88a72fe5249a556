/* cmd_run.c — `repsweep run JOB --out FILE.nc`: a job's sweep, under MPI or in one process,
 * resumable from FILE.nc.journal. Owns the signal flag (the program's one piece of global
 * mutable state: a signal handler can reach nothing else). */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <mpi.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "commands.h"
#include "options.h"
#include "repsweep/blas.h"
#include "repsweep/grid.h"
#include "repsweep/job.h"
#include "repsweep/ncio.h"
#include "repsweep/status.h"
#include "repsweep/store.h"
#include "repsweep/sweep.h"

/* Exit statuses (documented in --help). */
enum { EXIT_DONE = 0, EXIT_ERROR = 1, EXIT_BAD_INPUT = 2, EXIT_INTERRUPTED = 3,
       EXIT_COULD_NOT_RUN = 4 };

/* Attempts of a trial that could not run (--no-retry: 1). */
#define MAX_ATTEMPTS 3

/* Set by SIGTERM, SIGINT, SIGUSR1 to the signal's number; read by the sweep and, through
 * rs_trial_spec.stop, by the training loop before every epoch. */
static volatile sig_atomic_t stop_signal = 0;

static void on_stop_signal(int sig)
{
    stop_signal = sig;
}

static void run_usage(FILE *out)
{
    /* one write(2), not stdio's 4096-byte pieces: `run --help | grep -q --shard` under
     * pipefail (slurm/submit) must not see this process die of SIGPIPE on a second write
     * after grep has quit. Two strings: one literal may not exceed 4095 characters. */
    char text[8192];
    int n = snprintf(text, sizeof text, "%s%s",
        "usage: [mpirun -n N] repsweep run JOB.cfg --out FILE.nc [options]\n"
        "\n"
        "Run every trial of a job (jobs/README.md) and write one summary per finished trial\n"
        "to FILE.nc (netCDF-4). Finished trials are appended, checksummed and fsync'ed, to\n"
        "the journal FILE.nc.journal; FILE.nc is rewritten from it atomically at the end, on\n"
        "a stop signal and every --save-every seconds. Rerunning the same command after any\n"
        "stop (a kill included) runs only the trials that are not in the journal.\n"
        "Under MPI rank 0 schedules (most expensive trials first, in chunks, more as ranks\n"
        "finish) and writes; ranks >= 1 compute. Without mpirun one process does both.\n"
        "\n"
        "  --out FILE.nc        results file (required); its journal is FILE.nc.journal\n"
        "  --threads T          threads per rank (default: $OMP_NUM_THREADS, else 1;\n"
        "                       OpenMP): the dense layers' row blocks (at most 8 threads)\n"
        "                       and the convolutions' two halves;\n"
        "                       results do not depend on it (OpenBLAS runs single-threaded)\n"
        "  --chunk N            at most N trials per chunk handed to a rank (default 64; a\n"
        "                       chunk also closes at ~2 estimated seconds of work)\n"
        "  --progress S         progress on stderr every S seconds (default 10; 0: off)\n"
        "  --save-every S       rewrite FILE.nc every S seconds (default 300; 0: only at the end)\n"
        "                       in a background thread, at most ~2%% of the wall time; a\n"
        "                       failed rewrite is a warning (the journal has every trial)\n"
        "  --shard I/N          run only shard I of N (0 <= I < N): the trials whose grid\n"
        "                       index k has k mod N == I, for job arrays (one run per shard,\n"
        "                       each with its own --out; `repsweep merge` joins the files).\n"
        "                       Round-robin, so every shard gets ~1/N of each architecture\n"
        "                       and gain and the shards cost about the same; the slice\n"
        "                       depends only on I, N and the job, never on ranks. Resume,\n"
        "                       signals and exit statuses work per shard; \"done\" means the\n"
        "                       shard is done\n"
        "  --hang-seconds S     liveness (under MPI): a rank that has not returned its chunk\n"
        "                       S seconds + 10 x the chunk's estimated cost after getting\n"
        "                       it (default 120) is treated as lost (hung, stopped, on a\n"
        "                       dead node): its chunk goes to other ranks, a late answer is\n"
        "                       not recorded twice; once stopping, rank 0 waits at most\n"
        "                       min(S, 30) seconds for busy ranks\n"
        "  --no-retry           do not run again the stored trials that could not run\n"
        "                       (e.g. out of memory); without it a rerun retries each such\n"
        "                       trial, up to 3 attempts in all (the journal keeps every\n"
        "                       attempt, the results file the last)\n"
        "  -h, --help           this text\n"
        "\n",
        "SIGTERM, SIGINT and SIGUSR1 (what SLURM sends before a time limit; mpirun forwards\n"
        "SIGUSR1 to every rank) stop the sweep: no more work is handed out, a trial in\n"
        "progress is abandoned within one epoch, FILE.nc is rewritten with every finished\n"
        "trial, and repsweep exits with status 3, within min(--hang-seconds, 30) s plus an\n"
        "epoch and the rewrite of FILE.nc even if a rank hangs.\n"
        "A rank that stops answering (see --hang-seconds) does not stop the sweep: the\n"
        "others finish it. If a rank is still lost at the end, rank 0 saves everything and\n"
        "ends the job with MPI_Abort(exit status) instead of waiting for it (mpirun kills\n"
        "every rank and exits with that status); with no answering rank left the status\n"
        "is 3. A rank killed outright makes mpirun end the job (its own non-zero status);\n"
        "every trial in the journal is kept: rerun the same command.\n"
        "\n"
        "Exit status: 0 every trial ran (diverged trials and failed fits are results);\n"
        "1 error (I/O, out of memory of rank 0); 2 bad input (job file, options, an --out\n"
        "that cannot be created or belongs to another job or shard, a corrupt journal);\n"
        "3 interrupted by a signal or with no rank left: rerun the same command to resume;\n"
        "4 every trial has a record but some could not run (status < 0, e.g. out of\n"
        "memory): rerun to retry them (see --no-retry). A line before the last counts the\n"
        "failures by kind (could not run, diverged, fit failed, ODE collapsed).\n"
        "`repsweep status FILE.nc` reports progress from FILE.nc while the run goes on.\n");
    fflush(out);
    if (n > 0 && write(fileno(out), text, (size_t)n) != (ssize_t)n)
        fputs("repsweep run: cannot write the help text\n", stderr);
}

typedef struct {
    const char *job, *out;
    long threads, chunk;
    double progress, save_every, hang_seconds;
    int no_retry;
    rs_grid_shard shard;
} run_options;

enum { O_OUT = 256, O_THREADS, O_CHUNK, O_PROGRESS, O_SAVE, O_SHARD, O_HANG, O_NO_RETRY,
       O_HELP };

/* Returns -1 to exit 2, 1 to exit 0 (help), 0 to go on. */
static int parse(int argc, char **argv, run_options *o)
{
    static const struct option long_options[] = {
        {"out", required_argument, 0, O_OUT},
        {"threads", required_argument, 0, O_THREADS},
        {"chunk", required_argument, 0, O_CHUNK},
        {"progress", required_argument, 0, O_PROGRESS},
        {"save-every", required_argument, 0, O_SAVE},
        {"shard", required_argument, 0, O_SHARD},
        {"hang-seconds", required_argument, 0, O_HANG},
        {"no-retry", no_argument, 0, O_NO_RETRY},
        {"help", no_argument, 0, O_HELP},
        {0, 0, 0, 0}};
    memset(o, 0, sizeof *o);
    int threads;
    if (opt_default_threads("run", &threads) != 0)
        return -1;
    o->threads = threads;
    o->chunk = 64;
    o->progress = 10;
    o->save_every = 300;
    o->hang_seconds = 120;
    o->shard = (rs_grid_shard){0, 1};
    opterr = 0;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "h", long_options, NULL)) != -1) {
        int bad = 0;
        switch (c) {
        case O_OUT: bad = opt_path("run", "--out", optarg, &o->out); break;
        case O_THREADS: bad = opt_long("run", "--threads", optarg, 1, 1024, &o->threads); break;
        case O_CHUNK: bad = opt_long("run", "--chunk", optarg, 1, 1000000, &o->chunk); break;
        case O_PROGRESS:
            bad = opt_double("run", "--progress", optarg, 0, 1e9, &o->progress);
            break;
        case O_SAVE: bad = opt_double("run", "--save-every", optarg, 0, 1e9, &o->save_every); break;
        case O_SHARD: bad = opt_shard("run", "--shard", optarg, &o->shard); break;
        case O_NO_RETRY: o->no_retry = 1; break;
        case O_HANG:
            bad = opt_double("run", "--hang-seconds", optarg, 0.1, 1e9, &o->hang_seconds);
            break;
        case 'h': /* -h, as --help */
        case O_HELP: run_usage(stdout); return 1;
        default:
            fprintf(stderr, "repsweep run: unknown or incomplete option '%s' (see repsweep run "
                    "--help)\n", argv[optind - 1]);
            return -1;
        }
        if (bad)
            return -1;
    }
    if (optind >= argc) {
        fprintf(stderr, "repsweep run: expected a job file (see repsweep run --help)\n");
        return -1;
    }
    o->job = argv[optind++];
    if (optind < argc) {
        fprintf(stderr, "repsweep run: unexpected argument '%s' (see --help)\n", argv[optind]);
        return -1;
    }
    if (!o->out) {
        fprintf(stderr, "repsweep run: --out FILE.nc is required (see --help)\n");
        return -1;
    }
    return 0;
}

static void install_signal_handlers(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
}

/* What the master needs to (re)write FILE.nc, and the checkpoints: the callback's context.
 *
 * A checkpoint never holds up the sweep. The callback (on rank 0's main thread, the only one
 * that talks MPI) takes a snapshot of the journal (store.h: 16 bytes per stored trial, copied)
 * and returns; a background thread writes FILE.nc from it (rs_ncio_write_sweep streams the
 * records from the journal in bounded batches), and is the only thread using netCDF until it
 * is joined. While one is being written the next is skipped, and after one that took d
 * seconds the next waits at least CHECKPOINT_SPACING x d, so checkpoints take at most
 * 1 / (CHECKPOINT_SPACING + 1) ~ 2 % of the wall time even when rank 0 also computes.
 * A checkpoint that fails (full disk, read-only directory) is a warning naming the file and
 * the system's reason: the journal holds every finished trial, and the sweep goes on. */
enum { CHECKPOINT_SPACING = 49 };

typedef struct {
    const char *out;
    const rs_grid *grid;
    rs_ncio_sweep_info info;
    /* the background checkpoint */
    pthread_t thread;
    int running;                  /* a thread was started and not joined */
    atomic_int finished;          /* ... and has finished */
    rs_store_snapshot *snap;      /* what it writes */
    double began, ended;          /* its times (seconds_now) */
    double next_allowed;          /* no checkpoint before this */
    double seconds;               /* spent writing checkpoints, in all */
    unsigned long written, failed;
} results_target;

static double seconds_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* A results-file write failed in this process: cmd_run then ends through
 * opt_exit_after_failed_write (netCDF/HDF5 may leave a half-closed file whose exit handler
 * crashes). Set by the final write, on rank 0's main thread. */
static int results_write_failed = 0;

/* FILE.nc from a snapshot; the error message goes to stderr (a warning for a checkpoint),
 * with the file system's free space when it is nearly full. */
static int write_snapshot(const results_target *t, rs_store_snapshot *snap, const char *what)
{
    char err[1024], note[128];
    int st = rs_ncio_write_sweep(t->out, t->grid, snap, &t->info, err, sizeof err);
    if (st != RS_OK)
        fprintf(stderr, "repsweep run: %s%s%s\n", what, st == RS_E_NOMEM ? "out of memory "
                "while writing the results file" : err, opt_full_disk_note(t->out, note));
    return st;
}

static void *checkpoint_thread(void *arg)
{
    results_target *t = arg;
    int st = write_snapshot(t, t->snap, "warning: checkpoint not written (the journal holds "
                            "every finished trial; the sweep goes on): ");
    t->failed += st != RS_OK;
    t->written += st == RS_OK;
    t->ended = seconds_now();
    atomic_store(&t->finished, 1);
    return NULL;
}

/* Wait for the background checkpoint, if one was started, and account for it. */
static void checkpoint_join(results_target *t)
{
    if (!t->running)
        return;
    pthread_join(t->thread, NULL);
    t->running = 0;
    rs_store_snapshot_free(&t->snap);
    double took = t->ended - t->began;
    t->seconds += took;
    t->next_allowed = t->ended + CHECKPOINT_SPACING * took;
}

/* The sweep's checkpoint callback: start a background write unless one is running or the
 * last one was too recent. Returns at once. */
static int checkpoint(const rs_store *store, void *ctx)
{
    results_target *t = ctx;
    char err[1024];
    if (t->running && !atomic_load(&t->finished))
        return RS_OK;
    checkpoint_join(t);
    if (seconds_now() < t->next_allowed)
        return RS_OK;
    int st = rs_store_snapshot_take(store, &t->snap, err, sizeof err);
    if (st != RS_OK) {
        fprintf(stderr, "repsweep run: warning: checkpoint not written: %s\n",
                st == RS_E_NOMEM ? "out of memory" : err);
        t->failed++;
        return st;
    }
    /* the signals stay with the main thread (the handler only sets the stop flag) */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    atomic_store(&t->finished, 0);
    t->began = seconds_now();
    int created = pthread_create(&t->thread, NULL, checkpoint_thread, t);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (created != 0) {
        fprintf(stderr, "repsweep run: warning: checkpoint not written: cannot start its "
                "thread: %s\n", strerror(created));
        rs_store_snapshot_free(&t->snap);
        t->failed++;
        return RS_E_NOMEM;
    }
    t->running = 1;
    return RS_OK;
}

/* The final FILE.nc: after the background checkpoint, from every stored trial. */
static int write_results(const rs_store *store, results_target *t)
{
    char err[1024];
    rs_store_snapshot *snap = NULL;
    checkpoint_join(t);
    int st = rs_store_snapshot_take(store, &snap, err, sizeof err);
    if (st != RS_OK) {
        fprintf(stderr, "repsweep run: %s: %s\n", t->out, st == RS_E_NOMEM ? "out of memory"
                : err);
        return st;
    }
    st = write_snapshot(t, snap, "");
    results_write_failed = st != RS_OK;
    rs_store_snapshot_free(&snap);
    return st;
}

/* The wall-clock time now as ISO 8601 in UTC ("2026-01-31T12:00:00Z"), for progress lines
 * that are read against other nodes' logs. */
static const char *iso_time_now(char buf[32])
{
    time_t now = time(NULL);
    struct tm utc;
    if (!gmtime_r(&now, &utc) || !strftime(buf, 32, "%Y-%m-%dT%H:%M:%SZ", &utc))
        snprintf(buf, 32, "(time unknown)");
    return buf;
}

static void print_progress(const rs_sweep_progress *p, void *ctx)
{
    const results_target *t = ctx;
    char note[64], when[32];
    double per_hour = p->seconds > 0 ? 3600.0 * (double)p->done_here / p->seconds : 0;
    fprintf(stderr, "progress: %s %llu/%llu trials%s (%.1f%%), %.0f trials/h, ",
            iso_time_now(when),
            (unsigned long long)p->done, (unsigned long long)p->total,
            opt_shard_note(&t->info.shard, note),
            p->total ? 100.0 * (double)p->done / (double)p->total : 100.0, per_hour);
    if (p->cost_done > 0) {
        double eta = p->seconds * (p->cost_todo - p->cost_done) / p->cost_done;
        long s = eta > 0 ? (long)eta : 0;
        fprintf(stderr, "ETA %ldh%02ldm%02lds", s / 3600, s / 60 % 60, s % 60);
    } else {
        fprintf(stderr, "ETA unknown");
    }
    fprintf(stderr, ", failures %llu, %d rank%s", (unsigned long long)p->failures, p->ranks,
            p->ranks > 1 ? "s" : "");
    if (p->lost > 0)
        fprintf(stderr, " (%llu not answering)", (unsigned long long)p->lost);
    fprintf(stderr, "\n");
}

/* Test-only (tests/python/test_retry.py): REPSWEEP_TEST_FAIL_TRIALS=3,7 makes those grid
 * indices "could not run" (status RS_E_NOMEM) without training, on every rank. */
typedef struct {
    uint64_t index[64];
    int n;
} fail_hook;

static void read_fail_hook(fail_hook *h)
{
    const char *v = getenv("REPSWEEP_TEST_FAIL_TRIALS");
    h->n = 0;
    while (v && *v && h->n < 64) {
        char *end;
        h->index[h->n++] = strtoull(v, &end, 10);
        v = *end == ',' ? end + 1 : NULL;
    }
}

static int hooked_trial(const rs_grid *grid, uint64_t index, const rs_sweep_options *o,
                        rs_store_record *rec, void *params)
{
    const fail_hook *h = params;
    for (int i = 0; i < h->n; i++)
        if (h->index[i] == index) {
            rs_store_layout l;
            rs_store_layout_of(grid, &l);
            rs_store_record_clear(index, &l, rec);
            rec->status = RS_E_NOMEM;
            return RS_OK;
        }
    return rs_sweep_trial(grid, index, o, rec);
}

static void print_notice(const char *text, void *ctx)
{
    (void)ctx;
    fprintf(stderr, "repsweep run: %s\n", text);
}

/* Master: refuse an --out that is not ours, open (or create) the journal, say where the
 * sweep stands. Returns an exit status (EXIT_DONE to go on). */
static int open_output(const run_options *o, const rs_job *job, const rs_grid *grid,
                       uint64_t hash, char *journal, size_t journal_len, rs_store **store)
{
    char err[1024], note[64];
    struct stat st;
    snprintf(journal, journal_len, "%s.journal", o->out);
    if (stat(o->out, &st) == 0 && S_ISDIR(st.st_mode)) {
        fprintf(stderr, "repsweep run: --out: %s is a directory; --out names the results "
                "file, e.g. %s/RESULTS.nc\n", o->out, o->out);
        return EXIT_BAD_INPUT;
    }
    if (stat(o->out, &st) == 0 && stat(journal, &st) != 0 && errno == ENOENT) {
        fprintf(stderr, "repsweep run: --out: %s exists but its journal %s does not (not a "
                "results file of repsweep run, or its journal was deleted); it is left as it "
                "is: use another --out\n", o->out, journal);
        return EXIT_BAD_INPUT;
    }
    rs_store_layout layout;
    rs_store_layout_of(grid, &layout);
    int s = rs_store_open(journal, job->name, hash, rs_job_arch_digest(job), rs_grid_count(grid),
                          &layout, &o->shard, store, err, sizeof err);
    if (s != RS_OK) {
        fprintf(stderr, "repsweep run: --out: %s\n", s == RS_E_NOMEM ? "out of memory" : err);
        return s == RS_E_NOMEM ? EXIT_ERROR : EXIT_BAD_INPUT;
    }
    if (rs_store_damaged_records(*store) > 0)
        fprintf(stderr, "repsweep run: %s: skipped %llu slot(s) between intact records that "
                "are damaged (altered on disk) or repeat a trial; every intact record is kept, "
                "and a trial without one runs again\n", journal,
                (unsigned long long)rs_store_damaged_records(*store));
    if (rs_store_dropped_bytes(*store) > 0)
        fprintf(stderr, "repsweep run: %s: dropped %llu bytes after its last intact record (a "
                "run killed mid-write); every intact record is kept\n", journal,
                (unsigned long long)rs_store_dropped_bytes(*store));
    uint64_t done = rs_store_done_count(*store), total = rs_store_expected_count(*store);
    const char *of_shard = opt_shard_note(&o->shard, note);
    rs_store_counts counts;
    rs_store_counts_get(*store, o->no_retry ? 1 : MAX_ATTEMPTS, &counts);
    uint64_t retries = counts.retries;
    if (done > 0)
        fprintf(stderr, "resuming: %llu of %llu trials done%s", (unsigned long long)done,
                (unsigned long long)total, of_shard);
    if (done > 0 && retries > 0)
        fprintf(stderr, "; %llu that could not run will be retried", (unsigned long long)retries);
    if (done > 0)
        fprintf(stderr, "\n");
    else if (o->shard.count > 1)
        fprintf(stderr, "starting: %llu trials%s of job '%s' (%llu trials)\n",
                (unsigned long long)total, of_shard, job->name,
                (unsigned long long)rs_grid_count(grid));
    else
        fprintf(stderr, "starting: %llu trials of job '%s'\n", (unsigned long long)total,
                job->name);
    return EXIT_DONE;
}

/* Load balance: each computing rank's busy fraction, its compute time over the sweep's wall
 * time (rank 0's: a worker that got no more work leaves early, idle until the end). Rank 0
 * only schedules when there are workers, so it is left out of the busy figures then; every
 * rank's peak resident memory (`peaks`, bytes per rank, may be NULL) is printed, rank 0's
 * included, to size --mem-per-cpu. */
static void print_busy(const rs_sweep_report *rep, const long long *peaks)
{
    if (!rep->rank_times)
        return;
    for (int r = 0; r < rep->ranks; r++) {
        if (rep->ranks > 65 && r > 1 && r != rep->ranks - 1)
            continue;
        double busy = rep->rank_times[2 * r], wall = rep->rank_times[1];
        fprintf(stderr, "rank %d: ", r);
        if (r == 0 && rep->ranks > 1)
            fprintf(stderr, "scheduler");
        else
            fprintf(stderr, "busy %.1f s of %.1f s (%.1f%%)", busy, wall,
                    wall > 0 ? 100 * busy / wall : 0.0);
        if (peaks && peaks[r] >= 0)
            fprintf(stderr, ", peak memory %.1f MiB", (double)peaks[r] / (1024.0 * 1024.0));
        fprintf(stderr, "\n");
    }
}

/* The stored trials that did not end ok, by kind, on one line (nothing if none); returns
 * those that could not run. */
static uint64_t print_failures(const rs_store *store, unsigned max_attempts)
{
    rs_store_counts c;
    rs_store_counts_get(store, max_attempts, &c);
    uint64_t could_not = c.could_not_run, retry = c.retries, diverged = c.diverged,
             fit = c.fit_failed, collapsed = c.collapsed, ode = c.ode_error, other = c.other;
    int64_t could_not_status = c.could_not_run_example;
    if (could_not + diverged + fit + collapsed + ode + other == 0)
        return 0;
    fprintf(stderr, "failures:");
    const char *sep = " ";
    if (could_not) {
        fprintf(stderr, "%s%llu could not run (e.g. %s; ", sep, (unsigned long long)could_not,
                rs_strerror((int)could_not_status));
        if (retry)
            fprintf(stderr, "%llu will be retried by a rerun of the same command, at most %u "
                    "attempts each)", (unsigned long long)retry, max_attempts);
        else if (max_attempts > 1)
            fprintf(stderr, "each had %u attempts: not retried)", max_attempts);
        else
            fprintf(stderr, "--no-retry: not retried)");
        sep = ", ";
    }
    if (diverged)
        fprintf(stderr, "%s%llu diverged", sep, (unsigned long long)diverged), sep = ", ";
    if (fit)
        fprintf(stderr, "%s%llu fit failed", sep, (unsigned long long)fit), sep = ", ";
    if (collapsed)
        fprintf(stderr, "%s%llu ODE collapsed", sep, (unsigned long long)collapsed), sep = ", ";
    if (ode)
        fprintf(stderr, "%s%llu ODE solver failed", sep, (unsigned long long)ode), sep = ", ";
    if (other)
        fprintf(stderr, "%s%llu other", sep, (unsigned long long)other);
    fprintf(stderr, "\n");
    return could_not;
}

/* The master's part after the sweep: FILE.nc from the journal, and the final word. */
static int finish(const run_options *o, const rs_store *store, results_target *target,
                  int sweep_status, const rs_sweep_report *rep, const long long *peaks,
                  double wall)
{
    checkpoint_join(target);
    if (target->written + target->failed > 0) {
        char failed[48] = "";
        if (target->failed)
            snprintf(failed, sizeof failed, ", %lu failed", target->failed);
        fprintf(stderr, "checkpoints: %lu written%s in %.2f s of the sweep's %.1f s (%.2f%%), "
                "in the background\n", target->written, failed, target->seconds, wall,
                wall > 0 ? 100 * target->seconds / wall : 0.0);
    }
    double write_began = seconds_now();
    int wrote = write_results(store, target);
    if (wrote == RS_OK && target->written + target->failed > 0)
        fprintf(stderr, "results: %s written in %.2f s\n", o->out,
                seconds_now() - write_began);
    uint64_t done = rs_store_done_count(store), total = rs_store_expected_count(store);
    char note[64];
    const char *of_shard = opt_shard_note(&o->shard, note);
    if (sweep_status != RS_OK) {
        fprintf(stderr, "repsweep run: the sweep stopped: %s; %llu of %llu trials%s are saved "
                "in %s.journal%s\n", rep->message[0] ? rep->message : rs_strerror(sweep_status),
                (unsigned long long)done, (unsigned long long)total, of_shard, o->out,
                wrote == RS_OK ? " and the results file" : "");
        return EXIT_ERROR;
    }
    if (wrote != RS_OK) {
        fprintf(stderr, "repsweep run: %llu of %llu trials%s are saved in %s.journal, but the "
                "results file could not be written (the reason is above); rerun the same "
                "command once that is fixed: it rewrites %s from the journal\n",
                (unsigned long long)done, (unsigned long long)total, of_shard, o->out, o->out);
        return EXIT_ERROR;
    }
    if (rep->lost_ranks > 0)
        fprintf(stderr, "repsweep run: %d rank%s stopped answering (hung, stopped or on a lost "
                "node); %llu chunk%s ran again on other ranks; the job ends without waiting "
                "for %s\n", rep->lost_ranks, rep->lost_ranks > 1 ? "s" : "",
                (unsigned long long)rep->reassigned, rep->reassigned == 1 ? "" : "s",
                rep->lost_ranks > 1 ? "them" : "it");
    if (rep->interrupted) {
        if (!stop_signal && rep->lost_ranks > 0)
            fprintf(stderr, "stopped: no rank that answers is left to compute; ");
        fprintf(stderr, "interrupted%s%s: %llu of %llu trials%s done (%llu in this run) and "
                "saved in %s; rerun the same command to resume\n",
                stop_signal ? " by signal " : "",
                stop_signal == SIGUSR1 ? "SIGUSR1" : stop_signal == SIGTERM ? "SIGTERM"
                : stop_signal == SIGINT ? "SIGINT" : "", (unsigned long long)done,
                (unsigned long long)total, of_shard, (unsigned long long)rep->computed, o->out);
        return EXIT_INTERRUPTED;
    }
    print_busy(rep, peaks);
    uint64_t could_not_run = print_failures(store, o->no_retry ? 1 : MAX_ATTEMPTS);
    fprintf(stderr, "done: %llu of %llu trials%s (%llu in this run); results in %s\n",
            (unsigned long long)done, (unsigned long long)total, of_shard,
            (unsigned long long)rep->computed, o->out);
    return could_not_run ? EXIT_COULD_NOT_RUN : EXIT_DONE;
}

/* --threads above the CPUs a computing rank is bound to makes its threads wait on each other
 * (mpirun binds each of 1-2 ranks to one core by default): say so once, from rank 0. Under
 * MPI rank 0 only schedules, so only ranks >= 1 count. Collective. */
static void warn_threads(const run_options *o, MPI_Comm comm)
{
    int rank, ranks;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &ranks);
    int cpus = ranks > 1 && rank == 0 ? 0 : opt_cpus_short(o->threads);
    int is_short = cpus > 0, ranks_short = 0, fewest = cpus > 0 ? cpus : INT_MAX;
    MPI_Reduce(&is_short, &ranks_short, 1, MPI_INT, MPI_SUM, 0, comm);
    MPI_Reduce(rank == 0 ? MPI_IN_PLACE : &fewest, &fewest, 1, MPI_INT, MPI_MIN, 0, comm);
    if (rank == 0)
        opt_warn_threads("run", o->threads, ranks_short, ranks - 1, fewest);
}

/* Everything between MPI_Init and MPI_Finalize; collective, except when a rank was lost
 * (*lost set on rank 0: the others may be stopped or waiting in a collective). Returns the
 * exit status. */
static int run(const run_options *o, const char *command_line, MPI_Comm comm, int *lost)
{
    int rank, rc = EXIT_DONE;
    char err[1024], journal[4096];
    MPI_Comm_rank(comm, &rank);
    rs_job job;
    rs_grid grid;
    rs_store *store = NULL;
    int st = rs_job_load_with_default(o->job, opt_default_arch_file(), &job, err, sizeof err);
    if (st == RS_OK && (st = rs_grid_init(&grid, &job)) != RS_OK) {
        snprintf(err, sizeof err, "%s: %s", o->job, st == RS_E_NOMEM ? "out of memory"
                 : "the job has more than 2^63 trials");
        rs_job_free(&job);
    }
    if (st != RS_OK)
        rc = st == RS_E_NOMEM ? EXIT_ERROR : EXIT_BAD_INPUT;
    if (rc && rank == 0)
        fprintf(stderr, "repsweep run: %s\n", err);
    /* every rank read the same file; agree anyway, so that no rank waits for a quitter */
    MPI_Allreduce(MPI_IN_PLACE, &rc, 1, MPI_INT, MPI_MAX, comm);
    if (rc)
        return rc;
    warn_threads(o, comm);
    uint64_t hash = rs_store_hash_text(job.text);
    if (rank == 0)
        rc = open_output(o, &job, &grid, hash, journal, sizeof journal, &store);
    MPI_Bcast(&rc, 1, MPI_INT, 0, comm);
    if (rc == EXIT_DONE) {
        char mpi_version[MPI_MAX_LIBRARY_VERSION_STRING];
        int mpi_version_len = 0;
        MPI_Get_library_version(mpi_version, &mpi_version_len);
        mpi_version[mpi_version_len < MPI_MAX_LIBRARY_VERSION_STRING ? mpi_version_len : 0] = 0;
        for (char *c = mpi_version; *c; c++) /* one line: the text ends in newlines */
            if (*c == '\n')
                *c = ' ';
        results_target target = {.out = o->out, .grid = &grid,
                                 .info = {job.name, job.text, hash, command_line, 0,
                                          mpi_version, o->shard}};
        rs_sweep_options so;
        rs_sweep_report rep;
        if (store)
            target.info.created = rs_store_created(store);
        rs_sweep_options_default(&so);
        so.max_chunk = (uint64_t)o->chunk;
        so.progress_seconds = o->progress;
        so.checkpoint_seconds = o->save_every;
        so.progress = print_progress;
        so.checkpoint = checkpoint;
        so.ctx = &target;
        so.stop = &stop_signal;
        so.threads = (int)o->threads;
        so.hang_floor_seconds = o->hang_seconds;
        so.stop_wait_seconds = o->hang_seconds < 30 ? o->hang_seconds : 30;
        so.notice = print_notice;
        so.max_attempts = o->no_retry ? 1 : MAX_ATTEMPTS;
        fail_hook hook;
        read_fail_hook(&hook);
        if (hook.n > 0) {
            so.trial = hooked_trial;
            so.trial_params = &hook;
        }
        double sweep_began = seconds_now();
        st = rs_sweep_run(comm, &grid, store, &so, &rep);
        double sweep_wall = seconds_now() - sweep_began;
        if (rank == 0 && rep.lost_ranks > 0) {
            /* a lost rank never joins a collective: rank 0 ends the job (cmd_run aborts) */
            rc = finish(o, store, &target, st, &rep, NULL, sweep_wall);
            rs_sweep_report_free(&rep);
            *lost = 1;
            rs_store_close(&store);
            rs_grid_free(&grid);
            rs_job_free(&job);
            return rc;
        }
        /* every rank's peak memory to rank 0 (NULL there if it cannot be allocated) */
        int ranks;
        MPI_Comm_size(comm, &ranks);
        long long peak = opt_peak_memory_bytes(), *peaks = NULL;
        if (rank == 0)
            peaks = malloc(sizeof *peaks * (size_t)ranks);
        int have = rank != 0 || peaks != NULL;
        MPI_Bcast(&have, 1, MPI_INT, 0, comm);
        if (have)
            MPI_Gather(&peak, 1, MPI_LONG_LONG, peaks, 1, MPI_LONG_LONG, 0, comm);
        if (rank == 0) {
            rc = finish(o, store, &target, st, &rep, peaks, sweep_wall);
            rs_sweep_report_free(&rep);
        }
        free(peaks);
        MPI_Bcast(&rc, 1, MPI_INT, 0, comm);
    }
    rs_store_close(&store);
    rs_grid_free(&grid);
    rs_job_free(&job);
    return rc;
}

int cmd_run(int argc, char **argv)
{
    run_options o;
    char command_line[8192];
    /* before getopt, which permutes argv */
    opt_command_line(argc, argv, command_line, sizeof command_line);
    int p = parse(argc, argv, &o);
    if (p)
        return p > 0 ? EXIT_DONE : EXIT_BAD_INPUT;
    int provided;
    /* only the main thread calls MPI; OpenBLAS's and OpenMP's threads never do */
    if (MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
        fprintf(stderr, "repsweep run: MPI_Init_thread failed\n");
        return EXIT_ERROR;
    }
    install_signal_handlers();
    rs_blas_single_thread(); /* --threads goes to the network (rs_net_set_threads) */
    int lost = 0;
    int rc = run(&o, command_line, MPI_COMM_WORLD, &lost);
    if (lost) {
        /* a rank stopped answering: MPI_Finalize could wait for it for ever. Everything is
         * saved; MPI_Abort makes mpirun (or srun) end every rank, and mpirun exits with rc. */
        fflush(stdout);
        fflush(stderr);
        MPI_Abort(MPI_COMM_WORLD, rc);
    }
    MPI_Finalize();
    if (results_write_failed)
        opt_exit_after_failed_write(rc);
    return rc;
}
