/* control.h — a falsification control for the fit: does the derived ODE (Eq. 7) fit a
 * measured trajectory better than wrong versions of it?
 *
 * Owns: the perturbed right-hand sides below and their least-squares fits. Every variant,
 * the derived one included, is fitted by the same simple fitter here (Eq. 7 in its written
 * form, GSL's msbdf, Levenberg-Marquardt on ln rates with forward differences, from the
 * main fit's rates and the best cells of a coarse scan, on at most CONTROL_MAX_EPOCHS
 * equally spaced epochs), so that the losses compare like with like; the main fit's own
 * loss is not used for the comparison. With g = input_gap2, T = target_gap2, Eq. 7 is
 *   d dh2/dt    = -rate_h g w                                              (a)
 *   d dyhat2/dt = -w (rate_y dh2 + rate_h g dyhat2/dh2)                    (b)
 *   d w/dt      = -1/2 rate_y (3w - dyhat2 + T) dh2 - 1/2 rate_h g (dyhat2 + w) w/dh2  (c)
 * and the variants are
 *   RS_CONTROL_DERIVED          Eq. 7 as above
 *   RS_CONTROL_DH2_SIGN         (a) with its sign flipped: +rate_h g w
 *   RS_CONTROL_DECODER_DOUBLED  (b) with the decoder term doubled: 2 rate_y dh2
 *   RS_CONTROL_W_ENCODER_DROPPED (c) without its encoder term (the rate_h part)
 *   RS_CONTROL_W_COEFF          (c) with 3w replaced by w
 *   RS_CONTROL_TARGET_SIGN      (c) with +T replaced by -T
 * Never: trains, touches files or MPI; callers turn GSL's abort handler off. */
#ifndef REPSWEEP_CONTROL_H
#define REPSWEEP_CONTROL_H

#include <stddef.h>

#include "repsweep/fit.h"

enum {
    RS_CONTROL_DERIVED,
    RS_CONTROL_DH2_SIGN,
    RS_CONTROL_DECODER_DOUBLED,
    RS_CONTROL_W_ENCODER_DROPPED,
    RS_CONTROL_W_COEFF,
    RS_CONTROL_TARGET_SIGN,
    RS_CONTROL_VARIANTS
};

typedef struct {
    int status;                                /* RS_OK, or RS_S_FIT_FAILED: nothing fitted */
    double fit_loss_rel[RS_CONTROL_VARIANTS];  /* Eq. 49's relative loss at each variant's best
                                                * rates, on the control's epochs; INFINITY if
                                                * no rates gave a solution */
    double rate_h[RS_CONTROL_VARIANTS], rate_y[RS_CONTROL_VARIANTS];
} rs_fit_control_result;

/* "control_derived", "control_dh2_sign", "control_decoder_doubled",
 * "control_w_encoder_dropped", "control_w_coeff", "control_target_sign": the output names
 * of the variants' fit_loss_rel. */
const char *rs_fit_control_variant_name(int variant);

/* Fit every variant to n epochs of dh2, dyhat2, w (as rs_fit_rates), starting from `fit`'s
 * rates (NULL: from the scan alone). opt is not used yet (the control's settings are its
 * own, control.c) and may be NULL. A few seconds per call (6000 epochs: 2-4 s of CPU).
 * Returns RS_OK when `res` is filled, RS_E_INVALID / RS_E_NOMEM otherwise. */
int rs_fit_control(const double *dh2, const double *dyhat2, const double *w, size_t n,
                   double input_gap2, double target_gap2, const rs_fit_result *fit,
                   const rs_fit_options *opt, rs_fit_control_result *res);

#endif
