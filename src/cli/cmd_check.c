/* cmd_check.c — `repsweep check JOB...`: validate job files and estimate what they cost. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "options.h"
#include "repsweep/grid.h"
#include "repsweep/job.h"
#include "repsweep/status.h"
#include "repsweep/ncio.h"
#include "repsweep/store.h"
#include "repsweep/sweep.h"

/* Bytes per trial rank 0 holds: the store's entry and a checkpoint's snapshot of it
 * (store.h), and the schedule's entry (sweep.h). No record: they stay in the journal. */
#define RANK0_TRIAL_BYTES (2 * RS_STORE_ENTRY_BYTES + RS_SWEEP_PLAN_BYTES)

static void check_usage(FILE *out)
{
    fprintf(out,
        "usage: repsweep check [--help] JOB.cfg...\n"
        "\n"
        "Validate job files (jobs/README.md documents every key) and print, per block and in\n"
        "total: the number of trials, the estimated core-hours (measured cost model, grid.c;\n"
        "an upper bound when stop_loss ends trials early), the memory one rank needs (the\n"
        "largest trial: network workspace and trajectory buffers) and the estimated size of\n"
        "the results; then the memory of rank 0: 48 bytes per trial (its index in the\n"
        "journal, a checkpoint's copy of it, its place in the schedule) and the results\n"
        "writer's bounded buffers; the records stay in the journal. Nothing is trained.\n"
        "\n"
        "  -h, --help  this text\n"
        "\n"
        "Exit status: 0 when every job file is valid; 2 otherwise, with one line per invalid\n"
        "file: \"repsweep check: FILE:LINE: what was expected\"; 1 when out of memory.\n");
}

/* bytes as "12.3 MiB" */
static const char *human_bytes(double bytes, char *buf, size_t len)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
    int u = 0;
    while (bytes >= 1024 && u < 5) {
        bytes /= 1024;
        u++;
    }
    snprintf(buf, len, u ? "%.1f %s" : "%.0f %s", bytes, units[u]);
    return buf;
}

static void print_row(const char *name, const char *kind, const rs_grid_estimate *e,
                      const char *axes)
{
    char mem[32], out[32];
    printf("  %-26s %-8s %10llu %12.4g %12s %12s  %s\n", name, kind,
           (unsigned long long)e->trials, e->seconds / 3600.0,
           human_bytes(e->rank_bytes, mem, sizeof mem),
           human_bytes(e->output_bytes, out, sizeof out), axes);
}

/* "2 archs x 5 gains x ..." for a block */
static void describe_axes(const rs_job_block *b, char *buf, size_t len)
{
    if (b->kind == RS_BLOCK_NETWORK)
        snprintf(buf, len, "%d arch x %d gain x %d input_gap x %d target_gap x %ld seed",
                 b->n_arch, rs_job_block_gain_count(b), b->input_gaps.n, b->target_gaps.n,
                 b->seeds.count);
    else
        snprintf(buf, len, "%d rate_h x %d rate_y x %d dh2_0 x %d dyhat2_0 x %d w_0 x "
                 "%d input_gap x %d target_gap", b->rate_h.n, b->rate_y.n, b->dh2_0.n,
                 b->dyhat2_0.n, b->w_0.n ? b->w_0.n : 1, b->input_gaps.n, b->target_gaps.n);
}

static void report(const rs_job *job, const rs_grid *grid)
{
    printf("%s: job '%s' is valid: %s", job->path, job->name,
           rs_precision_name(job->precision));
    printf(", %s", job->all_layers ? "all layers" : "observed layer");
    if (job->trajectory_stride > 0)
        printf(", trajectories every %ld epochs", job->trajectory_stride);
    else
        printf(", no trajectories");
    printf(", converge_loss %g", job->converge_loss);
    if (job->stop_loss > 0)
        printf(", stop_loss %g", job->stop_loss);
    printf("\n  %-26s %-8s %10s %12s %12s %12s  %s\n", "block", "kind", "trials",
           "core-hours", "memory/rank", "output", "axes");
    for (int i = 0; i < job->n_blocks; i++) {
        const rs_job_block *b = &job->blocks[i];
        rs_grid_estimate e;
        char axes[256];
        rs_grid_estimate_of(grid, i, &e);
        describe_axes(b, axes, sizeof axes);
        print_row(b->name, b->kind == RS_BLOCK_NETWORK ? "network" : "theory", &e, axes);
    }
    rs_grid_estimate total;
    rs_grid_estimate_of(grid, -1, &total);
    print_row("total", "", &total, "");
    rs_store_layout layout;
    rs_store_layout_of(grid, &layout);
    char mem[32];
    double rank0 = (double)total.trials * RANK0_TRIAL_BYTES +
                   (double)rs_ncio_sweep_writer_bytes(&layout);
    printf("  rank 0 (schedules, writes): about %s (%d bytes a trial and the results "
           "writer's buffers; under MPI; a single process needs this plus memory/rank)\n",
           human_bytes(rank0, mem, sizeof mem), RANK0_TRIAL_BYTES);
}

/* Check one file; returns the exit status it deserves. */
static int check_one(const char *path)
{
    char err[1024];
    rs_job job;
    int st = rs_job_load_with_default(path, opt_default_arch_file(), &job, err, sizeof err);
    if (st != RS_OK) {
        fprintf(stderr, "repsweep check: %s\n", err);
        return st == RS_E_NOMEM ? 1 : 2;
    }
    rs_grid grid;
    st = rs_grid_init(&grid, &job);
    if (st != RS_OK) {
        fprintf(stderr, "repsweep check: %s: %s\n", path,
                st == RS_E_NOMEM ? "out of memory" : "the job has more than 2^63 trials");
        rs_job_free(&job);
        return st == RS_E_NOMEM ? 1 : 2;
    }
    report(&job, &grid);
    rs_grid_free(&grid);
    rs_job_free(&job);
    return 0;
}

int cmd_check(int argc, char **argv)
{
    static const struct option long_options[] = {{"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    opterr = 0;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "h", long_options, NULL)) != -1) {
        if (c == 'h') {
            check_usage(stdout);
            return 0;
        }
        fprintf(stderr, "repsweep check: unknown option '%s' (see repsweep check --help)\n",
                argv[optind - 1]);
        return 2;
    }
    if (optind >= argc) {
        fprintf(stderr, "repsweep check: expected a job file (see repsweep check --help)\n");
        return 2;
    }
    int rc = 0;
    for (int i = optind; i < argc; i++) {
        int one = check_one(argv[i]);
        rc = one > rc ? one : rc;
    }
    return rc;
}
