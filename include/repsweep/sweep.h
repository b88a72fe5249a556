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
 * Liveness: a worker's chunk has a deadline, hang_floor_seconds + hang_factor x its
 * estimated cost (rs_grid_trial_seconds) from when it was handed out (the first "ready" of
 * every worker: hang_floor_seconds from the start). A worker that misses it is "lost": its
 * chunk goes back to the front of the plan for the live workers, and the master never
 * waits on it again. If it answers later it is live again: records already stored are
 * dropped (a trial is never recorded twice), the others stored. Once stopping, the master
 * waits at most stop_wait_seconds for busy workers. With a worker still lost at the end the
 * master returns without the collective end (report.lost_ranks > 0, no rank_times): the
 * caller must then end the job without waiting on that rank (cmd_run: MPI_Abort from main).
 * The work is a callback (options.trial, rs_sweep_trial by default), so that the schedule
 * can be tested with fake trials.
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
    uint64_t lost;           /* workers now lost (missed their chunk's deadline) */
    uint64_t reassigned;     /* chunks handed to another rank after their worker was lost */
    double seconds;          /* wall time of this run so far */
    double cost_todo;        /* estimated core-seconds of the trials this run set out to do */
    double cost_done;        /* ... of those handed out and returned (ETA: scale seconds) */
    int ranks;
} rs_sweep_progress;

typedef struct rs_sweep_options rs_sweep_options;

/* The work: compute trial `index` into `rec` (room for the grid's record), as
 * rs_sweep_trial does (same returns); `params` is options.trial_params. */
typedef int (*rs_sweep_trial_fn)(const rs_grid *grid, uint64_t index,
                                 const rs_sweep_options *o, rs_store_record *rec,
                                 void *params);

struct rs_sweep_options {
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
    rs_sweep_trial_fn trial;     /* the work (NULL: rs_sweep_trial) */
    void *trial_params;
    double hang_floor_seconds;   /* a chunk's deadline: floor + factor x estimated cost */
    double hang_factor;
    double stop_wait_seconds;    /* once stopping, wait at most this for busy workers */
    /* a stored trial that could not run (rs_store_could_not_run) runs again while it has
     * fewer than this many records (rs_store_wants; 1: never retried) */
    unsigned max_attempts;
    /* a line for the user when a worker is lost or answers again (may be NULL) */
    void (*notice)(const char *text, void *ctx);
};

/* max_chunk 64, chunk_seconds 2, progress every 10 s, checkpoint every 300 s, a chunk's
 * deadline 120 s + 10 x its estimated cost, stop wait 30 s, 3 attempts, no callbacks. */
void rs_sweep_options_default(rs_sweep_options *o);

typedef struct {
    uint64_t computed;       /* trials finished and stored by this run */
    int interrupted;         /* the stop flag (or a worker's) ended the sweep early */
    int ranks;               /* entries of rank_times */
    double *rank_times;      /* per rank r: [2r] seconds spent computing trials, [2r+1] wall
                              * seconds in rs_sweep_run (rank 0's is the sweep's; a worker's
                              * ends when it is told DONE; rank 0 computes only when alone);
                              * NULL if it could not be allocated, or a rank was lost.
                              * Free: rs_sweep_report_free */
    int lost_ranks;          /* workers lost at the end: no collective end was done */
    uint64_t reassigned;     /* chunks rerun elsewhere after their worker was lost */
    char message[1024];      /* the cause when rs_sweep_run does not return RS_OK (rank 0):
                              * for the journal, the store's message (its path and the
                              * system's reason) */
} rs_sweep_report;

/* Not collective. */
void rs_sweep_report_free(rs_sweep_report *report);

/* Bytes rank 0's schedule holds per trial still to run (its index and estimated cost). */
#define RS_SWEEP_PLAN_BYTES 16

/* Run every trial of `grid` in the store's shard (store.h, grid.h) that `store` does not
 * hold, and (once per run) those whose last record could not run, up to o->max_attempts
 * records (rs_store_wants). Collective over `comm` (unless a worker is lost: see above): every rank
 * calls it with the same grid and options; `store` is used on rank 0 only (NULL elsewhere).
 * Returns RS_OK when the sweep ended (finished or interrupted: see report, filled on rank
 * 0), or an RS_E_* code on rank 0 when the store failed (an append to the journal) or memory
 * ran out (the sweep stops; what was stored stays stored; report.message names the cause
 * and, for the journal, its path and the system's reason); a checkpoint's result is the
 * callback's business and never stops the sweep. Every rank returns RS_E_NOMEM if one could
 * not allocate its buffers (nothing ran). Workers never abort. */
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
