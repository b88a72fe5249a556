/* blas.c — the linked CBLAS's own API (see blas.h). */
#include "repsweep/blas.h"

#ifdef REPSWEEP_HAVE_OPENBLAS
#include <cblas.h>
#endif

#ifndef REPSWEEP_CBLAS_LIBRARY
#define REPSWEEP_CBLAS_LIBRARY "unknown"
#endif

void rs_blas_single_thread(void)
{
#ifdef REPSWEEP_HAVE_OPENBLAS
    openblas_set_num_threads(1);
#endif
}

int rs_blas_concurrent_calls_safe(void)
{
#ifdef REPSWEEP_HAVE_OPENBLAS
    return openblas_get_num_threads() == 1 && openblas_get_parallel() != 0;
#else
    return 0;
#endif
}

const char *rs_blas_config(void)
{
#ifdef REPSWEEP_HAVE_OPENBLAS
    return openblas_get_config();
#else
    return "not OpenBLAS: CBLAS " REPSWEEP_CBLAS_LIBRARY;
#endif
}
