/* options.c — command-line helpers (see options.h). */
#define _GNU_SOURCE /* sched_getaffinity, CPU_COUNT */
#include "options.h"

#include <errno.h>
#include <limits.h> /* PATH_MAX */
#include <omp.h>
#include <sched.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

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

int opt_path(const char *cmd, const char *flag, const char *text, const char **out)
{
    struct stat st;
    const char *why = NULL;
    if (!text[0])
        why = "an empty path";
    else if (stat(text, &st) == 0 && S_ISDIR(st.st_mode))
        why = "a directory";
    if (why) {
        fprintf(stderr, "repsweep %s: %s expects a file's path, got %s '%s'\n", cmd, flag, why,
                text);
        return -1;
    }
    *out = text;
    return 0;
}

/* A run of decimal digits at *p into *v (advancing *p); -1 if none or too large. */
static int digits(const char **p, unsigned long long *v)
{
    const char *start = *p;
    *v = 0;
    while (**p >= '0' && **p <= '9') {
        if (*v > (UINT32_MAX - (unsigned)(**p - '0')) / 10)
            return -1;
        *v = *v * 10 + (unsigned)(**p - '0');
        (*p)++;
    }
    return *p > start ? 0 : -1;
}

int opt_shard(const char *cmd, const char *flag, const char *text, rs_grid_shard *out)
{
    const char *p = text;
    unsigned long long index, count;
    if (digits(&p, &index) != 0 || *p++ != '/' || digits(&p, &count) != 0 || *p ||
        count < 1 || count > UINT32_MAX || index >= count) {
        fprintf(stderr, "repsweep %s: %s expects I/N, shard I of N with 0 <= I < N (e.g. 0/4 "
                "to 3/4), got '%s'\n", cmd, flag, text);
        return -1;
    }
    out->index = index;
    out->count = count;
    return 0;
}

const char *opt_shard_note(const rs_grid_shard *s, char *buf)
{
    if (s->count <= 1)
        return "";
    snprintf(buf, 64, " of shard %llu/%llu", (unsigned long long)s->index,
             (unsigned long long)s->count);
    return buf;
}

int opt_default_threads(const char *cmd, int *out)
{
    const char *env = getenv("OMP_NUM_THREADS");
    *out = 1;
    if (!env || !*env)
        return 0;
    char first[32];
    size_t n = strcspn(env, ",");
    snprintf(first, sizeof first, "%.*s", (int)(n < sizeof first ? n : sizeof first - 1), env);
    long v;
    if (opt_long(cmd, "OMP_NUM_THREADS", first, 1, 1024, &v) != 0)
        return -1;
    *out = (int)v;
    return 0;
}

const char *opt_data_dir(void)
{
    static char dir[PATH_MAX];
    char exe[PATH_MAX], guess[PATH_MAX + 32], probe[PATH_MAX + 64];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0)
        return NULL;
    exe[n] = 0;
    *strrchr(exe, '/') = 0; /* the binary's directory (readlink gives an absolute path) */
    static const char *const beside[] = {"/../share/repsweep", "/share/repsweep"};
    for (size_t i = 0; i < sizeof beside / sizeof *beside; i++) {
        snprintf(guess, sizeof guess, "%s%s", exe, beside[i]);
        snprintf(probe, sizeof probe, "%s/jobs/architectures.cfg", guess);
        if (access(probe, R_OK) == 0 && realpath(guess, dir))
            return dir;
    }
    return NULL;
}

const char *opt_default_arch_file(void)
{
    static char path[PATH_MAX + 32];
    const char *dir = opt_data_dir();
    if (!dir)
        return NULL;
    snprintf(path, sizeof path, "%s/jobs/architectures.cfg", dir);
    return path;
}

const char *opt_arch_file(const char *flag_value)
{
    if (flag_value)
        return flag_value;
    const char *env = getenv("REPSWEEP_ARCHITECTURES");
    if (env && *env)
        return env;
    const char *installed = opt_default_arch_file();
    return installed ? installed : "architectures.cfg (no installed share/repsweep found)";
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

int opt_cpus_short(long threads)
{
    if (omp_get_proc_bind() != omp_proc_bind_false)
        return 0;
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof set, &set) != 0)
        return 0;
    return CPU_COUNT(&set) < threads ? CPU_COUNT(&set) : 0;
}

void opt_warn_threads(const char *cmd, long threads, int ranks_short, int workers, int cpus)
{
    if (ranks_short == 0)
        return;
    if (workers > 0)
        fprintf(stderr, "repsweep %s: warning: --threads %ld, but %d of %d computing rank(s) "
                "may run on only %d CPU(s) (affinity mask)", cmd, threads, ranks_short, workers,
                cpus);
    else
        fprintf(stderr, "repsweep %s: warning: --threads %ld, but this process may run on only "
                "%d CPU(s) (its affinity mask)", cmd, threads, cpus);
    fprintf(stderr, ": the threads would share them, each layer waiting for the slowest. Give "
            "%s %ld CPUs (mpirun --map-by slot:PE=%ld, or --bind-to none; srun "
            "--cpus-per-task=%ld) or lower --threads.\n", workers > 0 ? "each rank" : "it",
            threads, threads, threads);
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

const char *opt_full_disk_note(const char *path, char *note)
{
    char dir[4096];
    struct statvfs v;
    note[0] = 0;
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else if (slash == dir)
        dir[1] = 0;
    else
        *slash = 0;
    if (statvfs(dir, &v) == 0 && (unsigned long long)v.f_bavail * v.f_frsize < 1048576ULL)
        snprintf(note, 128, " (its file system has %llu bytes free: no space left on the "
                 "device)", (unsigned long long)v.f_bavail * v.f_frsize);
    return note;
}

void opt_exit_after_failed_write(int rc)
{
    fflush(stdout);
    fflush(stderr);
    _exit(rc);
}
