"""analysis — plots and tables from repsweep's netCDF output (Debian's python3-xarray,
python3-netcdf4 and python3-matplotlib only). Run with Debian's interpreter:
``/usr/bin/python3 -m analysis --help``."""

# load(path): a results file as labelled N-D arrays
from .results import ResultsFileError, load  # noqa: F401

__all__ = ["load", "ResultsFileError"]
