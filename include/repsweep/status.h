/* status.h — repsweep's status codes and their messages: the one place they are named.
 *
 * Every library function that can fail returns an int: RS_OK (0) on success, a negative
 * RS_E* code on failure. Non-fatal outcomes of a trial (diverged, fit failed, ODE collapse)
 * are positive RS_S* codes so that callers can tell "the computation ran and this is what
 * happened" from "the computation could not run". rs_strerror() maps both to text.
 * This module never allocates, prints or exits. */
#ifndef REPSWEEP_STATUS_H
#define REPSWEEP_STATUS_H

enum {
    RS_OK = 0,

    /* outcomes (the computation ran; the result says what happened) */
    RS_S_DIVERGED = 1,        /* training produced NaN/Inf */
    RS_S_FIT_FAILED = 2,      /* the least-squares fit did not produce rates */
    RS_S_COLLAPSED = 3,       /* ODE: dh2 reached 0 (identical-target rich regime); solution held at 0 */
    RS_S_NOT_CONVERGED = 4,   /* fit: iteration limit hit; rates are the last iterate */
    RS_S_STOPPED = 5,         /* a trial was abandoned on request (a signal); nothing to record */

    /* errors (the computation could not run) */
    RS_E_NOMEM = -1,          /* allocation failed */
    RS_E_INVALID = -2,        /* an argument is out of its documented range */
    RS_E_ODE = -3,            /* the ODE solver failed for a reason other than collapse */
    RS_E_IO = -4,             /* a file could not be read or written */
    RS_E_PARSE = -5,          /* a configuration file is malformed */
    RS_E_NOTFOUND = -6,       /* a named thing (architecture, key) does not exist */
    RS_E_NETCDF = -7          /* the netCDF library reported an error */
};

/* Text for a status code; never NULL. */
const char *rs_strerror(int status);

#include <stddef.h>

/* Write the message (printf format) into why[0..why_len) (nothing if why is NULL or why_len
 * 0) and return `status`: how a library function hands its cause to the caller. */
int rs_fail(char *why, size_t why_len, int status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
