/* cmd_merge.c — `repsweep merge --out MERGED.nc SHARD.nc [SHARD.nc ...]`: the results files
 * of a job's shards (repsweep run --shard I/N) into one, as an unsharded run writes it. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "commands.h"
#include "options.h"
#include "repsweep/grid.h"
#include "repsweep/ncio.h"
#include "repsweep/status.h"

static void merge_usage(FILE *out)
{
    fprintf(out,
        "usage: repsweep merge --out MERGED.nc SHARD.nc [SHARD.nc ...]\n"
        "\n"
        "Combine the results files of one job's shards (repsweep run --shard I/N, e.g. the\n"
        "tasks of a SLURM job array) into one file with every trial sorted by grid index:\n"
        "the merge of all shards equals the results file of an unsharded run of the job in\n"
        "every variable but the timings (train_seconds, fit_seconds). Its global attributes\n"
        "are the first input's, with shard_index 0, shard_count 1, trials_expected =\n"
        "grid_trials, the earliest created and latest updated of the inputs, this command\n"
        "line as command_line, and merged_from (the input paths). Written to MERGED.nc.tmp,\n"
        "fsync'ed and renamed, like a run's results.\n"
        "Shards that are not finished merge too: repsweep says which trials are missing\n"
        "(\"merged X of Y trials; missing: shard 2 of 3 (K trials)\"); merge again later.\n"
        "\n"
        "Refused (exit 2, naming the files): a file that is not a repsweep results file,\n"
        "files of different jobs (job_hash) or layouts, shards that overlap (the same shard\n"
        "twice, shards of different N sharing trials, the same trial in two files), an --out\n"
        "that is one of the inputs, has a journal (a run's output) or cannot be created.\n"
        "\n"
        "  --out MERGED.nc   the merged file (required; replaced if it exists)\n"
        "  -h, --help        this text\n"
        "\n"
        "Exit status: 0 merged (complete or not); 1 error writing MERGED.nc (I/O, memory);\n"
        "2 bad input.\n");
}

/* Is `out` the same file as `input` (by name, or by device and inode)? */
static int same_file(const char *out, const struct stat *out_st, int out_exists,
                     const char *input)
{
    struct stat st;
    if (strcmp(out, input) == 0)
        return 1;
    return out_exists && stat(input, &st) == 0 && st.st_dev == out_st->st_dev &&
           st.st_ino == out_st->st_ino;
}

/* Refuse an --out that is an input, a run's output or cannot be created; returns 0 or -1
 * (message printed). */
static int check_out(const char *out, char **inputs, int n)
{
    struct stat st;
    char journal[4096];
    int exists = stat(out, &st) == 0;
    for (int i = 0; i < n; i++)
        if (same_file(out, &st, exists, inputs[i])) {
            fprintf(stderr, "repsweep merge: --out %s is also an input (%s): write the merge "
                    "to a new file\n", out, inputs[i]);
            return -1;
        }
    snprintf(journal, sizeof journal, "%s.journal", out);
    if (stat(journal, &st) == 0) {
        fprintf(stderr, "repsweep merge: --out %s has a journal %s: it is the output of a "
                "`repsweep run`, which would overwrite the merge; write it to a new file\n",
                out, journal);
        return -1;
    }
    char err[1024];
    if (rs_ncio_check_creatable(out, err, sizeof err) != RS_OK) {
        fprintf(stderr, "repsweep merge: --out: %s\n", err);
        return -1;
    }
    return 0;
}

/* Append "shard I of N (K trials)" to the list in buf (at most `max` entries listed). */
static void add_missing(char *buf, size_t len, int *listed, uint64_t index, uint64_t count,
                        uint64_t trials)
{
    size_t used = strlen(buf);
    if (*listed < 8 && used < len)
        snprintf(buf + used, len - used, "%sshard %llu of %llu (%llu trials)",
                 *listed ? ", " : "", (unsigned long long)index, (unsigned long long)count,
                 (unsigned long long)trials);
    else if (*listed == 8 && used < len)
        snprintf(buf + used, len - used, ", ...");
    (*listed)++;
}

