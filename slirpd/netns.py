"""Join the guest's namespaces in a forked helper and bring back a TAP fd.

setns(2) into a user namespace needs a single-threaded process, and the daemon
itself must stay in the host's namespaces (its sockets are the "outside").  So
a child is forked (TapHelper): it joins the user namespace that owns the
target network namespace (unless it is already ours), then the network
namespace, opens /dev/net/tun, creates or attaches to the TAP, and sends the
fd back over a SOCK_SEQPACKET pair with SCM_RIGHTS.  Then, when asked, it
configures the guest (configure.py) while the daemon goes on setting up its
data plane, sockets, sandbox and seccomp filter, and says "ok" (or why not)
as its second answer; the daemon waits for that just before it signals
ready.  Errors travel back the same way as one line of text.

The TAP is opened with IFF_VNET_HDR, so that the data plane can use checksum
and segmentation offloads (csrc/tap.c); a kernel that refuses the flag gets a
TAP without it, and tap_has_vnet_hdr() tells the data plane which it got.
"""

from __future__ import annotations

import errno
import fcntl
import os
import socket
import struct

from slirpd._linux import CLONE_NEWNET, CLONE_NEWUSER, SetupError, setns
from slirpd.config import Config

NS_GET_USERNS = 0xB701  # _IO(0xb7, 0x1)
NS_GET_NSTYPE = 0xB703  # _IO(0xb7, 0x3)
TUNSETIFF = 0x400454CA
TUNGETIFF = 0x800454D2  # _IOR('T', 210, unsigned int)
TUNSETPERSIST = 0x400454CB  # _IOW('T', 203, int)
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000
IFF_VNET_HDR = 0x4000
IFNAMSIZ = 16
REPLY_MAX = 4096
TAP_ANSWER = b"tap"  # the helper's first answer, with the TAP's fd
OK_ANSWER = b"ok"  # its second: the guest is configured (or needed not be)


def _same_namespace(fd: int, path: str) -> bool:
    a, b = os.fstat(fd), os.stat(path)
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _open_ns(path: str, nstype: int, what: str) -> int:
    """Open a namespace file and check that it is a namespace of nstype."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise SetupError(f"{what} {path!r} does not exist") from None
    except OSError as e:
        raise SetupError(f"cannot open {what} {path!r}: {e.strerror}") from None
    try:
        actual = fcntl.ioctl(fd, NS_GET_NSTYPE)
    except OSError:
        actual = None
    if actual != nstype:
        os.close(fd)
        raise SetupError(f"{path!r} is not a {what}")
    return fd


def namespace_paths(cfg: Config) -> tuple[str, str | None]:
    """Return the network namespace path and the user namespace path (or None
    to use the one that owns the network namespace)."""
    if cfg.netns_type == "pid":
        if not os.path.exists(f"/proc/{cfg.target}"):
            raise SetupError(f"no such process: {cfg.target}")
        return f"/proc/{cfg.target}/ns/net", cfg.userns_path
    return cfg.target, cfg.userns_path


def _owning_userns(netns_fd: int, netns_path: str) -> int:
    try:
        return fcntl.ioctl(netns_fd, NS_GET_USERNS)
    except OSError as e:
        raise SetupError(f"cannot find the user namespace of {netns_path!r}: {e.strerror}") from None


def _set_iff(fd: int, name: str, flags: int) -> None:
    ifr = struct.pack(f"{IFNAMSIZ}sH", name.encode(), flags).ljust(40, b"\0")
    fcntl.ioctl(fd, TUNSETIFF, ifr)


def _create_tap(name: str) -> int:
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_CLOEXEC)
    try:
        try:
            _set_iff(fd, name, IFF_TAP | IFF_NO_PI | IFF_VNET_HDR)
        except OSError as e:
            if e.errno != errno.EINVAL:
                raise
            _set_iff(fd, name, IFF_TAP | IFF_NO_PI)  # no virtio-net headers: no offloads
    except OSError as e:
        os.close(fd)
        if e.errno == errno.EINVAL:
            raise SetupError(f"{name!r} exists and is not a TAP device with the flags slirpd needs") from None
        if e.errno == errno.EPERM:
            raise SetupError(f"not permitted to create or attach to TAP {name!r}") from None
        if e.errno == errno.EBUSY:
            raise SetupError(f"TAP {name!r} is already in use by another process") from None
        raise SetupError(f"TUNSETIFF {name!r}: {e.strerror}") from None
    return fd


def _make_persistent(fd: int) -> None:
    """With `-- COMMAND` the namespaces are slirpd's own and end with the
    command: a persistent TAP goes with its network namespace, which the
    kernel tears down on its own after slirpd has exited.  Closing a TAP
    that is not persistent unregisters the device there and then, which
    waits for RCU grace periods: 15 ms of slirpd's exit here, a third of
    what `slirpd -- true` may take (issue 19).  A kernel that refuses
    keeps the TAP as it was."""
    try:
        fcntl.ioctl(fd, TUNSETPERSIST, 1)
    except OSError:
        pass


def tap_has_vnet_hdr(fd: int) -> bool:
    """Whether a TAP fd carries virtio-net headers (IFF_VNET_HDR)."""
    ifr = fcntl.ioctl(fd, TUNGETIFF, b"\0" * 40)
    return bool(struct.unpack_from("H", ifr, IFNAMSIZ)[0] & IFF_VNET_HDR)


def _child(cfg: Config, netns_fd: int, userns_fd: int | None, sock: socket.socket, in_namespace=None) -> None:
    """In the forked helper: join, open and send the TAP; configure when
    asked, run in_namespace() there; answer "ok" with what it returned (or
    why not).  Never returns, whatever happens."""
    status = 1
    try:
        try:
            if userns_fd is not None:
                setns(userns_fd, CLONE_NEWUSER)
            setns(netns_fd, CLONE_NEWNET)
        except OSError as e:
            raise SetupError(f"cannot join the namespaces of {cfg.target}: {e.strerror}") from None
        tap_fd = _create_tap(cfg.tapname)
        if cfg.command is not None:
            _make_persistent(tap_fd)
        socket.send_fds(sock, [TAP_ANSWER], [tap_fd])
        if cfg.configure:
            from slirpd.configure import configure_guest  # the helper's alone: the daemon never imports it

            configure_guest(cfg)
        extra = in_namespace() if in_namespace else []
        if extra:
            socket.send_fds(sock, [OK_ANSWER], extra)
        else:
            sock.send(OK_ANSWER)
        status = 0
    except SetupError as e:
        _send_quietly(sock, str(e))
    except BaseException as e:  # anything else still becomes a clear message
        _send_quietly(sock, f"namespace setup failed: {type(e).__name__}: {e}")
    finally:
        os._exit(status)


def _send_quietly(sock: socket.socket, text: str) -> None:
    """The helper's last word; a daemon that stopped listening is no error."""
    try:
        sock.send(text.encode()[:REPLY_MAX])
    except OSError:
        pass


