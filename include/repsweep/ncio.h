/* ncio.h — netCDF output: the only module that includes netcdf.h.
 *
 * Owns: the single-trial file written by `repsweep trial --out` (per-epoch trajectories,
 * the fitted theory's curves, and the trial's results, with CF-style long_name/units
 * attributes and global attributes describing the trial and the build), the initial
 * weights export used by the PyTorch oracle test, and a sweep's results file (one value per
 * finished trial, rewritten atomically from the journal: store.h).
 * Never: trains or fits. */
#ifndef REPSWEEP_NCIO_H
#define REPSWEEP_NCIO_H

#include <stddef.h>

#include <stdint.h>

#include "repsweep/grid.h"
#include "repsweep/net.h"
#include "repsweep/store.h"
#include "repsweep/trial.h"

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
} rs_ncio_sweep_info;

/* Write the n finished trials `recs` (any order; written sorted by grid index) of `grid` to
 * `path` as a netCDF-4 file: dimension `trial`, the grid index and coordinates of each trial
 * and one variable per rs_store_field. The records have the grid's layout
 * (rs_store_layout_of: rs_store_record_bytes apart); its extras become variables over
 * (trial, stage), (trial, epoch) and (trial, epoch, stage), with coordinate variables
 * `stage` (0-based) and `epoch` (the recorded epoch indices). The file is written to "PATH.tmp", fsync'ed, then
 * renamed over `path`, so a kill at any moment leaves either the old file or the new one,
 * never a half-written one. On error returns RS_E_NETCDF / RS_E_IO / RS_E_NOMEM with a
 * message naming the file in err; `path` is then unchanged. */
int rs_ncio_write_sweep(const char *path, const rs_grid *grid, const void *recs, size_t n,
                        const rs_ncio_sweep_info *info, char *err, size_t err_len);

#endif
