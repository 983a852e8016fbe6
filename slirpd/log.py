"""Logging: one line per event on stderr; quiet unless --debug or SLIRPD_DEBUG=1.

Lines carry no timestamp of their own.  When stderr is connected to the
journal ($JOURNAL_STREAM names stderr's device and inode, as systemd sets it),
each line starts with its syslog priority ("<4>...", sd-daemon(3)) instead of
"slirpd: ", so journald files it at the right level and adds the rest.

`log` has the calls of a logging.Logger that slirpd makes (debug, warning,
error, with %-style arguments), but the daemon does not import the
logging module: that, with what it imports, would cost a fifth of the time
slirpd may take to be ready (issue 19).  Once setup() has run (the `slirpd`
command does it first thing), a line is formatted and written here.  Before
that, as when slirpd's modules are used as a library or in tests, every
call goes to the logging module's "slirpd" logger (imported then), so its
handlers, levels and pytest's caplog see the records as they always did.
"""

from __future__ import annotations

import os
import sys

DEBUG, WARNING, ERROR = 10, 30, 40  # logging's levels
# levels -> syslog priorities (sd-daemon(3) prefixes)
_PRIORITY = {ERROR: 3, WARNING: 4, DEBUG: 7}


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


class Log:
    """slirpd's logger (see the module doc)."""

    def __init__(self):
        self.stream = None  # set by setup(); None: the logging module's logger
        self.level = WARNING
        self.journal = False
        self.prefix = "slirpd: "

    def setup(self, debug: bool, stream, prefix: str = "slirpd: ") -> None:
        """Write to stream from now on, every event with debug, otherwise
        warnings and errors only; priority prefixes when it is the journal,
        else prefix in front of each line (pasta's have none)."""
        self.stream = stream
        self.level = DEBUG if debug else WARNING
        self.journal = stderr_is_journal(stream=stream)
        self.prefix = prefix

    def line(self, level: int, msg: str, args: tuple) -> str:
        """One event, one line: line breaks in the message are kept visible
        as "\\n"; a priority or the prefix in front."""
        text = (msg % args if args else msg).replace("\n", "\\n")
        return f"<{_PRIORITY[level]}>{text}" if self.journal else f"{self.prefix}{text}"

    def _log(self, level: int, msg: str, args: tuple) -> None:
        if self.stream is None:
            import logging

            logging.getLogger("slirpd").log(level, msg, *args)
        elif level >= self.level:
            try:
                self.stream.write(self.line(level, msg, args) + "\n")
                self.stream.flush()
            except (OSError, ValueError):
                pass  # stderr is gone: nowhere to say so

    def debug(self, msg: str, *args) -> None:
        self._log(DEBUG, msg, args)

    def warning(self, msg: str, *args) -> None:
        self._log(WARNING, msg, args)

    def error(self, msg: str, *args) -> None:
        self._log(ERROR, msg, args)


log = Log()


def setup(debug: bool, prefix: str = "slirpd: ", path: str | None = None) -> None:
    """Send slirpd's log to stderr, or to the file at path (opened now,
    appended to); lines start with prefix (pasta's have none).  debug shows
    every event, otherwise warnings and errors only.  Raises OSError for a
    file that cannot be opened."""
    stream = sys.stderr if path is None else open(path, "a", buffering=1, encoding="utf-8")
    log.setup(debug or os.environ.get("SLIRPD_DEBUG", "") not in ("", "0"), stream, prefix)
