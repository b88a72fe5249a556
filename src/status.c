/* status.c — messages for status codes (see status.h). */
#include "repsweep/status.h"

#include <stdarg.h>
#include <stdio.h>

const char *rs_strerror(int status)
{
    switch (status) {
    case RS_OK: return "ok";
    case RS_S_DIVERGED: return "training diverged (NaN or Inf)";
    case RS_S_FIT_FAILED: return "fit failed";
    case RS_S_COLLAPSED: return "ODE collapsed: dh2 reached 0";
    case RS_S_NOT_CONVERGED: return "fit did not converge within its iteration limit";
    case RS_S_STOPPED: return "stopped on request (signal)";
    case RS_E_NOMEM: return "out of memory";
    case RS_E_INVALID: return "invalid argument";
    case RS_E_ODE: return "ODE solver failed";
    case RS_E_IO: return "input/output error";
    case RS_E_PARSE: return "malformed configuration";
    case RS_E_NOTFOUND: return "not found";
    case RS_E_NETCDF: return "netCDF error";
    default: return "unknown status";
    }
}

int rs_fail(char *why, size_t why_len, int status, const char *fmt, ...)
{
    if (why && why_len) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(why, why_len, fmt, ap);
        va_end(ap);
    }
    return status;
}
