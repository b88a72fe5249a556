/* check.h — the unit tests' assertion macros (GSL/netCDF style: each check names its file
 * and line and prints the numbers that were off; a test exits non-zero if any check failed). */
#ifndef REPSWEEP_TEST_CHECK_H
#define REPSWEEP_TEST_CHECK_H

#include <math.h>
#include <stdio.h>

static int check_failures = 0;

#define CHECK(cond, ...)                                                            \
    do {                                                                            \
        if (!(cond)) {                                                              \
            check_failures++;                                                       \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);         \
            fprintf(stderr, __VA_ARGS__);                                           \
            fputc('\n', stderr);                                                    \
        }                                                                           \
    } while (0)

/* |got - want| <= rel * max(|want|, floor) */
#define CHECK_CLOSE(got, want, rel, floor_, what)                                   \
    do {                                                                            \
        double g_ = (got), w_ = (want);                                             \
        double s_ = fabs(w_) > (floor_) ? fabs(w_) : (floor_);                      \
        if (!(fabs(g_ - w_) <= (rel) * s_)) {                                       \
            check_failures++;                                                       \
            fprintf(stderr, "FAIL %s:%d: %s: got %.17g want %.17g (rel err %.3g > %.3g)\n", \
                    __FILE__, __LINE__, (what), g_, w_, fabs(g_ - w_) / s_, (double)(rel)); \
        }                                                                           \
    } while (0)

#define CHECK_OK(call)                                                              \
    do {                                                                            \
        int st_ = (call);                                                           \
        if (st_ != 0) {                                                             \
            check_failures++;                                                       \
            fprintf(stderr, "FAIL %s:%d: %s returned %d\n", __FILE__, __LINE__, #call, st_); \
        }                                                                           \
    } while (0)

/* Write `text` to `path` (a job file for a test); 0 on success. */
static inline int check_write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    fputs(text, f);
    return fclose(f);
}

/* Print PASS/FAIL for a named test and return the process status. */
#define CHECK_REPORT(name)                                                          \
    (printf("%s %s (%d failed checks)\n", check_failures ? "FAIL" : "PASS", (name), \
            check_failures),                                                        \
     check_failures ? 1 : 0)

#endif
