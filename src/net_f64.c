/* net_f64.c — the network engine in double precision (see net_impl.h). */
#define REAL double
#define NI_VEC_LANES 8 /* REALs in a 64-byte vector */
#define GEMM cblas_dgemm
#define NI_CAT2(a, b) a##b
#define NI_CAT(a, b) NI_CAT2(a, b)
#define NI(name) NI_CAT(rs_, NI_CAT(name, _f64))
#include "net_impl.h"
