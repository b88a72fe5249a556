/* npnet_f64.c — the N-point engine in float64 (npnet_impl.h). */
#define REAL double
#define NP(name) rs_npe_##name##_f64
#define NP_ENGINE rs_npe_f64
#define GEMM cblas_dgemm
#include "npnet_impl.h"
