/* job.h — reading repsweep's configuration files (libconfig).
 *
 * Owns: parsing architecture records (jobs/architectures.cfg, or inline in a job file) into
 * rs_arch values, and job files (jobs/README.md documents every key) into an rs_job: the
 * job's settings and its blocks, each the axes of a Cartesian grid of trials. Every error
 * names the file, the line and what was expected; unknown keys are errors, not ignored.
 * The loaded job keeps the job file's full text (a results file records it). The only module
 * that includes libconfig.h.
 * Never: enumerates trials (grid.h does), trains, writes files, talks MPI. */
#ifndef REPSWEEP_JOB_H
#define REPSWEEP_JOB_H

#include <stddef.h>
#include <stdint.h>

#include "repsweep/net.h"

typedef struct {
    rs_arch *arch;
    int count;
} rs_arch_table;

/* Load every architecture of `path` (a list `architectures = ( {...}, ... )`).
 * On error returns RS_E_IO / RS_E_PARSE / RS_E_NOMEM and writes "file:line: message" into
 * err. The table is freed with rs_arch_table_free. */
int rs_arch_table_load(const char *path, rs_arch_table *table, char *err, size_t err_len);
void rs_arch_table_free(rs_arch_table *table);

/* libconfig's version, "MAJOR.MINOR.REVISION" (for provenance attributes). */
const char *rs_job_libconfig_version(void);

/* The architecture called `name`, or NULL. */
const rs_arch *rs_arch_table_find(const rs_arch_table *table, const char *name);

#define RS_JOB_NAME_MAX 64

typedef enum { RS_BLOCK_NETWORK = 0, RS_BLOCK_THEORY = 1 } rs_block_kind;

/* A list of numbers from the job file: a grid axis, or a list parallel to `gains`. */
typedef struct {
    double *v;
    int n;
} rs_values;

/* Seeds: an explicit list (list != NULL) or first, first + 1, ..., first + count - 1. */
typedef struct {
    long *list;
    long first;
    long count;
} rs_seeds;

/* One block of a job: the axes of a Cartesian product of trials.
 * Network blocks: arch x gain x input_gap x target_gap x seed. The gain axis has
 * gains.n values, or (gains.n == 0) one value per architecture, its own Table 1 gain.
 * lr and epochs are per (architecture, gain): lr.n == 0 means each architecture's own,
 * lr.n == 1 one value for every gain, else lr.v[i] belongs to gains.v[i] (likewise epochs).
 * Theory-only blocks: rate_h x rate_y x dh2_0 x dyhat2_0 x w_0 x input_gap x target_gap,
 * every point integrated over `theory_epochs` epochs; w_0.n == 0 means one derived value,
 * w = dyhat2_0 - sqrt(dyhat2_0) * target_gap (f2 - f1 = +sqrt(dyhat2_0)). */
typedef struct {
    char name[RS_JOB_NAME_MAX];
    int line;                       /* where the block starts in the job file */
    rs_block_kind kind;
    /* network blocks */
    rs_arch *arch;                  /* n_arch copies: from the architectures file or inline */
    int n_arch;
    rs_values gains, lr;
    long *epochs;                   /* n_epochs values (0: each architecture's own) */
    int n_epochs;
    rs_seeds seeds;
    /* theory-only blocks */
    rs_values rate_h, rate_y, dh2_0, dyhat2_0, w_0;
    long theory_epochs;
    /* both */
    rs_values input_gaps, target_gaps;
} rs_job_block;

typedef struct {
    char name[RS_JOB_NAME_MAX];
    char *path;                     /* the job file as given */
    char *text;                     /* the job file's full text, as read */
    char *architectures_file;       /* resolved against the job file's directory, or the
                                     * installed default (rs_job_load_with_default) */
    rs_precision precision;         /* default float64 */
    int all_layers;                 /* record dh2 at every stage (default 0) */
    long trajectory_stride;         /* 0: no trajectories; N: every N-th epoch (default 0) */
    double converge_loss;           /* default 1e-3 (the authors' threshold) */
    double stop_loss;               /* 0: run all epochs (default) */
    rs_job_block *blocks;
    int n_blocks;
} rs_job;

/* Parse the job file `path`: check every key, type and range, resolve architecture names
 * through the architectures file, and fill `job`. On error returns RS_E_IO / RS_E_PARSE /
 * RS_E_NOMEM with "file:line: message" (or "file: message" when no line applies) in err;
 * `job` is then empty. Free with rs_job_free (safe on an empty or failed job). */
int rs_job_load(const char *path, rs_job *job, char *err, size_t err_len);
/* As rs_job_load; a job that sets no architectures_file and has no architectures.cfg beside
 * it uses `default_arch_file` (the installed one; NULL: none). */
int rs_job_load_with_default(const char *path, const char *default_arch_file, rs_job *job,
                             char *err, size_t err_len);
void rs_job_free(rs_job *job);
/* A 32-bit digest of every architecture record the job's network blocks use, as resolved
 * (every field, in block order). The job file's text does not cover an architectures file
 * it names, so a journal keeps this digest too: an edited architectures file between a run
 * and its resumption would otherwise put two different networks in one results file. */
uint32_t rs_job_arch_digest(const rs_job *job);

/* The gain, learning rate and epochs of a network block's architecture `arch` at gain index
 * `gain` (0 <= gain < rs_job_block_gain_count). */
int rs_job_block_gain_count(const rs_job_block *b);
double rs_job_block_gain(const rs_job_block *b, int arch, int gain);
double rs_job_block_lr(const rs_job_block *b, int arch, int gain);
long rs_job_block_epochs(const rs_job_block *b, int arch, int gain);
long rs_seeds_at(const rs_seeds *s, long i);

#endif