class TargetNamespaces:
    """Open fds of the target's network namespace and of the user namespace
    to join with it (userns_fd None when it is already ours).  Close with
    close() or use as a context manager."""

    def __init__(self, cfg: Config):
        netns_path, userns_path = namespace_paths(cfg)
        self.netns_fd = _open_ns(netns_path, CLONE_NEWNET, "network namespace")
        self.userns_fd: int | None = None
        try:
            if userns_path is not None:
                self.userns_fd = _open_ns(userns_path, CLONE_NEWUSER, "user namespace")
            else:
                self.userns_fd = _owning_userns(self.netns_fd, netns_path)
            if _same_namespace(self.userns_fd, "/proc/self/ns/user"):
                os.close(self.userns_fd)
                self.userns_fd = None
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        for fd in (self.netns_fd, self.userns_fd):
            if fd is not None and fd >= 0:
                os.close(fd)
        self.netns_fd, self.userns_fd = -1, None

    def __enter__(self) -> "TargetNamespaces":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class TapHelper:
    """The forked helper at work for cfg's target: forked when made (see the
    module doc).  in_namespace, if given, runs in the helper inside the
    target's namespaces once the TAP is sent and the guest configured: it
    may configure the namespace further and return at most extra_max
    descriptors opened there (sockets of that namespace); raising
    SetupError fails the whole.  tap_fd() and configured() wait for the two
    answers, in that order; close() reaps the helper if configured() did
    not (also after a failure)."""

    def __init__(self, cfg: Config, ns: TargetNamespaces, in_namespace=None, extra_max: int = 0):
        self.pid: int | None = None
        self.extra_max = extra_max
        self.extra: list[int] | None = None  # what configured() brought back
        self._sock, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
        with child:
            pid = os.fork()
            if pid == 0:
                self._sock.close()
                _child(cfg, ns.netns_fd, ns.userns_fd, child, in_namespace)
            self.pid = pid

    def tap_fd(self) -> int:
        """Wait for the TAP (created or attached to in the target's network
        namespace).  Return: its fd, non-blocking, close-on-exec.  Raises
        SetupError."""
        msg, fds, _flags, _addr = socket.recv_fds(self._sock, REPLY_MAX, 1, socket.MSG_CMSG_CLOEXEC)
        if msg == TAP_ANSWER and fds:
            os.set_blocking(fds[0], False)
            return fds[0]
        for fd in fds:
            os.close(fd)
        raise self._failed(msg)

    def configured(self) -> list[int]:
        """Wait until the helper has configured the guest (with --configure;
        otherwise until it is done) and reap it; idempotent.  Return: the
        descriptors in_namespace() opened (close-on-exec), in order, the
        caller's.  Raises SetupError."""
        if self.extra is not None:
            return self.extra
        msg, fds, _flags, _addr = socket.recv_fds(self._sock, REPLY_MAX, self.extra_max, socket.MSG_CMSG_CLOEXEC)
        if msg != OK_ANSWER:
            for fd in fds:
                os.close(fd)
            raise self._failed(msg)
        self.close()
        self.extra = fds
        return fds

    def _failed(self, msg: bytes) -> SetupError:
        """The helper's failure, reaped, as the error to raise."""
        status = self.close()
        return SetupError(msg.decode(errors="replace") or f"namespace helper died (status {status})")

    def close(self) -> int | None:
        """Reap the helper (it ends by itself once it has answered, or sees
        that nobody listens any more).  Return: its wait status, None if it
        was reaped before."""
        self._sock.close()
        if self.pid is None:
            return None
        pid, self.pid = self.pid, None
        return os.waitpid(pid, 0)[1]
