/* dataset.h — the data sets a network is trained on: N points (x_i, y_i) of fixed widths.
 *
 * Owns: the construction of the paper's data sets (two points, XOR, orthogonal features) and
 * the loading of a user's data (IDX files, MNIST's own format; CSV); the reading of each that
 * is pinned below; one allocation per data set (rs_dataset_free undoes it).
 * Never: training, probes, MPI, printing. A loader's error names the file (and the line or
 * the header field) and the cause in `why`; it never exits.
 *
 * Layout: x is n x in_dim and y is n x out_dim, row-major float64 (point i is row i); label
 * is NULL, or n class labels when the data set has classes (IDX), for sorting the subset
 * whose pairwise distances are recorded (the paper's "first 100 digits sorted by digit").
 *
 * Readings pinned here (the paper leaves them open; see dataset.c for the why):
 * - two_point (App. B.1): x = -1, -1 + input_gap; y = 0.6, 0.6 + target_gap (rs_pair_from_gaps).
 * - xor (App. B.2): (0,0)->0, (1,0)->1, (0,1)->1, (1,1)->0, in that order.
 * - orthogonal_features (App. B.3): 5 x 5 pixel images (pixel centres at -1, -0.5, 0, 0.5, 1
 *   in x and y) of an unnormalised Gaussian blob exp(-((u-mx)^2 + (v-my)^2) / (2 sigma^2)),
 *   sigma = 0.5 (one pixel spacing), its mean (mx, my) on a positions x positions grid
 *   (30 x 30) evenly spaced over [-1, 1]; the 25 pixels row-major (row = v, i.e. y), then
 *   the one-hot context (2 inputs): 27 inputs. Output: mx in context 0, my in context 1.
 *   Point order: context, then my, then mx (index = c*P*P + iy*P + ix).
 * - IDX (MNIST's format): unsigned-byte images scaled to [0, 1] (pixel / 255, no centring),
 *   flattened row-major; unsigned-byte labels as one-hot targets of width `classes`; the
 *   loss is the engine's 1/2 mean_i ||f(x_i) - y_i||^2 (summed over the `classes` outputs,
 *   not averaged over them as torch.nn.MSELoss would: a factor `classes` in the rate).
 * - CSV: a header line naming every column x<something> or y<something> (inputs first, then
 *   outputs, at least one of each), then one point per line, numbers separated by commas;
 *   blank lines and lines starting with '#' are skipped. */
#ifndef REPSWEEP_DATASET_H
#define REPSWEEP_DATASET_H

#include <stddef.h>

#define RS_DATASET_NAME_MAX 64

typedef struct {
    char name[RS_DATASET_NAME_MAX];
    size_t n;
    int in_dim, out_dim;
    double *x;    /* n x in_dim */
    double *y;    /* n x out_dim */
    int *label;   /* n class labels, or NULL */
} rs_dataset;

/* The orthogonal-features grid of App. B.3 (see above). */
#define RS_ORTHO_POSITIONS 30
#define RS_ORTHO_SIGMA 0.5

/* Each returns RS_OK and sets *out (free with rs_dataset_free), or an RS_E_* code with the
 * cause in why (may be NULL) and *out = NULL. */
int rs_dataset_two_point(double input_gap, double target_gap, rs_dataset **out);
int rs_dataset_xor(rs_dataset **out);
/* positions >= 2 and sigma > 0; the paper's data set is (RS_ORTHO_POSITIONS, RS_ORTHO_SIGMA). */
int rs_dataset_orthogonal_features(int positions, double sigma, rs_dataset **out,
                                   char *why, size_t why_len);
/* Images and labels in IDX files (plain, or gzip-compressed as MNIST is distributed).
 * Images: magic 0x00000803 or higher rank (type 0x08, unsigned byte), dims N x d1 x ...;
 * labels: type 0x08, rank 1, N entries, each < classes. limit > 0 keeps the first `limit`
 * points (0: all). The header and the payload size are checked. */
int rs_dataset_load_idx(const char *images_path, const char *labels_path, int classes,
                        size_t limit, rs_dataset **out, char *why, size_t why_len);
int rs_dataset_load_csv(const char *path, rs_dataset **out, char *why, size_t why_len);

void rs_dataset_free(rs_dataset *d);

/* The first `m` point indices sorted by label (stable: ties keep their order), as the paper
 * orders MNIST's first 100 digits; without labels, 0..m-1. m <= d->n. */
void rs_dataset_first_sorted(const rs_dataset *d, size_t m, size_t *idx);

#endif
