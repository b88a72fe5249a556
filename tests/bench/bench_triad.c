/* bench_triad.c — a STREAM-style triad a[i] = b[i] + s*c[i] on one core, for the epoch's
 * memory-bandwidth bound (tests/bench/bench_perf.py
 * and the floor column of bench_epoch.py). Not a test: run on demand.
 *
 * usage: bench_triad BYTES [REPEATS]
 * BYTES is the total size of the three arrays (double). Prints one line:
 *   triad bytes=<BYTES> best_gbs=<GB/s> median_gbs=<GB/s>
 * counting 3 x 8 bytes per element (two reads, one write), STREAM's convention: the
 * write-allocate read of `a` is not counted, as STREAM does not count it. With three
 * arrays of 64 MiB each this measures DRAM; with a few MiB in all, the last-level cache. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* noinline: the compiler must not merge repeats or hoist the loop */
__attribute__((noinline)) static void triad(double *restrict a, const double *restrict b,
                                            const double *restrict c, double s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        a[i] = b[i] + s * c[i];
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: bench_triad BYTES [REPEATS]\n");
        return 2;
    }
    double bytes = atof(argv[1]);
    int repeats = argc > 2 ? atoi(argv[2]) : 0;
    size_t n = (size_t)(bytes / 24.0);
    if (n < 1024) {
        fprintf(stderr, "bench_triad: BYTES must be at least 24576\n");
        return 2;
    }
    if (repeats <= 0) /* about 1.5 GB of traffic per timing, at least 5 timings */
        repeats = 20;
    double *a = aligned_alloc(64, ((n * 8 + 63) / 64) * 64);
    double *b = aligned_alloc(64, ((n * 8 + 63) / 64) * 64);
    double *c = aligned_alloc(64, ((n * 8 + 63) / 64) * 64);
    if (!a || !b || !c) {
        fprintf(stderr, "bench_triad: out of memory\n");
        return 1;
    }
    for (size_t i = 0; i < n; i++) {
        a[i] = 0;
        b[i] = 1.0 + (double)(i % 7);
        c[i] = 0.5;
    }
    /* inner loops per timing: enough that one timing moves >= 0.5 GB */
    size_t inner = (size_t)(5e8 / (24.0 * (double)n)) + 1;
    double *gbs = malloc(sizeof *gbs * (size_t)repeats);
    double s = 1e-9, sink = 0;
    triad(a, b, c, s, n); /* warm-up: pages touched, caches filled */
    for (int r = 0; r < repeats; r++) {
        double t = now();
        for (size_t k = 0; k < inner; k++)
            triad(a, b, c, s + 1e-12 * (double)k, n);
        t = now() - t;
        sink += a[n / 2];
        gbs[r] = 24.0 * (double)n * (double)inner / t / 1e9;
    }
    qsort(gbs, (size_t)repeats, sizeof *gbs, cmp_double);
    printf("triad bytes=%.0f best_gbs=%.2f median_gbs=%.2f check=%g\n", 24.0 * (double)n,
           gbs[repeats - 1], gbs[repeats / 2], sink > 0 ? 1.0 : 0.0);
    free(gbs);
    free(a);
    free(b);
    free(c);
    return 0;
}
