/* store.h — a sweep's results: the per-trial record and the crash-safe journal of them.
 *
 * Owns: rs_store_record, the summary of one finished trial (network or theory-only), its
 * field table (names, long names, units: ncio writes one variable per field from it), the
 * job's layout of what a record holds beyond the summary (per-stage results with
 * all_layers, subsampled trajectories with trajectory_stride: a fixed number of doubles per
 * job, so every record of a journal has one size), and
 * the journal FILE.nc.journal, the sweep's checkpoint. The journal is append-only: a header
 * (magic, format version, record size, byte-order mark, the architectures' digest, the job's
 * name and 64-bit text hash, the grid's trial count, the creation time, the shard it holds;
 * CRC-32 over all of it)
 * then fixed-size records,
 * each followed by the CRC-32 of its bytes, fsync'ed after every appended batch. A kill can
 * only leave a partial or unchecked record at the end; opening truncates the file there, so
 * every record before it survives. A trial index is never appended twice (the store keeps a
 * bitmap of finished indices) unless its last record says it could not run (a retry), nor
 * one outside the journal's shard (grid.h; {0, 1} when not sharded). One process holds a
 * journal at a time (flock). The store's memory is bounded by the grid, not by the records:
 * two bitmaps, 16 bytes per stored trial (its index and its last record's journal slot) and
 * 12 per trial that could not run; records are read back from the journal
 * (rs_store_snapshot).
 * Records are native byte order and layout: a journal is read on the kind of machine that
 * wrote it (the header's byte-order mark refuses others).
 * Never: runs trials, talks MPI, writes netCDF (ncio.h does, from a snapshot). */
#ifndef REPSWEEP_STORE_H
#define REPSWEEP_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "repsweep/grid.h"
#include "repsweep/trial.h"

/* One finished trial. Every field is 8 bytes, so the struct has no padding and is written
 * as is (RS_STORE_RECORD_BYTES). Network trials: the trial's result (trial.h). Theory-only
 * trials: dh2/dyhat2/w_initial are the block's initial state, *_final the ODE's state after
 * `epochs_run` epochs, rate_h/rate_y the given rates, A_high/A_low/dh2_predicted Eq. 10-11;
 * the learning rate, losses, fit fields and timings are NaN (integers 0). The grid
 * coordinates are not stored: `index` gives them (grid.h). */
typedef struct {
    uint64_t index;            /* the trial's grid index */
    int64_t status;            /* RS_OK, RS_S_DIVERGED, RS_S_FIT_FAILED; theory: RS_OK,
                                * RS_S_COLLAPSED, RS_E_ODE; < 0: the trial could not run */
    int64_t converged;         /* final loss < converge_loss */
    int64_t fit_converged;     /* the Levenberg-Marquardt iteration met its tolerance */
    int64_t fit_rate_at_floor; /* a fitted rate sits at its floor: unconstrained */
    int64_t epochs_run;
    double lr;
    double dh2_initial, dyhat2_initial, w_initial, loss_initial;
    double dh2_final, dyhat2_final, w_final, loss_final;
    double rate_h, rate_y, rate_ybar, fit_loss, fit_loss_rel;
    double A_high, A_low, dh2_predicted;
    double train_seconds, fit_seconds;
} rs_store_record;

#define RS_STORE_RECORD_BYTES 200

/* The record schema: one field of rs_store_record, for writers that treat them uniformly
 * (the results file's per-trial variables, the single-trial file's scalars). netCDF
 * attributes follow CF-1.8: a short long_name, the explanation in comment, units UDUNITS-2
 * parses ("1" for the rates, whose per-epoch meaning the comment states: UDUNITS has no
 * epoch), flag_values/flag_meanings for the codes. A double field can be missing (NaN in
 * the record): the writer stores its _FillValue (RS_STORE_FILL_DOUBLE) there. */
