/* sweep.h — running a job's trials across MPI ranks.
 *
 * Owns: computing one trial of a grid into its record (network trials through trial.h,
 * theory-only trials through theory.h), and the schedule: rank 0 (the master) orders the
 * trials of the store's shard not yet in the store by estimated cost (rs_grid_trial_seconds,
 * most expensive first), cuts them into chunks and hands a chunk to each worker rank; a
 * worker sends back
 * its chunk's records and gets the next chunk (dynamic), the master appends the records to
 * the store (store.h: fsync'ed journal). With one rank the master computes the chunks itself.
 * A stop flag (set by the caller's signal handler) makes the master hand out no more work,
 * tell busy workers to stop, collect what they finished, and return; a trial in progress is
 * abandoned (within one epoch when the rank's own flag is set) and not recorded.
 * A trial's record depends only on the grid and its index, never on ranks or order.
 * Messages carry records as bytes: all ranks must be the same binary on the same kind of
 * machine (as in any MPI job of this program).
 * Never: writes netCDF (the caller does, through a checkpoint callback and at the end),
 * parses files, prints (progress goes to a callback). Workers never touch files. */
#ifndef REPSWEEP_SWEEP_H
#define REPSWEEP_SWEEP_H

#include <mpi.h>
#include <signal.h>
#include <stdint.h>

#include "repsweep/grid.h"
#include "repsweep/store.h"

/* A snapshot of the sweep, for progress reports (master only). */
typedef struct {
    uint64_t total;          /* trials of the store's shard (the grid's, unsharded) */
    uint64_t done;           /* in the store (earlier runs included) */
    uint64_t done_here;      /* finished by this run */
    uint64_t failures;       /* stored trials whose status is not ok (earlier runs included) */
    double seconds;          /* wall time of this run so far */
    double cost_todo;        /* estimated core-seconds of the trials this run set out to do */
    double cost_done;        /* ... of those handed out and returned (ETA: scale seconds) */
    int ranks;
} rs_sweep_progress;

typedef struct {
    uint64_t max_chunk;          /* most trials in one chunk (>= 1) */
    double chunk_seconds;        /* a chunk also closes once its estimated cost reaches this */
    double progress_seconds;     /* call `progress` this often (0: never) */
    double checkpoint_seconds;   /* call `checkpoint` this often (0: never) */
    void (*progress)(const rs_sweep_progress *p, void *ctx);
    /* e.g. rewrite the results file from the store. Called on the scheduling (main) thread
     * of rank 0, between messages: it must return quickly (workers wait for their next chunk
     * meanwhile; `repsweep run` only takes a snapshot and writes it in a background thread).
     * Its return value is ignored: the journal holds every finished trial, so a failed
     * checkpoint never stops the sweep; the callback reports it. */
    int (*checkpoint)(const rs_store *store, void *ctx);
    void *ctx;
    volatile sig_atomic_t *stop; /* this rank's stop flag (may be NULL) */
    int threads;                 /* per rank, for the dense maps (rs_trial_spec.threads) */
} rs_sweep_options;

/* max_chunk 64, chunk_seconds 2, progress every 10 s, checkpoint every 300 s, no callbacks. */
void rs_sweep_options_default(rs_sweep_options *o);

typedef struct {
    uint64_t computed;       /* trials finished and stored by this run */
    int interrupted;         /* the stop flag (or a worker's) ended the sweep early */
    int ranks;               /* entries of rank_times */
    double *rank_times;      /* per rank r: [2r] seconds spent computing trials, [2r+1] wall
                              * seconds in rs_sweep_run (rank 0's is the sweep's; a worker's
                              * ends when it is told DONE; rank 0 computes only when alone);
                              * NULL if it could not be allocated. Free: rs_sweep_report_free */
    char error[512];         /* when rs_sweep_run returns an error: the store's message
                              * (names the journal and the system's reason) */
} rs_sweep_report;

/* Not collective. */
void rs_sweep_report_free(rs_sweep_report *report);

/* Bytes rank 0's schedule holds per trial still to run (its index and estimated cost). */
#define RS_SWEEP_PLAN_BYTES 16

/* Run every trial of `grid` in the store's shard (store.h, grid.h) that `store` does not
 * hold. Collective over `comm`: every rank
 * calls it with the same grid and options; `store` is used on rank 0 only (NULL elsewhere).
 * Returns RS_OK when the sweep ended (finished or interrupted: see report, filled on rank
 * 0), or an RS_E_* code on rank 0 when the store failed (an append to the journal: the
 * sweep stops; what was stored stays stored). Workers return RS_OK unless MPI fails. */
int rs_sweep_run(MPI_Comm comm, const rs_grid *grid, rs_store *store,
                 const rs_sweep_options *o, rs_sweep_report *report);

/* Compute trial `index` of `grid` into `rec`, which has room for the grid's record
 * (rs_store_record_bytes of rs_store_layout_of(grid): the summary, then the per-stage results
 * and trajectories the job records). Not collective (no MPI). Returns RS_OK (the
 * record holds the outcome, failed fits and divergence included), RS_S_STOPPED when *o->stop
 * was set during training (nothing to record), RS_E_INVALID for an index outside the grid.
 * A trial that could not run (e.g. out of memory) is an RS_OK record with a negative
 * status, so that a sweep goes on. */
int rs_sweep_trial(const rs_grid *grid, uint64_t index, const rs_sweep_options *o,
                   rs_store_record *rec);

#endif
