"""Remove the API socket's file once the daemon is gone, from outside any
sandbox.

A UNIX socket's file can only be removed by name, and --enable-sandbox hides
every name of the host: the daemon cannot reach the socket's directory once
it has pivoted into its tmpfs.  Keeping a descriptor of that directory
would be a way out of the sandbox (unlinkat(dir_fd, "../../...") reaches
anything the user may delete, and seccomp cannot look at the name), a bind
mount of it inside would let the daemon write there, and Linux has no call
that unlinks a file by a descriptor of the file itself.  So the one
directory descriptor lives in another process.

SocketRemover forks, before the sandbox, a small helper that keeps only the
directory's descriptor and the read end of a pipe from the daemon, ignores
the signals that end processes (a Ctrl-C or systemd's SIGTERM reaches the
whole group), and waits for the pipe's end: the daemon closing it at exit,
or the kernel closing it when the daemon dies, even by SIGKILL.  Then it
removes the name if it is still the socket the daemon bound (a daemon
started since on the same path keeps its own), and exits.  The daemon itself
holds no descriptor outside its root and needs no unlink call under seccomp.
"""

from __future__ import annotations

import os
import signal
import stat

from slirpd._linux import PR_SET_NAME, libc

HELPER_NAME = b"slirpd-sockrm"  # what ps shows for the helper (comm, 15 bytes at most)
# The signals whose default action ends a process, but SIGKILL and SIGSTOP
IGNORED_SIGNALS = (signal.SIGHUP, signal.SIGINT, signal.SIGQUIT, signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2,
                   signal.SIGPIPE, signal.SIGALRM)


def close_all_but(keep: set[int]) -> None:
    """Close every descriptor of this process but keep (stdio goes to /dev/null)."""
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    keep = keep | {0, 1, 2}
    for fd in [int(name) for name in os.listdir("/proc/self/fd")]:
        if fd not in keep:
            try:
                os.close(fd)
            except OSError:  # the directory listing's own descriptor, closed by now
                pass


def _helper(dir_fd: int, name: str, identity: tuple[int, int], pipe_r: int) -> None:
    """The forked helper: wait for the daemon to go, remove the socket's
    name, exit.  Never returns."""
    status = 1
    try:
        for sig in IGNORED_SIGNALS:
            signal.signal(sig, signal.SIG_IGN)
        libc().prctl(PR_SET_NAME, HELPER_NAME, 0, 0, 0)  # only what ps shows: a failure changes nothing
        close_all_but({dir_fd, pipe_r})
        while os.read(pipe_r, 1):  # nothing is written: this returns at the pipe's end
            pass
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        if stat.S_ISSOCK(st.st_mode) and (st.st_dev, st.st_ino) == identity:
            os.unlink(name, dir_fd=dir_fd)
        status = 0
    finally:
        os._exit(status)


class SocketRemover:
    """The helper that removes the socket file at path (bound just now) when
    remove() is called or the daemon dies."""

    def __init__(self, path: str):
        path = os.path.abspath(path)
        dir_fd = os.open(os.path.dirname(path), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        pipe_r = None
        try:
            st = os.stat(path, follow_symlinks=False)
            libc()  # loaded before the fork: the helper only calls it
            pipe_r, pipe_w = os.pipe2(os.O_CLOEXEC)
            try:
                self.pid = os.fork()
            except OSError:
                os.close(pipe_w)
                raise
            if self.pid == 0:
                _helper(dir_fd, os.path.basename(path), (st.st_dev, st.st_ino), pipe_r)
            self._pipe_w: int | None = pipe_w
        finally:
            os.close(dir_fd)
            if pipe_r is not None:
                os.close(pipe_r)

    def remove(self) -> None:
        """Have the helper remove the file now, and wait until it has."""
        if self._pipe_w is None:
            return
        os.close(self._pipe_w)
        self._pipe_w = None
        os.waitpid(self.pid, 0)
