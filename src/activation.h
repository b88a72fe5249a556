/* activation.h — the activations of net.h (values and slopes) in float64, for the N-point
 * engine (npnet.c). The formulas are net_impl.h's, written once more because net_impl.h keeps
 * them private to its precision template; the two-point engine should include this header
 * instead (one definition) once its portability work is merged. */
#ifndef REPSWEEP_ACTIVATION_H
#define REPSWEEP_ACTIVATION_H

#include <math.h>

#include "repsweep/net.h"

static inline double rs_act_value(rs_activation kind, double z)
{
    switch (kind) {
    case RS_ACT_LEAKY_RELU: return z > 0 ? z : 0.01 * z;
    case RS_ACT_RELU: return z > 0 ? z : 0;
    case RS_ACT_ELU: return z > 0 ? z : expm1(z);
    case RS_ACT_TANH: return tanh(z);
    case RS_ACT_SWISH: return z / (1 + exp(-z));
    case RS_ACT_IDENTITY: default: return z;
    }
}

/* d act / d z at z (PyTorch's choice at the kinks: the left slope at z = 0). */
static inline double rs_act_slope(rs_activation kind, double z)
{
    switch (kind) {
    case RS_ACT_LEAKY_RELU: return z > 0 ? 1 : 0.01;
    case RS_ACT_RELU: return z > 0 ? 1 : 0;
    case RS_ACT_ELU: return z > 0 ? 1 : exp(z);
    case RS_ACT_TANH: {
        double t = tanh(z);
        return 1 - t * t;
    }
    case RS_ACT_SWISH: {
        double s = 1 / (1 + exp(-z));
        return s * (1 + z * (1 - s));
    }
    case RS_ACT_IDENTITY: default: return 1;
    }
}

#endif
