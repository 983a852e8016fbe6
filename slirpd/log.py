"""Logging: one line per event on stderr; quiet unless --debug or SLIRPD_DEBUG=1.

Lines carry no timestamp of their own.  When stderr is connected to the
journal ($JOURNAL_STREAM names stderr's device and inode, as systemd sets it),
each line starts with its syslog priority ("<4>...", sd-daemon(3)) instead of
"slirpd: ", so journald files it at the right level and adds the rest.
"""

from __future__ import annotations

import logging
import os
import sys

log = logging.getLogger("slirpd")

# logging levels -> syslog priorities (sd-daemon(3) prefixes)
_PRIORITY = {logging.CRITICAL: 2, logging.ERROR: 3, logging.WARNING: 4, logging.INFO: 6, logging.DEBUG: 7}


def stderr_is_journal(environ=os.environ, stream=sys.stderr) -> bool:
    """True if $JOURNAL_STREAM ("DEV:INODE") is the stream's file."""
    dev, _, ino = environ.get("JOURNAL_STREAM", "").partition(":")
    if not (dev.isdigit() and ino.isdigit()):
        return False
    try:
        st = os.fstat(stream.fileno())
    except (OSError, ValueError, AttributeError):
        return False
    return (st.st_dev, st.st_ino) == (int(dev), int(ino))


class _OneLine(logging.Formatter):
    """One event, one line: line breaks in a message (or a traceback) are
    kept visible as "\\n"; with journal, a priority prefix."""

    def __init__(self, journal: bool, prefix: str = "slirpd: "):
        super().__init__("%(message)s")
        self.journal = journal
        self.prefix = prefix

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record).replace("\n", "\\n")
        if self.journal:
            return f"<{_PRIORITY.get(record.levelno, 6)}>{text}"
        return f"{self.prefix}{text}"


def setup(debug: bool, prefix: str = "slirpd: ", path: str | None = None) -> None:
    """Send slirpd's log to stderr, or to the file at path (opened now,
    appended to); lines start with prefix (pasta's have none).  debug shows
    every event, otherwise warnings and errors only.  Raises OSError for a
    file that cannot be opened."""
    debug = debug or os.environ.get("SLIRPD_DEBUG", "") not in ("", "0")
    if path is not None:
        handler = logging.StreamHandler(open(path, "a", buffering=1, encoding="utf-8"))
        handler.setFormatter(_OneLine(False, prefix))
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(_OneLine(stderr_is_journal(), prefix))
    log.handlers[:] = [handler]
    log.setLevel(logging.DEBUG if debug else logging.WARNING)
    log.propagate = False
