"""Build logic only: the cffi extension slirpd._dp from csrc/ (see build_ffi.py).

cffi builds it against Python's limited API (slirpd/_dp.abi3.so), so the wheel
is tagged abi3: one wheel for every CPython from 3.9 on.
"""

from setuptools import setup

setup(cffi_modules=["build_ffi.py:ffibuilder"], options={"bdist_wheel": {"py_limited_api": "cp39"}})
