/* options.h — command-line helpers shared by the subcommands: strict number parsing that
 * names the flag and what was expected, and locating the architectures file. */
#ifndef REPSWEEP_CLI_OPTIONS_H
#define REPSWEEP_CLI_OPTIONS_H

/* Parse `text` as a finite double / a long in [min, max]; on failure print
 * "repsweep CMD: FLAG expects ..., got 'text'" to stderr and return -1. */
int opt_double(const char *cmd, const char *flag, const char *text, double min, double max,
               double *out);
int opt_long(const char *cmd, const char *flag, const char *text, long min, long max, long *out);

/* The architectures file: --arch-file if given, else $REPSWEEP_ARCHITECTURES, else the
 * source tree's jobs/architectures.cfg (compiled in). */
const char *opt_arch_file(const char *flag_value);

/* This process's peak resident memory in bytes (VmHWM of /proc/self/status: the high-water
 * mark of its own address space, not inherited from a parent that forked it, unlike
 * getrusage's ru_maxrss), or -1 where /proc is not available. */
long long opt_peak_memory_bytes(void);

/* argv joined by spaces into buf (for provenance attributes). */
void opt_command_line(int argc, char **argv, char *buf, unsigned long len);

#endif
