/* structure.h — the theory's prediction of a data set's representational structure: the
 * final squared distance of every pair of a subset of points (Eq. 10-11 per pair), the
 * paper's exponential weighing of those predictions (Eq. 50, App. B.4) and the Pearson r
 * between a predicted and a measured distance matrix.
 *
 * Owns: applying the two-point theory pair by pair (each pair (a, b) is its own two-point
 * problem: its input and target distances ||x_a - x_b||^2, ||y_a - y_b||^2 and its measured
 * epoch-0 dh2, dyhat2, w; the fixed point is theory.h's rs_theory_fixed_point, never restated
 * here); Eq. 50; the correlation over the upper triangle without the diagonal.
 * Never: networks, training, fits, files, MPI, printing. The rates are the caller's (the
 * paper's calibration: the two-point rates of the same architecture, averaged).
 *
 * Matrices are m x m, row-major, over the subset's points in the subset's order. */
#ifndef REPSWEEP_STRUCTURE_H
#define REPSWEEP_STRUCTURE_H

#include <stddef.h>

/* Eq. 10-11 for every pair a != b: pred[a][b] = rs_theory_fixed_point's dh2(inf) with
 * (rate_h, rate_y), input_gap2[a][b], target_gap2[a][b] and the epoch-0 state
 * (dh2_0, dyhat2_0, w_0)[a][b]. pred is symmetric with a zero diagonal (upper triangle
 * computed, mirrored). A pair whose two inputs coincide (input_gap2 == 0 and dh2_0 == 0) has
 * the same representation for ever: 0. A pair with dh2_0 == 0 but distinct inputs (a dead
 * net) has no prediction: NaN. Returns RS_OK, or RS_E_INVALID (rates not positive and
 * finite, m == 0, NULLs). */
int rs_structure_predict(size_t m, const double *input_gap2, const double *target_gap2,
                         const double *dh2_0, const double *dyhat2_0, const double *w_0,
                         double rate_h, double rate_y, double *pred);

/* Eq. 50 (App. B.4), read literally: with T the Eq. 10 matrix (zero diagonal),
 *   P[i][j] = sum_k sum_l exp(-T[i][k]) exp(-T[l][j]) T[k][l]   (P = E T E, E = exp(-T)),
 * over the subset's points k, l (the diagonal terms k == i and l == j, weight e^0 = 1,
 * included), with no normalisation of the weights (the paper writes none; Pearson r is
 * blind to the overall scale, but not to the units of T, which the exponent sees: T is in
 * the observed layer's squared units, as the paper's). P is symmetric. Its diagonal as the
 * sum gives it is a weighted sum of other pairs' distances, not a distance: out's diagonal
 * is set to 0. out must not alias T. Every entry of T must be finite: RS_E_INVALID
 * otherwise (a NaN prediction would spread to every entry). RS_E_NOMEM if the m x m
 * scratch cannot be allocated. */
int rs_structure_exp_weigh(size_t m, const double *T, double *out);

/* Pearson's r between a and b over the pairs a < b of the upper triangle (the diagonal and
 * the lower triangle are not read). log_values: r of ln a and ln b instead, over the pairs
 * where both are > 0 (merged pairs, distance 0, drop out: say so when reporting it).
 * Pairs where either value is not finite are skipped too. *used (may be NULL) gets the
 * number of pairs used. NaN if fewer than 2 pairs are used or either side is constant. */
double rs_structure_pearson(size_t m, const double *a, const double *b, int log_values,
                            size_t *used);

/* The data's own distances over the subset idx[0..m): input_gap2[a][b] = ||x_a - x_b||^2,
 * target_gap2[a][b] = ||y_a - y_b||^2 (x, y row-major with widths in_dim, out_dim). */
void rs_structure_data_gaps(const double *x, int in_dim, const double *y, int out_dim,
                            const size_t *idx, size_t m, double *input_gap2,
                            double *target_gap2);

#endif
