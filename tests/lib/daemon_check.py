"""Which tests run the slirpd under test: an audit hook on process starts.

The hardened pass (SLIRPD_TEST_HARDEN=1) runs only the tests marked daemon,
so a test that runs slirpd must carry the marker.  install() adds an audit
hook (PEP 578) that sees every subprocess.Popen, os.exec* and os.posix_spawn
of the test process; a start counts when a word of its argv is the slirpd
under test or a link to it (pasta), wherever it stands (after nsenter,
prlimit or strace's shell); and slirpd_argv() notes every argv it builds,
which also covers the argv a test writes into a shell script.
tests/conftest.py fails a test that ran slirpd without the marker.
"""

from __future__ import annotations

import os
import sys

# the events whose arguments carry an argv: (event, index of the argv)
ARGV_EVENTS = {"subprocess.Popen": 1, "os.exec": 1, "os.posix_spawn": 1}
_slirpd_real: list[str] = []  # install()'s slirpd, symbolic links resolved
_starts: list[str] = []


def _names_slirpd(word) -> bool:
    """Whether one argv word is a path of the slirpd under test."""
    try:
        word = os.fsdecode(word)
    except TypeError:
        return False
    return "/" in word and "\n" not in word and len(word) < 4096 and os.path.realpath(word) in _slirpd_real


def _audit(event: str, args: tuple):
    """The audit hook: note a start of slirpd."""
    index = ARGV_EVENTS.get(event)
    if index is None or len(args) <= index:
        return
    argv = args[index]
    words = [argv] if isinstance(argv, (str, bytes, os.PathLike)) else argv or []
    for word in words:
        if _names_slirpd(word):
            _starts.append(os.fsdecode(word))
            return


def install(slirpd: str):
    """Start watching for starts of the program slirpd (once a session: an
    audit hook stays)."""
    _slirpd_real.append(os.path.realpath(slirpd))
    sys.addaudithook(_audit)


def note_argv(argv: list[str]):
    """Record an argv that runs slirpd (slirpd_argv() calls it)."""
    _starts.append(argv[0])


def reset():
    """Forget the starts seen so far (at the start of each test)."""
    _starts.clear()


def started() -> str:
    """The first slirpd started since reset(), "" if none."""
    return _starts[0] if _starts else ""
