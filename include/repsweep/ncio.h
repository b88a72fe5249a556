/* ncio.h — netCDF output: the only module that includes netcdf.h.
 *
 * Owns: the single-trial file written by `repsweep trial --out` (per-epoch trajectories,
 * the fitted theory's curves, and the trial's results, with CF-style long_name/units
 * attributes and global attributes describing the trial and the build), and the initial
 * weights export used by the PyTorch oracle test.
 * Never: trains or fits. */
#ifndef REPSWEEP_NCIO_H
#define REPSWEEP_NCIO_H

#include <stddef.h>

#include "repsweep/net.h"
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

#endif
