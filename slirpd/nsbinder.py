"""Bind sockets inside the guest's network namespace on demand, once serving.

pasta's `-T auto` / `-U auto` follow the host's ports while slirpd serves: a
port bound on the host later must be listened on from the namespace's
loopback then (nsautofwd.py).  The daemon cannot do it itself: it never
joins the guest's network namespace (its own sockets are the "outside"), and
under seccomp it may not even create a socket of another family than
AF_INET and AF_INET6.  So NamespaceBinder forks, at setup, a small helper
that joins the guest's user and network namespaces (as netns.py's TapHelper
does) and stays there.  It keeps only its end of a SOCK_SEQPACKET pair;
each request is one datagram (REQUEST: operation, protocol number, IP
version, port), and its answer is "ok" with the socket bound to that port of
the namespace's 127.0.0.1 or ::1 (OP_BIND: listening, for TCP; non-blocking)
over SCM_RIGHTS, or "e" with the errno.  OP_SOCKETS asks for that many
unconnected TCP sockets instead, for --host-lo-to-ns-lo (nslopool.py).  The daemon only sends and receives on
its end, which seccomp allows.

Lifetime: the helper ignores the signals that end a process (a Ctrl-C or
SIGTERM reaches the whole group; the daemon decides when to go) and ends
when the pair's other end closes: the daemon closing it, or dying, even by
SIGKILL.  No pdeathsig: pasta's daemon is the helper's parent's child, so
the parent's exit 0 (readiness) would kill it.  A helper that is gone makes
bind() raise HelperGone; automatic forwarding then stops, the daemon lives
on.  An answer waits ANSWER_TIMEOUT at most.

Cost: the helper is a forked Python, about 4 MB of PSS in all (measured with
one port mirrored: daemon and helper 13.2-13.5 MB, the daemon alone 9.2 MB),
of which 3.7 MB private.
"""

from __future__ import annotations

import errno
import gc
import os
import signal
import socket
import struct

from slirpd._linux import CLONE_NEWNET, CLONE_NEWUSER, PR_SET_NAME, libc, setns
from slirpd.autofwd import ForwardingStopped
from slirpd.remover import IGNORED_SIGNALS, close_all_but

HELPER_NAME = b"slirpd-nsbind"  # what ps shows for the helper (comm, 15 bytes at most)
REQUEST = struct.Struct("=BBBH")  # op, IPPROTO_TCP or IPPROTO_UDP, 4 or 6, port (OP_SOCKETS: how many)
OP_BIND = 1  # a socket bound to the port of the loopback
OP_SOCKETS = 2  # that many unconnected TCP sockets (--host-lo-to-ns-lo's pool)
SOCKETS_MAX = 32  # sockets per OP_SOCKETS answer at most
ANSWER_MAX = 64
ANSWER_TIMEOUT = 1.0  # seconds the daemon waits for an answer at most
OK_ANSWER = b"ok"
LOOPBACK = {4: "127.0.0.1", 6: "::1"}


class HelperGone(ForwardingStopped):
    """The helper is not there any more (it died, or was never ready)."""


def bind_loopback(proto: str, version: int, port: int) -> socket.socket:
    """A socket bound to port of this namespace's 127.0.0.1 (version 4) or
    ::1 (6), as pasta's -T/-U ones: IPv6 only on ::1, SO_REUSEADDR and
    listening for TCP, non-blocking, close-on-exec.  Raises OSError."""
    family = socket.AF_INET if version == 4 else socket.AF_INET6
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    sock = socket.socket(family, kind | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC)
    try:
        if version == 6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        if kind == socket.SOCK_STREAM:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((LOOPBACK[version], port))
        if kind == socket.SOCK_STREAM:
            sock.listen(socket.SOMAXCONN)
    except OSError:
        sock.close()
        raise
    return sock


def _send_sockets(sock: socket.socket, version: int, count: int) -> None:
    """Answer OP_SOCKETS: count unconnected non-blocking TCP sockets of
    version (fewer if the helper runs short of descriptors, "e" if none)."""
    family = socket.AF_INET if version == 4 else socket.AF_INET6
    made = []
    try:
        for _ in range(count):
            made.append(socket.socket(family, socket.SOCK_STREAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC))
    except OSError as e:
        if not made:
            sock.send(b"e%d" % e.errno)
            return
    try:
        socket.send_fds(sock, [OK_ANSWER], [s.fileno() for s in made])
    finally:
        for s in made:
            s.close()