typedef struct {
    const char *name;          /* the netCDF variable name */
    const char *long_name;     /* CF long_name (a few words) */
    const char *units;         /* CF units (UDUNITS-2) */
    const char *comment;       /* CF comment: what it means, its equation */
    size_t offset;             /* offsetof(rs_store_record, ...) */
    int is_int;                /* int64_t (1) or double (0) */
    int is_timing;             /* wall times: differ between runs of the same trial */
    int n_flags;               /* 0, or the codes below (CF flag_values / flag_meanings) */
    const long long *flag_values;
    const char *flag_meanings; /* blank-separated, one word per value */
} rs_store_field;

/* The _FillValue of every double a results or trial file holds (netCDF's default fill for
 * doubles: NCO and CDO skip it; NaN as a fill value they do not). */
#define RS_STORE_FILL_DOUBLE 9.9692099683868690e+36

/* The fields after `index`, in struct order; *count receives their number. */
const rs_store_field *rs_store_fields(int *count);

/* What a job records beyond the summary. A record is the rs_store_record followed directly
 * by rs_store_layout_doubles() doubles (the "extras"), in this order:
 *   per stage (n_stages each): stage_rate_h, stage_rate_y, stage_fit_loss_rel,
 *                              stage_dh2_final, stage_dh2_predicted;
 *   per recorded epoch (n_epochs each): dh2_traj, dyhat2_traj, w_traj, loss_traj (measured),
 *                              dh2_theory_traj, dyhat2_theory_traj, w_theory_traj,
 *                              loss_theory_traj (the fitted theory: Eq. 7 with the trial's
 *                              fitted rates from its measured epoch-0 state, Eq. 9 with its
 *                              fitted 1/tau_ybar; rs_trajectory's *_theory);
 *   per recorded epoch and stage (n_epochs x n_stages, row-major): dh2_stage_traj.
 * The recorded epochs are 0, stride, 2 stride, ... below the job's largest epoch count; a
 * trial with fewer stages or epochs (another architecture, an early stop, divergence) and a
 * theory-only trial hold NaN there; the theory curves are NaN too where there was no fit
 * (divergence, a failed fit, fit off). The layout is a function of the job alone. */
typedef struct {
    int n_stages;   /* stage columns: with all_layers the most stages of the job's
                     * architectures, else 0 */
    long stride;    /* trajectory_stride (0: no trajectories) */
    long n_epochs;  /* recorded epochs (0 without trajectories) */
} rs_store_layout;

void rs_store_layout_of(const rs_grid *grid, rs_store_layout *l);
size_t rs_store_layout_doubles(const rs_store_layout *l);
/* Bytes of one record: RS_STORE_RECORD_BYTES + 8 x rs_store_layout_doubles. Arrays of
 * records (the store's, the sweep's messages) step by this, not by sizeof(rs_store_record). */
size_t rs_store_record_bytes(const rs_store_layout *l);
/* Record i of an array of records of layout l. */
const rs_store_record *rs_store_record_at(const void *recs, const rs_store_layout *l, size_t i);
/* The extras of a record (valid when its layout has any). */
const double *rs_store_record_extras(const rs_store_record *rec);

typedef enum { RS_STORE_PER_STAGE, RS_STORE_PER_EPOCH, RS_STORE_PER_EPOCH_STAGE } rs_store_shape;

/* One array of the extras, for writers that treat them uniformly. */
typedef struct {
    const char *name, *long_name, *units, *comment;
    rs_store_shape shape;
    size_t offset;          /* in doubles from the start of the extras */
    size_t count;           /* doubles */
} rs_store_extra;

#define RS_STORE_EXTRAS_MAX 14
/* The arrays layout l has (none without all_layers and trajectories), in extras order, into
 * out (room for RS_STORE_EXTRAS_MAX); returns their number. */
int rs_store_extras(const rs_store_layout *l, rs_store_extra *out);

/* A network trial's record from its result (status, fits, Eq. 10-11, times) and, if the
 * layout has them, its per-stage results and subsampled trajectory. `rec` has room for
 * rs_store_record_bytes(l). */
