# The package's version: the library's MPLB_VERSION (include/mplb/version.h)
# and CMake's project VERSION; tests/python/test_api.py checks all three agree.
__version__ = "0.1.0"
