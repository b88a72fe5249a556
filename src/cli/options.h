/* options.h — command-line helpers shared by the subcommands: strict number parsing that
 * names the flag and what was expected, and locating the architectures file. */
#ifndef REPSWEEP_CLI_OPTIONS_H
#define REPSWEEP_CLI_OPTIONS_H

#include "repsweep/grid.h"

/* Parse `text` as a finite double / a long in [min, max]; on failure print
 * "repsweep CMD: FLAG expects ..., got 'text'" to stderr and return -1. */
int opt_double(const char *cmd, const char *flag, const char *text, double min, double max,
               double *out);
int opt_long(const char *cmd, const char *flag, const char *text, long min, long max, long *out);

/* `text` as the path of a file to write: refused at once (before any work) if it is empty or
 * an existing directory, with "repsweep CMD: FLAG expects a file's path, got ..." and -1. */
int opt_path(const char *cmd, const char *flag, const char *text, const char **out);

/* Parse `text` as a shard "I/N" (decimal digits only, 0 <= I < N < 2^32); on failure print
 * "repsweep CMD: FLAG expects I/N ..., got 'text'" and return -1. */
int opt_shard(const char *cmd, const char *flag, const char *text, rs_grid_shard *out);

/* " of shard I/N" for a shard of more than one, else "" (for progress messages); buf has
 * room for 64 characters. */
const char *opt_shard_note(const rs_grid_shard *s, char *buf);

/* The default of --threads: $OMP_NUM_THREADS (its first number; "4,2" gives 4) when set,
 * else 1. An unusable value prints "repsweep CMD: OMP_NUM_THREADS expects ..." and returns
 * -1. Precedence: --threads, else OMP_NUM_THREADS, else 1. */
int opt_default_threads(const char *cmd, int *out);

/* The installed data (jobs/, slurm/), found from the running binary (/proc/self/exe), never
 * compiled in: BINDIR/../share/repsweep (an install, PREFIX/bin and PREFIX/share), else
 * BINDIR/share/repsweep (the build tree, where the build copies jobs/ and slurm/); the first
 * holding jobs/architectures.cfg, as an absolute path in static storage, or NULL. */
const char *opt_data_dir(void);
/* opt_data_dir()'s jobs/architectures.cfg, or NULL (static storage). */
const char *opt_default_arch_file(void);

/* The architectures file: --arch-file if given, else $REPSWEEP_ARCHITECTURES, else the
 * installed one (opt_default_arch_file). */
const char *opt_arch_file(const char *flag_value);

/* This process's peak resident memory in bytes (VmHWM of /proc/self/status: the high-water
 * mark of its own address space, not inherited from a parent that forked it, unlike
 * getrusage's ru_maxrss), or -1 where /proc is not available. */
long long opt_peak_memory_bytes(void);

/* The CPUs this process may run on (its affinity mask, as mpirun or srun bound it) if that
 * is fewer than `threads`, else 0. Also 0 when OpenMP binds threads itself (OMP_PROC_BIND,
 * OMP_PLACES): the runtime has then pinned the main thread, whose mask is all one can read. */
int opt_cpus_short(long threads);

/* The warning for --threads above the CPUs a rank may use: `ranks_short` of `workers`
 * computing ranks (0: a single process) may use only `cpus` (the fewest). Prints nothing
 * when ranks_short is 0. */
void opt_warn_threads(const char *cmd, long threads, int ranks_short, int workers, int cpus);

/* argv joined by spaces into buf (for provenance attributes). */
void opt_command_line(int argc, char **argv, char *buf, unsigned long len);

/* After a failed write of `path`: " (its file system has N bytes free: no space left on the
 * device)" when the file system of its directory has less than 1 MiB free, else "" (netCDF
 * reports a full disk as "Permission denied" or "HDF error"). `note` has room for 128. */
const char *opt_full_disk_note(const char *path, char *note);

/* End the process with status rc after a failed netCDF write: netCDF 4.9.0 with HDF5 1.10
 * leaves a half-closed file whose HDF5 exit handler crashes (SIGSEGV in H5F__close_cb,
 * measured on a full tmpfs), so stdio is flushed and the exit handlers skipped (_exit).
 * Call only when everything else is saved (and after MPI_Finalize). */
void opt_exit_after_failed_write(int rc) __attribute__((noreturn));

#endif
