/* options.c — command-line helpers (see options.h). */
#include "options.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef REPSWEEP_ARCH_FILE
#define REPSWEEP_ARCH_FILE "jobs/architectures.cfg"
#endif

int opt_double(const char *cmd, const char *flag, const char *text, double min, double max,
               double *out)
{
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (errno || end == text || *end || !isfinite(v) || v < min || v > max) {
        fprintf(stderr, "repsweep %s: %s expects a number in [%g, %g], got '%s'\n", cmd, flag,
                min, max, text);
        return -1;
    }
    *out = v;
    return 0;
}

int opt_long(const char *cmd, const char *flag, const char *text, long min, long max, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno || end == text || *end || v < min || v > max) {
        fprintf(stderr, "repsweep %s: %s expects an integer in [%ld, %ld], got '%s'\n", cmd,
                flag, min, max, text);
        return -1;
    }
    *out = v;
    return 0;
}

const char *opt_arch_file(const char *flag_value)
{
    if (flag_value)
        return flag_value;
    const char *env = getenv("REPSWEEP_ARCHITECTURES");
    return env && *env ? env : REPSWEEP_ARCH_FILE;
}

void opt_command_line(int argc, char **argv, char *buf, unsigned long len)
{
    size_t used = 0;
    buf[0] = 0;
    for (int i = 0; i < argc && used + 1 < len; i++) {
        int n = snprintf(buf + used, len - used, "%s%s", i ? " " : "", argv[i]);
        if (n < 0)
            break;
        used += (size_t)n;
    }
}

long long opt_peak_memory_bytes(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (!f)
        return -1;
    char line[256];
    long long kib = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmHWM: %lld kB", &kib) == 1)
            break;
    fclose(f);
    return kib < 0 ? -1 : kib * 1024;
}
