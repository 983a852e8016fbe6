"""Build slirpd._dp, the compiled data plane, with cffi (API mode, out of line).

Used by setup.py through ``cffi_modules=["build_ffi.py:ffibuilder"]``; run it
directly (``python build_ffi.py``) to build the extension in place for quick
tests.  Set ``SLIRPD_SANITIZE=1`` to build with AddressSanitizer and UBSan.

Only the public API, csrc/dp_api.h, is declared to cffi; the C side includes
it through dp.h, so there is one definition of it.
"""

import glob
import os

import cffi

HERE = os.path.dirname(os.path.abspath(__file__))


def _relative(path):
    """Return path relative to the directory of this file (setuptools wants
    relative source paths for cffi_modules)."""
    return os.path.relpath(path, HERE)


with open(os.path.join(HERE, "csrc", "dp_api.h"), encoding="utf-8") as f:
    _API = f.read()

_SOURCES = sorted(_relative(p) for p in glob.glob(os.path.join(HERE, "csrc", "*.c")))

_CFLAGS = ["-std=gnu11", "-D_GNU_SOURCE", "-Wall", "-Wextra", "-O2"]
_LDFLAGS = []
if os.environ.get("SLIRPD_SANITIZE") == "1":
    _SANITIZE = ["-fsanitize=address,undefined", "-fno-omit-frame-pointer"]
    _CFLAGS += _SANITIZE + ["-O1"]
    _LDFLAGS += _SANITIZE

ffibuilder = cffi.FFI()
ffibuilder.cdef(_API)
ffibuilder.set_source(
    "slirpd._dp",
    '#include "dp.h"',
    sources=_SOURCES,
    include_dirs=["csrc"],
    extra_compile_args=_CFLAGS,
    extra_link_args=_LDFLAGS,
)

if __name__ == "__main__":
    # Relative sources and include_dirs resolve against this directory
    os.chdir(HERE)
    ffibuilder.compile(verbose=True)
    # The in-place build leaves objects beside the sources: not worth keeping
    for obj in glob.glob(os.path.join("csrc", "*.o")):
        os.unlink(obj)
