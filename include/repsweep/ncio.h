/* ncio.h — netCDF output: the only module that includes netcdf.h.
 *
 * Owns: the single-trial file written by `repsweep trial --out` (per-epoch trajectories,
 * the fitted theory's curves, and the trial's record: store.h's schema; CF-1.8 attributes
 * and global attributes describing the trial and the build), the initial
 * weights export used by the PyTorch oracle test, a sweep's results file (one value per
 * finished trial, rewritten atomically from the journal: store.h), reading a results file's
 * summary back (`repsweep status`), and merging the results files of a job's shards
 * (`repsweep merge`).
 * Never: trains or fits. */
#ifndef REPSWEEP_NCIO_H
#define REPSWEEP_NCIO_H

#include <stddef.h>

#include <stdint.h>

#include "repsweep/grid.h"
#include "repsweep/net.h"
#include "repsweep/store.h"
#include "repsweep/trial.h"

/* Whether `path` can be created or overwritten, checked by opening it for writing (a new
 * file is removed again): RS_OK, or RS_E_IO with err naming the path and the system's reason
 * (e.g. "No such file or directory" for a missing directory, which netCDF reports as
 * "Permission denied"). The writers below call it first; a caller may call it before long
 * work whose result it will write. */
int rs_ncio_check_creatable(const char *path, char *err, size_t err_len);

/* Write one trial to `path` (netCDF-4, replaced if it exists). `command_line` is recorded
 * as a global attribute (may be NULL). On error returns RS_E_NETCDF / RS_E_IO with a
 * message naming the file in err. */
int rs_ncio_write_trial(const char *path, const rs_trial_spec *spec, const rs_trajectory *traj,
                        const rs_trial_result *res, const char *command_line, char *err,
                        size_t err_len);

/* Write the network's parameters as variables weight_K / bias_K (K = map index: the stages,
 * then the output layer) in PyTorch's layouts, with the architecture as global attributes. */
int rs_ncio_write_weights(const char *path, const rs_net *net, const rs_trial_spec *spec,
                          char *err, size_t err_len);

/* Provenance of a sweep's results file (global attributes). */
typedef struct {
    const char *job_name, *job_text;
    uint64_t job_hash;
    const char *command_line;       /* may be NULL */
    int64_t created;                /* unix time the sweep started (the journal's) */
    const char *mpi_version;        /* MPI_Get_library_version's text (may be NULL) */
    rs_grid_shard shard;            /* the trials the file is meant to hold ({0, 1}: all) */
} rs_ncio_sweep_info;

/* Write the finished trials of snapshot `snap` (store.h: read back from the journal in grid
 * order, a batch of about 8 MiB of records at a time, so the writer's memory does not grow
 * with the trials) of `grid` to `path` as a netCDF-4 file following CF-1.8: dimension `trial`; per trial the grid index
 * `trial` and the coordinates `block`, `arch`, `gain`, `seed`, `input_gap`, `target_gap`
 * (named in the global `coordinates`; `block` and `arch` are integer indices with
 * flag_values / flag_meanings, `arch` into the global arch_names; a theory-only trial's arch,
 * gain and seed are missing: _FillValue), and one variable per rs_store_field with the
 * schema's attributes (store.h; NaN is written as RS_STORE_FILL_DOUBLE). Global attributes:
 * Conventions, title, history, source, references, coordinates, the provenance (info, the
 * build), trials_total and grid_trials (the grid's trials), trials_done, shard_index,
 * shard_count, trials_expected (the shard's trials), created (ISO 8601) and created_unix,
 * updated (unix time of this write), arch_names (rs_grid_arch_trials' names joined by ","),
 * arch_trials_expected and arch_grid_trials (per name: the shard's and the grid's trials).
 * The snapshot's records have the grid's layout (rs_store_layout_of); their extras become variables over (trial, stage), (trial, epoch) and (trial, epoch, stage),
 * with coordinate variables `stage` (0-based) and `epoch` (the recorded epoch indices).
 * Every variable over trial is compressed (zlib level 4, shuffle) in chunks of about 64 Ki
 * values: many trials of a summary variable, whole trajectories of a few trials. The file is
 * written to "PATH.tmp", fsync'ed, then
 * renamed over `path`, so a kill at any moment leaves either the old file or the new one,
 * never a half-written one. On error returns RS_E_NETCDF / RS_E_IO / RS_E_NOMEM with a
 * message naming the file in err (RS_E_IO also when the journal cannot be read); `path` is
 * then unchanged. Not collective; uses netCDF, so one thread at a time may call ncio. */