void rs_store_record_from_trial(uint64_t index, const rs_store_layout *l,
                                const rs_trial_spec *spec, const rs_trajectory *traj,
                                const rs_trial_result *res, rs_store_record *rec);
/* A record with every double NaN (extras included) and every integer 0 (the start of a
 * theory record). */
void rs_store_record_clear(uint64_t index, const rs_store_layout *l, rs_store_record *rec);

/* 64-bit FNV-1a hash of a text (the job file's full text). */
uint64_t rs_store_hash_text(const char *text);

typedef struct rs_store rs_store;

/* Open the journal `path` for job `job_name` with text hash `job_hash`, architectures'
 * digest `arch_digest` (rs_job_arch_digest), `trials` trials, records of layout `l` (the
 * job's: rs_store_layout_of) and the trials of `shard` (count below 2^32), or create it (with
 * its header, fsync'ed) if it does not exist.
 * An existing journal is checked: header CRC, magic, version, byte order, job name and hash,
 * architectures' digest (journals of format 4 and later), record size, trial count and shard
 * (a journal of format 1, from before shards, holds shard 0/1); then its records are read: a
 * record that is short, fails its CRC, names an index outside the grid or the shard or one
 * already read is skipped (rs_store_damaged_records) if an intact record follows it, and
 * everything after the last intact record is truncated (rs_store_dropped_bytes).
 * The journal is locked against a second run. On error returns RS_E_IO (cannot create, read,
 * lock or truncate), RS_E_INVALID (not a journal, corrupt header, another job or shard: the
 * message in err says which and names the file) or RS_E_NOMEM, and *store is NULL. */
int rs_store_open(const char *path, const char *job_name, uint64_t job_hash,
                  uint32_t arch_digest, uint64_t trials,
                  const rs_store_layout *l, const rs_grid_shard *shard, rs_store **store,
                  char *err, size_t err_len);
/* Close and free; *store becomes NULL (safe on NULL). */
void rs_store_close(rs_store **store);

/* Append n records (rs_store_record_bytes apart), then fsync: after RS_OK they survive a kill
 * or power loss. A record whose index is outside the grid or already stored (unless its last
 * record could not run: a retry, see below) is refused (RS_E_INVALID) before anything is
 * written. RS_E_IO if the write or fsync failed (err: the journal, the system's reason, the
 * records kept): the records written whole before the failure (a full disk) are kept and
 * count as stored if they can be fsync'ed, a partial one after them is truncated (else the
 * next open drops it). */
int rs_store_append(rs_store *store, const void *recs, size_t n, char *err, size_t err_len);

/* Has trial `index` a record (one that ran, or the last attempt of one that could not)? */
int rs_store_is_done(const rs_store *store, uint64_t index);

/* Retries. A record whose status says the trial could not run (rs_store_could_not_run: < 0,
 * e.g. out of memory; not RS_E_ODE, a theory outcome that would only repeat) may be followed
 * in the journal by later records of the same trial (appended: the journal stays
 * append-only); the store's entry for the trial points at the last one (what a snapshot
 * reads), and rs_store_append accepts a record for such a trial. */
int rs_store_could_not_run(int64_t status);
/* Records in the journal of trial `index` if its last one could not run; 0 otherwise. */
unsigned rs_store_failed_attempts(const rs_store *store, uint64_t index);
/* Should a sweep run trial `index`: it has no record, or its last record could not run and
 * it has fewer than max_attempts records (max_attempts 1: never retry). */
int rs_store_wants(const rs_store *store, uint64_t index, unsigned max_attempts);
/* The journal's shard, and the trials it is meant to hold (the shard's, in the grid). */
const rs_grid_shard *rs_store_shard(const rs_store *store);
uint64_t rs_store_expected_count(const rs_store *store);
uint64_t rs_store_done_count(const rs_store *store);
uint64_t rs_store_trial_count(const rs_store *store);
/* Stored trials whose last record's status is not RS_OK. */
uint64_t rs_store_failed_count(const rs_store *store);

