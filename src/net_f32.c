/* net_f32.c — the network engine in single precision (see net_impl.h). */
#define REAL float
#define NI_VEC_LANES 16 /* REALs in a 64-byte vector */
#define GEMM cblas_sgemm
#define NI_CAT2(a, b) a##b
#define NI_CAT(a, b) NI_CAT2(a, b)
#define NI(name) NI_CAT(rs_, NI_CAT(name, _f32))
#include "net_impl.h"
