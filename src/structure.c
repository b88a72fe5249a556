/* structure.c — pairwise predictions, Eq. 50 and Pearson r (see structure.h). */
#include "repsweep/structure.h"

#include <math.h>
#include <stdlib.h>

#include "repsweep/status.h"
#include "repsweep/theory.h"

int rs_structure_predict(size_t m, const double *input_gap2, const double *target_gap2,
                         const double *dh2_0, const double *dyhat2_0, const double *w_0,
                         double rate_h, double rate_y, double *pred)
{
    if (m == 0 || !input_gap2 || !target_gap2 || !dh2_0 || !dyhat2_0 || !w_0 || !pred ||
        !(rate_h > 0 && isfinite(rate_h)) || !(rate_y > 0 && isfinite(rate_y)))
        return RS_E_INVALID;
    for (size_t a = 0; a < m; a++) {
        pred[a * m + a] = 0;
        for (size_t b = a + 1; b < m; b++) {
            size_t k = a * m + b;
            double fin;
            if (dh2_0[k] > 0) {
                /* Eq. 10-11: the pair (a, b) as a two-point problem of its own */
                rs_theory_params p = {rate_h, rate_y, input_gap2[k], target_gap2[k]};
                rs_theory_state init = {dh2_0[k], dyhat2_0[k], w_0[k]};
                rs_theory_fixed_point(&p, init, NULL, NULL, &fin);
            } else {
                fin = input_gap2[k] == 0 ? 0.0 : NAN; /* same input: same h for ever */
            }
            pred[k] = pred[b * m + a] = fin;
        }
    }
    return RS_OK;
}

int rs_structure_exp_weigh(size_t m, const double *T, double *out)
{
    if (m == 0 || !T || !out || T == out)
        return RS_E_INVALID;
    for (size_t k = 0; k < m * m; k++)
        if (!isfinite(T[k]))
            return RS_E_INVALID;
    double *E = malloc(m * m * sizeof *E), *TE = malloc(m * m * sizeof *TE);
    if (!E || !TE) {
        free(E);
        free(TE);
        return RS_E_NOMEM;
    }
    /* Eq. 50: P = E T E with E[i][k] = exp(-T[i][k]) (symmetric, as T is). TE = T E first,
     * then P = E (T E); plain loops in i-k-j order (m is a subset, ~100: 2 m^3 flops). */
    for (size_t k = 0; k < m * m; k++)
        E[k] = exp(-T[k]);
    for (size_t i = 0; i < m * m; i++)
        TE[i] = 0;
    for (size_t i = 0; i < m; i++)
        for (size_t k = 0; k < m; k++) {
            double t = T[i * m + k];
            for (size_t j = 0; j < m; j++)
                TE[i * m + j] += t * E[k * m + j];
        }
    for (size_t i = 0; i < m; i++) {
        for (size_t j = 0; j < m; j++)
            out[i * m + j] = 0;
        for (size_t k = 0; k < m; k++) {
            double e = E[i * m + k];
            for (size_t j = 0; j < m; j++)
                out[i * m + j] += e * TE[k * m + j];
        }
    }
    /* the products' rounding may differ between [i][j] and [j][i]: take the upper triangle */
    for (size_t i = 0; i < m; i++) {
        out[i * m + i] = 0; /* no distance: see structure.h */
        for (size_t j = i + 1; j < m; j++)
            out[j * m + i] = out[i * m + j];
    }
    free(E);
    free(TE);
    return RS_OK;
}

double rs_structure_pearson(size_t m, const double *a, const double *b, int log_values,
                            size_t *used)
{
    /* two passes (means, then centred sums): no cancellation in the variances */
    size_t n = 0;
    double sa = 0, sb = 0;
    for (int pass = 0; pass < 2; pass++) {
        double ma = n ? sa / (double)n : 0, mb = n ? sb / (double)n : 0;
        double saa = 0, sbb = 0, sab = 0;
        n = 0;
        sa = sb = 0;
        for (size_t i = 0; i < m; i++)
            for (size_t j = i + 1; j < m; j++) {
                double u = a[i * m + j], v = b[i * m + j];
                if (log_values) {
                    if (!(u > 0) || !(v > 0))
                        continue;
                    u = log(u);
                    v = log(v);
                }
                if (!isfinite(u) || !isfinite(v))
                    continue;
                n++;
                sa += u;
                sb += v;
                saa += (u - ma) * (u - ma);
                sbb += (v - mb) * (v - mb);
                sab += (u - ma) * (v - mb);
            }
        if (pass == 1) {
            if (used)
                *used = n;
            if (n < 2 || saa == 0 || sbb == 0)
                return NAN;
            return sab / sqrt(saa * sbb);
        }
    }
    return NAN; /* not reached */
}

void rs_structure_data_gaps(const double *x, int in_dim, const double *y, int out_dim,
                            const size_t *idx, size_t m, double *input_gap2,
                            double *target_gap2)
{
    for (size_t a = 0; a < m; a++) {
        input_gap2[a * m + a] = target_gap2[a * m + a] = 0;
        for (size_t b = a + 1; b < m; b++) {
            const double *xa = x + idx[a] * (size_t)in_dim, *xb = x + idx[b] * (size_t)in_dim;
            const double *ya = y + idx[a] * (size_t)out_dim, *yb = y + idx[b] * (size_t)out_dim;
            double gx = 0, gy = 0;
            for (int k = 0; k < in_dim; k++)
                gx += (xb[k] - xa[k]) * (xb[k] - xa[k]);
            for (int k = 0; k < out_dim; k++)
                gy += (yb[k] - ya[k]) * (yb[k] - ya[k]);
            input_gap2[a * m + b] = input_gap2[b * m + a] = gx;
            target_gap2[a * m + b] = target_gap2[b * m + a] = gy;
        }
    }
}
