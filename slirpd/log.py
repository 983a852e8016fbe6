"""Logging: one line per event on stderr; quiet unless --debug or SLIRPD_DEBUG=1."""

from __future__ import annotations

import logging
import os
import sys

log = logging.getLogger("slirpd")


def setup(debug: bool) -> None:
    """Send slirpd's log to stderr; debug shows every event, otherwise
    warnings and errors only."""
    debug = debug or os.environ.get("SLIRPD_DEBUG", "") not in ("", "0")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("slirpd: %(message)s"))
    log.handlers[:] = [handler]
    log.setLevel(logging.DEBUG if debug else logging.WARNING)
    log.propagate = False
