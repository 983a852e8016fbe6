"""--target-type=bess: serve one BESS peer (User Mode Linux) instead of a TAP.

UML's "bess" vector transport connects to a UNIX SOCK_SEQPACKET socket and
exchanges bare Ethernet frames, one per message: exactly what a TAP fd
carries, so the data plane serves the accepted connection as its "TAP".
Only one peer is served, as slirp4netns does: the socket file is removed
once it is connected; when it disconnects the data plane sees end-of-file
and slirpd exits.
"""

from __future__ import annotations

import selectors
import signal
import socket

from slirpd._linux import SetupError
from slirpd.unixsock import listen_unix


class _Stopped(Exception):
    pass


def _raise_stopped(_signum, _frame):
    raise _Stopped


def listen(path: str) -> socket.socket:
    """Create the listening socket at path (a stale socket there is replaced;
    any other file is an error)."""
    return listen_unix(path, socket.SOCK_SEQPACKET, 1)


def accept_peer(listener: socket.socket, exit_fd: int | None, on_ready) -> int | None:
    """Call on_ready() once SIGTERM/SIGINT are handled, then wait for the
    peer.  Return: its fd (non-blocking), or None if a signal or the exit fd
    asked to stop first."""
    old = {s: signal.signal(s, _raise_stopped) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        on_ready()
        with selectors.DefaultSelector() as sel:
            sel.register(listener, selectors.EVENT_READ, "peer")
            if exit_fd is not None:
                sel.register(exit_fd, selectors.EVENT_READ, "exit")
            while True:
                for key, _ in sel.select():
                    if key.data == "exit":
                        return None
                    try:
                        conn, _ = listener.accept()
                    except OSError as e:  # e.g. out of descriptors: one line, not a traceback
                        raise SetupError(f"cannot accept the BESS peer: {e.strerror}") from None
                    conn.setblocking(False)
                    return conn.detach()
    except _Stopped:
        return None
    finally:
        for s, h in old.items():
            signal.signal(s, h)