def _serve(sock: socket.socket) -> None:
    """The helper's loop: answer each request until the daemon's end closes."""
    while True:
        request = sock.recv(REQUEST.size)
        if not request:
            return
        if len(request) != REQUEST.size:
            sock.send(b"e%d" % errno.EINVAL)
            continue
        op, proto, version, port = REQUEST.unpack(request)
        if proto not in (socket.IPPROTO_TCP, socket.IPPROTO_UDP) or version not in LOOPBACK or \
                op not in (OP_BIND, OP_SOCKETS) or (op == OP_SOCKETS and not 0 < port <= SOCKETS_MAX):
            sock.send(b"e%d" % errno.EINVAL)
            continue
        if op == OP_SOCKETS:
            _send_sockets(sock, version, port)
            continue
        try:
            bound = bind_loopback("tcp" if proto == socket.IPPROTO_TCP else "udp", version, port)
        except OSError as e:
            sock.send(b"e%d" % e.errno)
            continue
        with bound:
            socket.send_fds(sock, [OK_ANSWER], [bound.fileno()])


def _helper(netns_fd: int, userns_fd: int | None, sock: socket.socket) -> None:
    """The forked helper: join the guest's namespaces, serve.  Never returns."""
    status = 1
    try:
        gc.freeze()  # the collector never walks (and so copies) the daemon's objects
        for sig in IGNORED_SIGNALS:
            signal.signal(sig, signal.SIG_IGN)
        libc().prctl(PR_SET_NAME, HELPER_NAME, 0, 0, 0)  # only what ps shows: a failure changes nothing
        if userns_fd is not None:
            setns(userns_fd, CLONE_NEWUSER)
        setns(netns_fd, CLONE_NEWNET)
        close_all_but({sock.fileno()})
        _serve(sock)
        status = 0
    except BaseException:  # the daemon sees HelperGone; nothing here may raise past the fork
        pass
    finally:
        os._exit(status)


class NamespaceBinder:
    """The helper that binds sockets in the namespaces of ns
    (netns.TargetNamespaces, still open) for the daemon: forked when made."""

    def __init__(self, ns):
        self._sock, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
        libc()  # loaded before the fork: the helper only calls it
        with child:
            self.pid: int | None = os.fork()
            if self.pid == 0:
                self._sock.close()
                _helper(ns.netns_fd, ns.userns_fd, child)
        timeout = struct.pack("=qq", int(ANSWER_TIMEOUT), 0)  # no poll() under seccomp: SO_RCVTIMEO
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, timeout)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, timeout)

    def bind(self, proto: str, version: int, port: int) -> socket.socket:
        """A socket of the guest's namespace bound to port of its 127.0.0.1
        (version 4) or ::1 (6), listening for TCP.  Raises OSError with the
        helper's errno, HelperGone if it is not there."""
        proto_num = socket.IPPROTO_TCP if proto == "tcp" else socket.IPPROTO_UDP
        fds = self._ask(REQUEST.pack(OP_BIND, proto_num, version, port), 1)
        family = socket.AF_INET if version == 4 else socket.AF_INET6
        kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
        return socket.socket(family, kind, fileno=fds[0])

    def sockets(self, version: int, count: int) -> list[socket.socket]:
        """Up to count (at most SOCKETS_MAX) unconnected non-blocking TCP
        sockets of the guest's namespace, of IP version 4 or 6, at least one.
        Raises as bind()."""
        fds = self._ask(REQUEST.pack(OP_SOCKETS, socket.IPPROTO_TCP, version, min(count, SOCKETS_MAX)),
                        SOCKETS_MAX)
        family = socket.AF_INET if version == 4 else socket.AF_INET6
        return [socket.socket(family, socket.SOCK_STREAM, fileno=fd) for fd in fds]

    def _ask(self, request: bytes, max_fds: int) -> list[int]:
        """Send one request, return the descriptors of its "ok" answer (at
        least one, max_fds at most).  Raises OSError with the helper's
        errno, HelperGone if it is not there."""
        if self._sock is None:
            raise HelperGone(errno.EPIPE, "the namespace helper is gone")
        try:
            self._sock.send(request)
            msg, fds, _flags, _addr = socket.recv_fds(self._sock, ANSWER_MAX, max_fds, socket.MSG_CMSG_CLOEXEC)
        except OSError as e:
            self.close()
            raise HelperGone(e.errno or errno.ETIMEDOUT, f"the namespace helper is gone: {e}") from None
        if msg == OK_ANSWER and fds:
            return fds
        for fd in fds:
            os.close(fd)
        if msg[:1] == b"e" and msg[1:].isdigit():
            err = int(msg[1:])
            raise OSError(err, os.strerror(err))
        self.close()
        raise HelperGone(errno.EPIPE, "the namespace helper is gone")

    def close(self) -> None:
        """Let the helper go (it ends at the pair's end) and reap it if it is
        our child (pasta's daemon is its sibling: init reaps it then)."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        if self.pid:
            pid, self.pid = self.pid, None
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass
