"""Notice when a namespace file goes away: pasta quits then.

podman binds the network namespace to a file (/run/user/UID/netns/NAME) and,
when the container is gone, unmounts and removes it; it counts on pasta to
exit then (within seconds: podman's own test gives it 5).  The namespace
itself may live on after that (our TAP descriptor is in it), so the file is
what is watched, as pasta watches it: inotify on its directory, for the
file's name being deleted or moved away (IN_DELETE, IN_MOVED_FROM), and for
the directory itself going (IN_DELETE_SELF, IN_MOVE_SELF, IN_UNMOUNT of its
file system).  The inotify descriptor is made at setup; reading it is all the
serving daemon does (no path is looked at, so it works inside
--enable-sandbox and --enable-seccomp).
"""

from __future__ import annotations

import os
import struct

from slirpd._linux import SetupError, last_error, libc

IN_NONBLOCK = os.O_NONBLOCK
IN_CLOEXEC = os.O_CLOEXEC
IN_MOVED_FROM, IN_DELETE, IN_DELETE_SELF, IN_MOVE_SELF, IN_UNMOUNT, IN_IGNORED = \
    0x40, 0x200, 0x400, 0x800, 0x2000, 0x8000
EVENT = struct.Struct("=iIII")  # wd, mask, cookie, len; then the name, NUL-padded
READ_MAX = 65536  # bytes of events read at once


class NamespaceFileWatch:
    """Watches one file's directory; gone() tells once the file is removed
    (or its directory goes).  Raises SetupError if it cannot watch."""

    def __init__(self, path: str):
        self.dir, self.name = os.path.split(os.path.abspath(path))
        fd = libc().inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if fd < 0:
            raise SetupError(f"cannot watch {path}: {last_error('inotify').strerror}")
        self.fd = fd
        mask = IN_DELETE | IN_MOVED_FROM | IN_DELETE_SELF | IN_MOVE_SELF
        if libc().inotify_add_watch(fd, os.fsencode(self.dir), mask) < 0:
            err = last_error(f"cannot watch {self.dir} for {self.name} to go")
            os.close(fd)
            raise SetupError(f"{err.strerror} (--no-netns-quit does not watch)")
        if not os.path.lexists(path):  # removed before the watch began
            os.close(fd)
            raise SetupError(f"{path} is gone")

    def fileno(self) -> int:
        return self.fd

    def gone(self) -> bool:
        """Read the events waiting. Return: True if one says the file or its
        directory is gone."""
        try:
            data = os.read(self.fd, READ_MAX)
        except BlockingIOError:
            return False
        off = 0
        while off + EVENT.size <= len(data):
            _wd, mask, _cookie, length = EVENT.unpack_from(data, off)
            name = data[off + EVENT.size:off + EVENT.size + length].rstrip(b"\0").decode(errors="replace")
            off += EVENT.size + length
            if mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_UNMOUNT | IN_IGNORED):
                return True
            if mask & (IN_DELETE | IN_MOVED_FROM) and name == self.name:
                return True
        return False

    def close(self) -> None:
        os.close(self.fd)