/* Stored trials by their last record's status, kept as records are read or appended (so
 * that a report needs no records in memory). */
typedef struct {
    uint64_t ok, could_not_run, diverged, fit_failed, collapsed, ode_error, other;
    int64_t could_not_run_example;  /* the status of one that could not run (for a message) */
    uint64_t retries;               /* could not run and have fewer than max_attempts records */
} rs_store_counts;

void rs_store_counts_get(const rs_store *store, unsigned max_attempts, rs_store_counts *c);
const rs_store_layout *rs_store_layout_get(const rs_store *store);

/* A snapshot of the stored records, to stream them back in grid-index order with bounded
 * memory. The store keeps no record in memory, only 16 bytes per stored trial (its index and
 * its slot in the journal); a snapshot copies those of the records stored so far and opens
 * the journal read-only, so it is independent of the store: another thread may read it
 * (pread: no shared file offset) while the store appends, and it outlives rs_store_close.
 * The journal's records are append-only and fsync'ed before they count, so a snapshot's
 * records never change under it (a record that did fails its CRC: RS_E_IO). */
typedef struct rs_store_snapshot rs_store_snapshot;

/* What the store keeps per stored trial, and a snapshot copies (bytes). */
#define RS_STORE_ENTRY_BYTES 16

/* The records stored so far. RS_E_NOMEM, or RS_E_IO (err names the journal and the system's
 * reason) if the journal cannot be opened. Not thread-safe against rs_store_append: call it
 * from the thread that appends. */
int rs_store_snapshot_take(const rs_store *store, rs_store_snapshot **snap, char *err,
                           size_t err_len);
size_t rs_store_snapshot_count(const rs_store_snapshot *snap);
const rs_store_layout *rs_store_snapshot_layout(const rs_store_snapshot *snap);
/* Records first .. first + n - 1 in grid-index order into recs (room for n records,
 * rs_store_record_bytes apart); the first call sorts the snapshot (O(count log count)).
 * RS_E_IO with err naming the journal when it cannot be read or a record's CRC or index no
 * longer matches. One thread at a time per snapshot. */
int rs_store_snapshot_read(rs_store_snapshot *snap, size_t first, size_t n, void *recs,
                           char *err, size_t err_len);
/* Close and free; *snap becomes NULL (safe on NULL). */
void rs_store_snapshot_free(rs_store_snapshot **snap);
/* Bytes dropped from the end of the journal when it was opened: whatever followed the last
 * intact record (a kill mid-append). */
uint64_t rs_store_dropped_bytes(const rs_store *store);
/* Damaged records found between intact ones when the journal was opened (CRC mismatch, a
 * trial outside this job or shard, or one already read): skipped, so their trials run again;
 * every intact record after them is kept. They stay in the file. */
uint64_t rs_store_damaged_records(const rs_store *store);
/* Unix time at which the journal was created (the results' `created`). */
int64_t rs_store_created(const rs_store *store);

/* What a journal's header says, and how many complete records follow it (by its size, at most
 * the trials its shard holds: the records are not read or checked, so damaged slots kept
 * between intact ones count too), for a reader that must not take the journal's lock
 * (`repsweep status` while the run writes). */
typedef struct {
    uint64_t job_hash, trials, records;
    rs_grid_shard shard;
} rs_store_peek_info;

/* Read the header of journal `path` (magic, CRC, byte order). RS_E_IO if it cannot be
 * opened or read, RS_E_INVALID if it is not a journal of this format (message in err). */
int rs_store_peek(const char *path, rs_store_peek_info *info, char *err, size_t err_len);

/* fsync `path`, or (dir = 1) the directory holding it, so that a created or renamed entry
 * survives a crash. Returns 0 or -1 (errno set). Not collective. */
int rs_store_sync_path(const char *path, int dir);

#endif
