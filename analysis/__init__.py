"""analysis — plots and tables from repsweep's netCDF output (Debian's python3-xarray,
python3-netcdf4 and python3-matplotlib only). Run with Debian's interpreter:
``/usr/bin/python3 -m analysis --help``."""

# load(paths...): results files as one flat, lazily read Dataset; unstack(ds): N-D arrays
from .results import ResultsFileError, load, open_results, unstack  # noqa: F401

__all__ = ["load", "open_results", "unstack", "ResultsFileError"]
