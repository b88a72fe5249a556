/* bench_fma.c — the peak rate of fused multiply-adds on one core, in float32 and float64, for
 * the epoch's compute bound (tests/bench/bench_epoch.py's "FMA floor"). Not a test: run on
 * demand.
 *
 * usage: bench_fma [REPEATS]
 * Prints one line:
 *   fma float32_gfmas=<G FMA/s> float64_gfmas=<G FMA/s>
 * counting one FMA per lane (a 64-byte vector of floats is 16 FMAs), best of REPEATS timed runs.
 * The loop keeps ACCS independent accumulators in registers, enough to cover the FMA units'
 * latency, and touches no memory: no kernel that loads its operands can run faster. Built with
 * -march=native, so it uses the widest vectors the build machine has. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define ACCS 12          /* independent chains (a0..a11): > latency (4 cycles) x FMA ports (2) */
#define ITERS 20000000L  /* per timed run: ~0.1 s at one 64-byte FMA per cycle */

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* One timed run per precision: ACCS chains of acc = acc * m + c, written out as named
 * variables so that they live in registers. m < 1 and c > 0 keep the values finite and normal;
 * the lanes' sum is returned through *sink, so the compiler must compute it. */
#define STEP(a) a = a * m + c
#define DEFINE_RUN(NAME, REAL)                                                              \
    typedef REAL NAME##_vec __attribute__((vector_size(64)));                             \
    __attribute__((noinline)) static double NAME(long iters, double *sink)                \
    {                                                                                     \
        NAME##_vec m, c;                                                                  \
        for (size_t l = 0; l < sizeof m / sizeof(REAL); l++) {                            \
            m[l] = (REAL)0.999;                                                           \
            c[l] = (REAL)1e-3;                                                            \
        }                                                                                 \
        NAME##_vec a0 = m, a1 = a0 + c, a2 = a1 + c, a3 = a2 + c, a4 = a3 + c,            \
                   a5 = a4 + c, a6 = a5 + c, a7 = a6 + c, a8 = a7 + c, a9 = a8 + c,       \
                   a10 = a9 + c, a11 = a10 + c;                                           \
        double t = now();                                                                 \
        for (long i = 0; i < iters; i++) {                                                \
            STEP(a0); STEP(a1); STEP(a2); STEP(a3); STEP(a4); STEP(a5);                   \
            STEP(a6); STEP(a7); STEP(a8); STEP(a9); STEP(a10); STEP(a11);                 \
        }                                                                                 \
        t = now() - t;                                                                    \
        NAME##_vec all = a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9 + a10 + a11;     \
        double sum = 0;                                                                   \
        for (size_t l = 0; l < sizeof m / sizeof(REAL); l++)                              \
            sum += (double)all[l];                                                        \
        *sink += sum;                                                                     \
        return (double)iters * ACCS * (sizeof m / sizeof(REAL)) / t / 1e9;                \
    }

DEFINE_RUN(run_f32, float)
DEFINE_RUN(run_f64, double)

int main(int argc, char **argv)
{
    int repeats = argc > 1 ? atoi(argv[1]) : 5;
    if (argc > 2 || repeats < 1) {
        fprintf(stderr, "usage: bench_fma [REPEATS >= 1]\n");
        return 2;
    }
    double best32 = 0, best64 = 0, sink = 0;
    for (int r = 0; r < repeats; r++) {
        double g32 = run_f32(ITERS, &sink), g64 = run_f64(ITERS, &sink);
        if (g32 > best32)
            best32 = g32;
        if (g64 > best64)
            best64 = g64;
    }
    if (!(sink > 0)) /* never: the accumulators stay positive */
        fprintf(stderr, "bench_fma: unexpected accumulator sum %g\n", sink);
    printf("fma float32_gfmas=%.2f float64_gfmas=%.2f\n", best32, best64);
    return 0;
}
