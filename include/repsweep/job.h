/* job.h — reading repsweep's configuration files (libconfig).
 *
 * Owns: parsing architecture records (jobs/architectures.cfg and, later, job files) into
 * rs_arch values, with every error naming the file, the line and what was expected; unknown
 * keys are errors, not ignored. The only module that includes libconfig.h.
 * Never: trains, writes files, talks MPI. */
#ifndef REPSWEEP_JOB_H
#define REPSWEEP_JOB_H

#include <stddef.h>

#include "repsweep/net.h"

typedef struct {
    rs_arch *arch;
    int count;
} rs_arch_table;

/* Load every architecture of `path` (a list `architectures = ( {...}, ... )`).
 * On error returns RS_E_IO / RS_E_PARSE / RS_E_NOMEM and writes "file:line: message" into
 * err. The table is freed with rs_arch_table_free. */
int rs_arch_table_load(const char *path, rs_arch_table *table, char *err, size_t err_len);
void rs_arch_table_free(rs_arch_table *table);

/* The architecture called `name`, or NULL. */
const rs_arch *rs_arch_table_find(const rs_arch_table *table, const char *name);

#endif
