"""Build logic only: the cffi extension slirpd._dp from csrc/ (see build_ffi.py)."""

from setuptools import setup

setup(cffi_modules=["build_ffi.py:ffibuilder"])
