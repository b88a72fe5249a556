/* npnet_f32.c — the N-point engine in float32 (npnet_impl.h). */
#define REAL float
#define NP(name) rs_npe_##name##_f32
#define NP_ENGINE rs_npe_f32
#define GEMM cblas_sgemm
#include "npnet_impl.h"