/* What is missing from the merge, into buf: the given shards that are not complete and, if
 * every input has the same N, the shards of N not given; with mixed N, the trials no given
 * shard holds. */
static void describe_missing(const rs_ncio_merge_input *in, int n, uint64_t grid_trials,
                             char *buf, size_t len)
{
    int listed = 0, same_count = 1;
    uint64_t covered = 0;
    buf[0] = 0;
    for (int i = 0; i < n; i++) {
        same_count = same_count && in[i].shard.count == in[0].shard.count;
        covered += in[i].expected;
        if (in[i].done < in[i].expected)
            add_missing(buf, len, &listed, in[i].shard.index, in[i].shard.count,
                        in[i].expected - in[i].done);
    }
    if (covered >= grid_trials)
        return;
    if (!same_count) {
        size_t used = strlen(buf);
        snprintf(buf + used, len - used, "%s%llu trials in no given shard", listed ? ", " : "",
                 (unsigned long long)(grid_trials - covered));
        return;
    }
    uint64_t count = in[0].shard.count;
    for (uint64_t index = 0; index < count; index++) {
        int given = 0;
        for (int i = 0; i < n && !given; i++)
            given = in[i].shard.index == index;
        rs_grid_shard s = {index, count};
        uint64_t trials = rs_grid_shard_trials(&s, 0, grid_trials);
        if (!given && trials > 0)
            add_missing(buf, len, &listed, index, count, trials);
    }
}

int cmd_merge(int argc, char **argv)
{
    static const struct option long_options[] = {
        {"out", required_argument, 0, 'o'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    char command_line[8192], err[2048], missing[1024];
    const char *out = NULL;
    int c;
    opt_command_line(argc, argv, command_line, sizeof command_line);
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", long_options, NULL)) != -1) {
        if (c == 'o') {
            if (opt_path("merge", "--out", optarg, &out) != 0)
                return 2;
        } else if (c == 'h') {
            merge_usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "repsweep merge: unknown or incomplete option '%s' (see repsweep "
                    "merge --help)\n", argv[optind - 1]);
            return 2;
        }
    }
    if (!out || optind >= argc) {
        fprintf(stderr, "repsweep merge: expected --out MERGED.nc and at least one results "
                "file (see repsweep merge --help)\n");
        return 2;
    }
    int n = argc - optind;
    if (check_out(out, argv + optind, n) != 0)
        return 2;
    rs_ncio_merge_input *in = calloc((size_t)n, sizeof *in);
    if (!in) {
        fprintf(stderr, "repsweep merge: out of memory\n");
        return 1;
    }
    for (int i = 0; i < n; i++)
        in[i].path = argv[optind + i];
    uint64_t grid_trials = 0;
    int st = rs_ncio_merge_sweeps(out, in, (size_t)n, command_line, &grid_trials, err,
                                  sizeof err);
    if (st != RS_OK) {
        char note[128];
        fprintf(stderr, "repsweep merge: %s%s\n", err,
                st == RS_E_INVALID ? "" : opt_full_disk_note(out, note));
        free(in);
        if (st != RS_E_INVALID)
            opt_exit_after_failed_write(1);
        return 2;
    }
    uint64_t merged = 0;
    for (int i = 0; i < n; i++)
        merged += in[i].done;
    describe_missing(in, n, grid_trials, missing, sizeof missing);
    if (missing[0])
        fprintf(stderr, "merged %llu of %llu trials; missing: %s; results in %s\n",
                (unsigned long long)merged, (unsigned long long)grid_trials, missing, out);
    else
        fprintf(stderr, "merged %llu of %llu trials from %d file%s; results in %s\n",
                (unsigned long long)merged, (unsigned long long)grid_trials, n,
                n > 1 ? "s" : "", out);
    free(in);
    return 0;
}
