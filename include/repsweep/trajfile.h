/* trajfile.h — measured trajectories from files, for `repsweep fit`.
 *
 * Owns: reading the per-epoch dh2, dyhat2, w (and loss) of trajectories and the gaps of
 * their data from (a) the plain CSV format below, which any training code can write, and
 * (b) repsweep's own trial files (`repsweep trial --out`, read-only). For (b) this is the
 * one module besides ncio that includes netcdf.h (reading only; ncio owns every file
 * repsweep writes).
 * Never: fits, trains, writes files.
 *
 * CSV: '#' lines are comments, except `# key = value` with key input_gap, target_gap (the
 * data's distances |x2 - x1|, |y2 - y1|, not squared) or ybar0_offset (mean prediction
 * minus mean target at the first epoch), which apply to every trajectory of the file.
 * The first other line names the columns (any order, comma-separated): epoch, dh2, dyhat2
 * and w are required; loss, trajectory, input_gap, target_gap and ybar0_offset are
 * optional (per-row gaps override the header's and must be constant within a trajectory).
 * Rows of one trajectory (one value of `trajectory`, any text without commas; all rows
 * one trajectory without that column) are contiguous, and their epochs start at 0 and are
 * equally spaced (every epoch, or every k-th: rates stay per epoch). Blank lines are
 * ignored; no quoting. */
#ifndef REPSWEEP_TRAJFILE_H
#define REPSWEEP_TRAJFILE_H

#include <stddef.h>

typedef struct {
    char *name;           /* CSV: the trajectory key (or "0"); trial file: its path */
    char *source;         /* the file it came from */
    size_t n;             /* samples */
    long epoch_step;      /* epochs between samples (>= 1) */
    double *dh2, *dyhat2, *w;
    double *loss;         /* NULL when the file has no loss */
    double input_gap, target_gap;
    double ybar0_offset;  /* NaN unless given (then Eq. 9 derives its square from the loss) */
} rs_traj_input;

typedef struct {
    rs_traj_input *traj;
    size_t count, cap;
} rs_traj_set;

/* Append the trajectories of a CSV file to `set`. input_gap / target_gap (NaN: none) are
 * used where the file gives none. Returns RS_OK, or RS_E_IO / RS_E_PARSE / RS_E_INVALID /
 * RS_E_NOMEM with `err` naming the file, line and cause (the set then holds the
 * trajectories appended before, and none of this file). */
int rs_trajfile_read_csv(const char *path, double input_gap, double target_gap,
                         rs_traj_set *set, char *err, size_t err_len);

/* Append the trajectory of a `repsweep trial --out` file (its dh2, dyhat2, w, loss, the
 * gaps from its global attributes, ybar0_offset from yhat_mean at epoch 0 as the trial
 * computes it). Returns RS_OK, RS_E_NETCDF / RS_E_PARSE / RS_E_NOMEM with `err`. */
int rs_trajfile_read_trial(const char *path, rs_traj_set *set, char *err, size_t err_len);

void rs_traj_set_free(rs_traj_set *set);

#endif