int rs_ncio_write_sweep(const char *path, const rs_grid *grid, rs_store_snapshot *snap,
                        const rs_ncio_sweep_info *info, char *err, size_t err_len);

/* The most memory rs_ncio_write_sweep uses for records of layout l (bytes, any trial count):
 * its batch buffers and the chunks it fills; netCDF's own fixed overhead aside. */
size_t rs_ncio_sweep_writer_bytes(const rs_store_layout *l);

/* A results file read back for a progress report: its identity and expected counts (global
 * attributes) and the per-trial columns a report needs. Free with rs_ncio_summary_free. */
typedef struct {
    char *job_name, *job_hash;
    uint64_t grid_trials, trials_expected;
    rs_grid_shard shard;
    int64_t created, updated;       /* unix times: the sweep's start, the file's last write */
    int n_arch;
    char **arch_names;              /* n_arch names, in the file's order */
    uint64_t *arch_expected;        /* n_arch: the file's expected trials per name */
    size_t n;                       /* trials in the file */
    uint64_t *trial;
    int64_t *status, *converged;
    double *fit_loss_rel, *train_seconds, *fit_seconds;
    const char **arch;              /* per trial, an entry of arch_names; "" for a
                                     * theory-only trial */
} rs_ncio_summary;

/* Read `path`. Not collective. RS_E_INVALID with a message naming the file if it cannot be
 * opened as netCDF, is not a repsweep results file, or lacks an attribute or variable (a file
 * of an older repsweep); RS_E_NOMEM. On error *s is empty (safe to free). */
int rs_ncio_read_summary(const char *path, rs_ncio_summary *s, char *err, size_t err_len);
void rs_ncio_summary_free(rs_ncio_summary *s);

/* One input of a merge: the caller sets path; the merge fills in the rest. */
typedef struct {
    const char *path;
    rs_grid_shard shard;            /* its shard_index / shard_count */
    uint64_t done, expected;        /* trials it holds; its trials_expected */
} rs_ncio_merge_input;

/* Merge the results files in[0..n) of one job (typically its shards) into `out`: every
 * variable over `trial` is concatenated, rows sorted by grid index, every other variable,
 * every variable attribute and the global attributes copied from in[0] (variables stored as
 * rs_ncio_write_sweep stores them), except: shard_index
 * 0, shard_count 1, trials_expected = grid_trials, trials_done, arch_trials_expected =
 * arch_grid_trials, created the earliest and updated the latest of the inputs', command_line
 * = `command_line`, history = in[0]'s and a line for this merge, and merged_from (the
 * input paths, a string array). Written as
 * rs_ncio_write_sweep writes (OUT.tmp, fsync, rename), so a file of all shards equals the
 * unsharded run's in every variable but the timings. Refused with RS_E_INVALID (message
 * naming the files): an input that is not a repsweep results file, inputs of different jobs
 * (job_hash) or layouts (dimensions other than trial, variables), inputs whose shards
 * overlap or that hold the same trial, an input whose trials are not sorted or not of its
 * shard. RS_E_NETCDF / RS_E_IO / RS_E_NOMEM when writing fails (`out` is then unchanged).
 * *grid_trials receives the job's trial count. Not collective. */
int rs_ncio_merge_sweeps(const char *out, rs_ncio_merge_input *in, size_t n,
                         const char *command_line, uint64_t *grid_trials, char *err,
                         size_t err_len);

#endif
