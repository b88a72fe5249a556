/* blas.h — which CBLAS repsweep was linked against, and its threads.
 *
 * Owns: every call into a CBLAS's own (non-standard) API. repsweep's products use only the
 * standard cblas_?gemm; OpenBLAS's extras (openblas_set_num_threads, openblas_get_config,
 * openblas_get_parallel) are called here and only when the build found them
 * (REPSWEEP_HAVE_OPENBLAS, CMake's check_symbol_exists). Other CBLAS libraries (BLIS, MKL,
 * Cray's libsci, the reference CBLAS) take their thread count from their own environment
 * (BLIS_NUM_THREADS, MKL_NUM_THREADS, ...); see the README.
 * Never: allocates, prints or computes. */
#ifndef REPSWEEP_BLAS_H
#define REPSWEEP_BLAS_H

/* Ask the CBLAS to run single-threaded (--threads goes to repsweep's own kernels); a no-op
 * for a CBLAS without a known call (set its environment variable to 1 instead). */
void rs_blas_single_thread(void);

/* 1 if CBLAS products may be called from several OpenMP threads at once: an OpenBLAS built
 * threaded (with its locking) and set to one thread; 0 otherwise (unknown CBLAS: stay safe). */
int rs_blas_concurrent_calls_safe(void);

/* A line naming the CBLAS for the results files' provenance: OpenBLAS's own configuration
 * string, else the library the build linked. Static storage. */
const char *rs_blas_config(void);

#endif
