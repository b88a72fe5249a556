/* main.c — `repsweep`: dispatch to subcommands. The CLI is the only place that parses argv
 * or exits. */
#include <gsl/gsl_errno.h>
#include <stdio.h>
#include <string.h>

#include "commands.h"

#include "repsweep_git_commit.h" /* generated at build time: REPSWEEP_GIT_COMMIT */

#ifndef REPSWEEP_VERSION
#define REPSWEEP_VERSION "unknown"
#endif

static void usage(FILE *out)
{
    fprintf(out,
            "usage: repsweep COMMAND [options]\n"
            "\n"
            "Train deep networks on two data points and compare how their hidden\n"
            "representations move with the effective theory of van Rossem & Saxe (ICML 2024).\n"
            "\n"
            "commands:\n"
            "  trial     train one network, fit the theory's rates, predict the final distance\n"
            "  check     validate job files; print trials, core-hours, memory and output size\n"
            "  run       run a job's trials (under MPI or in one process) into a resumable\n"
            "            netCDF results file (--shard I/N: one slice, for job arrays)\n"
            "  status    a sweep's progress from its results file (safe while it runs)\n"
            "  merge     combine the results files of a job's shards into one\n"
            "  fit       fit the theory's rates to trajectories from files (CSV, trial files)\n"
            "\n"
            "  repsweep COMMAND --help   shows a command's options\n"
            "  repsweep --version        prints the version and git commit\n");
}

int main(int argc, char **argv)
{
    /* a failed fit or ODE solve must become a trial status, never an abort */
    gsl_set_error_handler_off();
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(cmd, "--version") == 0) {
        printf("repsweep %s (git %s)\n", REPSWEEP_VERSION, REPSWEEP_GIT_COMMIT);
        return 0;
    }
    if (strcmp(cmd, "trial") == 0)
        return cmd_trial(argc - 1, argv + 1);
    if (strcmp(cmd, "check") == 0)
        return cmd_check(argc - 1, argv + 1);
    if (strcmp(cmd, "run") == 0)
        return cmd_run(argc - 1, argv + 1);
    if (strcmp(cmd, "status") == 0)
        return cmd_status(argc - 1, argv + 1);
    if (strcmp(cmd, "merge") == 0)
        return cmd_merge(argc - 1, argv + 1);
    if (strcmp(cmd, "fit") == 0)
        return cmd_fit(argc - 1, argv + 1);
    fprintf(stderr, "repsweep: unknown command '%s' (expected: trial, check, run, status, "
            "merge or fit; see repsweep --help)\n", cmd);
    return 2;
}
