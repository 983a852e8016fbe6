"""systemd readiness: the few lines of the sd_notify protocol.

With Type=notify, systemd passes NOTIFY_SOCKET (a path, or "@name" for the
abstract namespace); we send "READY=1" when the guest is served (the moment
-r fires), "STATUS=..." summaries, "STOPPING=1" on shutdown, and
"WATCHDOG=1" every half WATCHDOG_USEC when systemd asks for a watchdog.
The socket is connected at start-up, so it keeps working inside
--enable-sandbox.  Without NOTIFY_SOCKET every call does nothing.
"""

from __future__ import annotations

import os
import socket
import time


class Notifier:
    """A connection to systemd's notification socket, if there is one."""

    def __init__(self, environ=os.environ):
        self.sock: socket.socket | None = None
        self.watchdog_interval: float | None = None
        self.next_ping = 0.0
        path = environ.get("NOTIFY_SOCKET")
        if path:
            addr = "\0" + path[1:] if path.startswith("@") else path
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            try:
                self.sock.connect(addr)
            except OSError:
                self.sock.close()
                self.sock = None
        usec = environ.get("WATCHDOG_USEC", "")
        pid = environ.get("WATCHDOG_PID", "")
        if self.sock and usec.isdigit() and int(usec) > 0 and (not pid or pid == str(os.getpid())):
            self.watchdog_interval = int(usec) / 2e6

    def send(self, *lines: str) -> None:
        """Send one notification (lines like "READY=1"); errors are ignored,
        as with sd_notify(3)."""
        if self.sock is None:
            return
        try:
            self.sock.send("\n".join(lines).encode())
        except OSError:
            pass

    def timeout(self) -> float | None:
        """Seconds until the next watchdog ping, None without a watchdog."""
        if self.watchdog_interval is None:
            return None
        return max(0.0, self.next_ping - time.monotonic())

    def ping_if_due(self) -> None:
        """Send WATCHDOG=1 when it is time."""
        if self.watchdog_interval is not None and time.monotonic() >= self.next_ping:
            self.send("WATCHDOG=1")
            self.next_ping = time.monotonic() + self.watchdog_interval

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None
