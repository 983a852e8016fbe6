"""Listening UNIX sockets at a path (the API socket, the BESS socket)."""

from __future__ import annotations

import os
import socket
import stat

from slirpd._linux import SetupError


def listen_unix(path: str, kind: int, backlog: int) -> socket.socket:
    """Bind a listening UNIX socket of kind at path, mode 0600.  A stale
    socket there is replaced; any other file is an error (SetupError)."""
    try:
        if not stat.S_ISSOCK(os.lstat(path).st_mode):
            raise SetupError(f"{path!r} exists and is not a socket")
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as e:
        raise SetupError(f"cannot use {path!r}: {e.strerror}") from None
    sock = socket.socket(socket.AF_UNIX, kind | socket.SOCK_CLOEXEC)
    old_umask = os.umask(0o177)
    try:
        sock.bind(path)
        sock.listen(backlog)
    except OSError as e:
        sock.close()
        raise SetupError(f"cannot listen on {path!r}: {e.strerror}") from None
    finally:
        os.umask(old_umask)
    return sock
