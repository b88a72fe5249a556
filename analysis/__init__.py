"""analysis — plots and tables from repsweep's netCDF output (Debian's python3-xarray,
python3-netcdf4 and python3-matplotlib only). Run with Debian's interpreter:
``/usr/bin/python3 -m analysis --help``."""

from .results import load  # noqa: E402,F401  (analysis.load(path): a results file as N-D arrays)

__all__ = ["load"]
