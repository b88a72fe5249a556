/* grid.h — the trials of a job, enumerated, and what they will cost.
 *
 * Owns: the one fixed order of a job's trials, so that a 64-bit index names every trial:
 * blocks in file order; in a network block the Cartesian product architecture x gain x
 * input_gap x target_gap x seed, in a theory-only block rate_h x rate_y x dh2_0 x dyhat2_0
 * x w_0 x input_gap x target_gap, the last axis varying fastest and each axis in the order
 * the job file lists it. Index <-> coordinates, the values at given coordinates (and the
 * rs_trial_spec of a network trial), the count per block, and the cost model: estimated
 * seconds per trial (measured, see grid.c), memory per rank and output bytes, which
 * `repsweep check` prints and a scheduler can use to balance ranks; shards (deterministic
 * slices of the order, for job arrays) and the trials per architecture of a shard.
 * The grid borrows its job (rs_job, job.h): the job must outlive it.
 * Never: parses files (job.h does), trains, writes files, talks MPI. */
#ifndef REPSWEEP_GRID_H
#define REPSWEEP_GRID_H

#include <stddef.h>
#include <stdint.h>

#include "repsweep/job.h"
#include "repsweep/trial.h"

/* Where a trial sits in the grid: its block and an index on each of that block's axes.
 * Network blocks use arch, gain, input_gap, target_gap, seed (seed indexes the block's
 * seeds, rs_seeds_at gives the seed itself); theory-only blocks use rate_h, rate_y, dh2_0,
 * dyhat2_0, w_0, input_gap, target_gap. The axes a block does not have are 0. */
typedef struct {
    int block;
    long arch, gain, input_gap, target_gap, seed;
    long rate_h, rate_y, dh2_0, dyhat2_0, w_0;
} rs_grid_coords;

/* The values at a trial's coordinates. */
typedef struct {
    rs_block_kind kind;
    double input_gap, target_gap;   /* |x2 - x1|, |y2 - y1| (distances, not squared) */
    long epochs;                    /* training epochs, or the theory's integration horizon */
    /* network trials */
    const rs_arch *arch;            /* points into the job */
    double gain, lr;
    long seed;
    /* theory-only trials: the rates and the initial state of Eq. 7 */
    double rate_h, rate_y, dh2_0, dyhat2_0, w_0;
} rs_grid_trial;

typedef struct {
    const rs_job *job;
    uint64_t *block_start;          /* n_blocks + 1 values: block b holds the indices
                                     * [block_start[b], block_start[b + 1]) */
    int n_blocks;
} rs_grid;

/* Enumerate `job` (borrowed). RS_E_INVALID if it has more than 2^63 trials, RS_E_NOMEM. */
int rs_grid_init(rs_grid *grid, const rs_job *job);
void rs_grid_free(rs_grid *grid);

uint64_t rs_grid_count(const rs_grid *grid);
uint64_t rs_grid_block_count(const rs_grid *grid, int block);

/* index -> coordinates; RS_E_INVALID if index >= rs_grid_count. */
int rs_grid_coords_of(const rs_grid *grid, uint64_t index, rs_grid_coords *c);
/* coordinates -> index; RS_E_INVALID if any coordinate is outside its axis. */
int rs_grid_index_of(const rs_grid *grid, const rs_grid_coords *c, uint64_t *index);

/* The values at c (checked as rs_grid_index_of). */
int rs_grid_trial_at(const rs_grid *grid, const rs_grid_coords *c, rs_grid_trial *t);
/* The rs_trial_spec of a network trial: its values and the job's settings (precision,
 * all_layers, convergence). RS_E_INVALID for a theory-only trial. */
int rs_grid_trial_spec(const rs_grid *grid, const rs_grid_trial *t, rs_trial_spec *spec);

/* --- Shards: `repsweep run --shard I/N` --- */

/* Shard I of N holds the trials whose index k has k mod N == I. Round-robin rather than
 * contiguous ranges: a shard is a pure function of (I, N, index), never of ranks or of
 * what is done, and since an architecture x gain occupies a contiguous range of indices
 * (grid order), every shard gets about 1/N of each range, so the shards of a job array
 * cost about the same. {0, 1} is every trial. */
typedef struct {
    uint64_t index, count;          /* I and N: 0 <= I < N */
} rs_grid_shard;

int rs_grid_shard_has(const rs_grid_shard *s, uint64_t index);
/* The shard's trials among the indices [begin, end). */
uint64_t rs_grid_shard_trials(const rs_grid_shard *s, uint64_t begin, uint64_t end);
/* 1 if some index below `trials` is in both shards. */
int rs_grid_shards_overlap(const rs_grid_shard *a, const rs_grid_shard *b, uint64_t trials);

/* The job's architectures for per-architecture progress: their names in grid order of
 * first appearance (an architecture in several blocks counts once; theory-only blocks are
 * one entry named "theory"), and per name the trials of `shard` and of the whole grid.
 * The arrays have room for rs_grid_arch_slots(grid) entries; returns the number filled.
 * names point into the job (or are the literal "theory"). */
int rs_grid_arch_slots(const rs_grid *grid);
int rs_grid_arch_trials(const rs_grid *grid, const rs_grid_shard *shard, const char **names,
                        uint64_t *shard_trials, uint64_t *grid_trials);

/* --- Cost model (measurements and fit in grid.c) --- */

/* Estimated wall seconds of one training epoch of `arch` on one core. */
double rs_grid_epoch_seconds(const rs_arch *arch, rs_precision precision);
/* Estimated wall seconds of one trial on one core: training, then the fits. */
double rs_grid_trial_seconds(const rs_grid *grid, const rs_grid_trial *t);

typedef struct {
    uint64_t trials;
    double seconds;          /* estimated core-seconds of all its trials */
    double rank_bytes;       /* the largest single-trial workspace: what a rank needs */
    double output_bytes;     /* estimated bytes its trials add to a results file */
} rs_grid_estimate;

/* The estimate of one block (block >= 0) or of the whole job (block == -1: sums, and the
 * largest rank_bytes). Works per (architecture, gain), never per trial. */
int rs_grid_estimate_of(const rs_grid *grid, int block, rs_grid_estimate *e);

#endif
