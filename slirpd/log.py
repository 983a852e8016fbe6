"""Logging: one line per event on stderr; quiet unless --debug or SLIRPD_DEBUG=1.

Lines carry no timestamp of their own.  When stderr is connected to the
journal ($JOURNAL_STREAM names stderr's device and inode, as systemd sets it),
each line starts with its syslog priority ("<4>...", sd-daemon(3)) instead of
"slirpd: ", so journald files it at the right level and adds the rest.

As pasta (log.c), unless it logs to a file: every line also goes to the
system logger, a datagram to /dev/log ("<PRI> pasta: TEXT", facility daemon,
without a timestamp: the logger adds it), when there is one at start-up (the
socket is connected then, so it stays usable inside the sandbox), but not
with --debug (pasta keeps debug output off syslog).  Once pasta's daemon has
detached, stderr is /dev/null and syslog is where its lines go (to_syslog_only()).

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
SYSLOG_PATH = "/dev/log"  # glibc's _PATH_LOG
LOG_DAEMON = 3 << 3  # syslog's facility of system daemons
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
        self.syslog = None  # a socket connected to SYSLOG_PATH, or None
        self.ident = ""

    def open_syslog(self, ident: str, path: str = SYSLOG_PATH) -> None:
        """Send each line to the system logger at path as well, as ident
        (nothing happens if there is none)."""
        import socket

        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        try:
            sock.connect(path)
        except OSError:
            sock.close()
            return
        sock.setblocking(False)  # a logger that does not keep up costs lines, never the daemon's time
        self.syslog, self.ident = sock, ident

    def to_syslog_only(self) -> None:
        """Stop writing to the stream (pasta's detached daemon: it is
        /dev/null); syslog, if open, goes on."""
        self.stream = _NOWHERE

    def _send_syslog(self, level: int, msg: str, args: tuple) -> None:
        text = (msg % args if args else msg).replace("\n", "\\n")
        try:
            self.syslog.send(f"<{LOG_DAEMON | _PRIORITY[level]}> {self.ident}: {text}\n".encode(errors="replace"))
        except OSError:
            pass  # the logger is gone or full: nowhere to say so

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
            if self.syslog is not None and self.level > DEBUG:
                self._send_syslog(level, msg, args)
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


class _Nowhere:
    """A stream that takes every line and keeps none."""

    def write(self, _text: str) -> None:
        pass

    def flush(self) -> None:
        pass


_NOWHERE = _Nowhere()
log = Log()


def setup(debug: bool, prefix: str = "slirpd: ", path: str | None = None) -> None:
    """Send slirpd's log to stderr, or to the file at path (opened now,
    appended to); lines start with prefix (pasta's have none).  debug shows
    every event, otherwise warnings and errors only.  Raises OSError for a
    file that cannot be opened."""
    stream = sys.stderr if path is None else open(path, "a", buffering=1, encoding="utf-8")
    log.setup(debug or os.environ.get("SLIRPD_DEBUG", "") not in ("", "0"), stream, prefix)
