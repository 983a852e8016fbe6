"""--enable-seccomp: after the last setup step, allow only the system calls
the serving daemon makes.

Setup (namespaces, the TAP, netlink, the sandbox's pivot_root) is over before
the filter is loaded, so none of its calls need to stay allowed.  What is left
is an event loop over sockets: epoll, reads and writes, the host sockets of
TCP/UDP/ping flows and port forwards, the API socket's clients, signals, the
exit path.  Everything else fails with EPERM.

Why EPERM and not a kill: slirpd is Python, and every call it makes already
reports failure as an exception that the daemon turns into an error reply, a
counted drop or a log line.  A kill would take the guest's whole network down
for a call that a future Python or libc makes on a rarely used path (a
denied call still achieves nothing).

Arguments are checked where the answer is fixed and cheap to state:
- socket(): only AF_INET and AF_INET6 (no netlink, packet, unix or other
  families once serving);
- mmap()/mprotect(): never PROT_EXEC, so no new executable memory;
- ioctl(): only FIONBIO (Python's setblocking);
- newfstatat(): only on a file descriptor (AT_EMPTY_PATH), never a path;
- kill(): only the `-- COMMAND` child (signals are passed on to it);
- umount2(): only MNT_DETACH, only for --create-netns's bind mount;
- openat(): only read-only (O_RDONLY | O_CLOEXEC | O_NONBLOCK, nothing
  else: no O_CREAT, no O_PATH) and only relative to the descriptor of resolv.conf's
  directory, so the daemon can follow the host's resolver (resolver.py).
  Under --enable-sandbox that descriptor is the sandbox's read-only /etc,
  and nothing outside the new root can be reached; without it a ".." path
  could read what the user can read, never write or create.
Not on the list at all: open (and openat of any other shape),
unlink and unlinkat (no file is removed once serving: the API socket's is
removed by a helper process outside the sandbox, slirpd/remover.py, since a
rule tied to a directory fd would still let "../.." reach anything the user
may delete; the BESS socket's goes as soon as its one peer is connected),
execve, fork/clone (one thread, no children), ptrace, mount, setns, unshare,
pivot_root, bpf, keyctl, and everything else.

How the list was made (measured, not guessed): the whole test suite ran with
`--enable-sandbox --enable-seccomp` on (SLIRPD_TEST_HARDEN=1) and every daemon
under `strace -f -ff` (SLIRPD_TEST_STRACE=DIR, see tests/conftest.py), with
enter() temporarily loading an allow-everything filter; tests/seccomp_syscalls.py
then listed what each trace called after its seccomp() line.  128 daemons:
TCP and UDP both ways, DNS, DHCP, ping, port forwards over the API and
--publish, get_stats, BESS, SIGUSR1 dumps, the exit fd, SIGTERM, the target
exiting, `-- COMMAND` and --create-netns.  They made these calls and no other:

  accept4 bind close connect epoll_ctl epoll_wait exit_group fcntl getpid
  getsockname getsockopt ioctl(FIONBIO) kill(SIGHUP, SIGTERM)
  listen munmap newfstatat(AT_EMPTY_PATH) read recvfrom recvmmsg recvmsg
  rt_sigaction rt_sigreturn sendmsg sendto setsockopt shutdown
  socket(AF_INET, AF_INET6) umount2 unlink unlinkat wait4 write

(unlink and unlinkat were the BESS and API sockets' removal, which have left
the serving daemon since.)

Added without being seen, each for a stated reason: brk, mmap, mprotect,
mremap, madvise (malloc and Python's allocator map and trim memory whenever
they need to; none executable); readv, writev (vector forms of calls
already allowed, same fds); sendmmsg (UDP's batched sends to host sockets,
csrc/udp.c: the vector form of sendmsg, same fds; tests/test_seccomp.py and
the hardened pass of tests/test_udp_offload.py use it, UDP_SEGMENT is only a
control message and UDP_GRO a setsockopt, both already allowed); epoll_pwait (a libc may implement
epoll_wait with it); clock_gettime (the vDSO's fallback); fstat (what an
older libc calls for Python's os.fstat()); sched_yield (dp_wait()'s busy
poll gives the CPU away between polls, see csrc/dp.c).  Then the suite ran
again with the real filter.

Added for the pasta interface (slirpd/pasta/), which always runs filtered:
splice and pipe2 (the guest's loopback spliced to the host's, pasta's -T:
each connection moves its bytes with splice(2) through a pair of pipes it
opens when accepted, csrc/splice.c; pipe2 makes no file of the host's).
Automatic forwarding (autofwd.py) needs nothing new: its sock_diag socket
is opened inside the guest's namespace at setup, and once serving it only
sends and receives on it and binds AF_INET/AF_INET6 sockets; pasta's -T/-U
auto (nsautofwd.py) neither: its sock_diag socket of the host's namespace is
opened at setup, and the sockets inside the guest's come from a helper
there (nsbinder.py) over SCM_RIGHTS, recvmsg; the watch on
a namespace file (nswatch.py) is an inotify descriptor made at setup and
read.  IPv6 (being added) uses the same calls with
AF_INET6; TAP offload adds ioctls at setup only, before the filter.
"""

from __future__ import annotations

import errno
import socket

from slirpd import resolver
from slirpd._linux import MNT_DETACH, SetupError

# The system calls of a serving daemon, as measured (see the module doc).
SYSCALLS = (
    # the event loop, its timers, signals
    "epoll_wait", "epoll_pwait", "epoll_ctl", "clock_gettime", "sched_yield", "rt_sigaction", "rt_sigreturn",
    "getpid",
    # data: TAP frames, host sockets, the API's clients, the exit fd, stderr
    "read", "readv", "write", "writev", "recvfrom", "recvmsg", "recvmmsg", "sendto", "sendmsg", "sendmmsg",
    "close", "fcntl",
    # --pcap: a failed write cuts the file back to its last whole record
    "ftruncate",
    # pasta's -T: spliced connections (csrc/splice.c)
    "splice", "pipe2",
    # host sockets of flows and forwards (socket() itself: families below)
    "connect", "bind", "listen", "accept4", "getsockname", "setsockopt", "getsockopt", "shutdown",
    # memory (mmap and mprotect: not executable, below)
    "brk", "munmap", "mremap", "madvise",
    # `-- COMMAND`: wait for the command; the end
    "wait4", "exit_group",
)
SOCKET_FAMILIES = (socket.AF_INET, socket.AF_INET6)
FIONBIO = 0x5421
IOCTLS = (FIONBIO,)
PROT_EXEC = 0x4
AT_EMPTY_PATH = 0x1000
DEFAULT_ACTION_ERRNO = errno.EPERM


# The libraries pyseccomp loads, by soname: glibc's (the wheel is manylinux)
# and libseccomp 2.x's
SONAMES = {"c": "libc.so.6", "seccomp": "libseccomp.so.2"}


def _import_pyseccomp():
    """pyseccomp, or a SetupError naming the missing piece.

    pyseccomp finds libc and libseccomp with ctypes.util.find_library() when
    it is imported, and that costs most of a sandboxed start-up (issue 19):
    ctypes.util imports shutil, subprocess and re, and find_library() runs
    `ldconfig -p` once per library, 25 ms in all here.  The sonames are
    known: pyseccomp's import sees a ctypes.util whose find_library()
    answers from SONAMES (and asks the real one for any other name), and the
    real module stays as it was for everybody else."""
    import ctypes
    import sys
    import types

    def find_library(name: str) -> str | None:
        if name in SONAMES:
            return SONAMES[name]
        import importlib
        return importlib.import_module("ctypes.util").find_library(name)

    if "pyseccomp" in sys.modules:
        return sys.modules["pyseccomp"]
    shim = types.ModuleType("ctypes.util")
    shim.find_library = find_library
    real = sys.modules.pop("ctypes.util", None)
    sys.modules["ctypes.util"], ctypes.util = shim, shim
    try:
        import pyseccomp
    except ImportError:
        raise SetupError("--enable-seccomp: the pyseccomp module is not installed") from None
    except (OSError, RuntimeError) as e:  # pyseccomp loads libseccomp when imported
        raise SetupError(f"--enable-seccomp: libseccomp is not available ({e})") from None
    finally:
        if real is None:
            del sys.modules["ctypes.util"], ctypes.util
        else:
            sys.modules["ctypes.util"], ctypes.util = real, real
    return pyseccomp


def check_available() -> None:
    """Fail early (before any setup) when the filter could not be built."""
    _import_pyseccomp()


def available() -> bool:
    """Whether the filter can be built (pasta mode filters when it can)."""
    try:
        _import_pyseccomp()
    except SetupError:
        return False
    return True


def library_version() -> str:
    """libseccomp's version ("2.5.4"), for --version; "not available" when it
    cannot be loaded."""
    import ctypes

    class Version(ctypes.Structure):
        _fields_ = [("major", ctypes.c_uint), ("minor", ctypes.c_uint), ("micro", ctypes.c_uint)]

    try:
        lib = ctypes.CDLL(SONAMES["seccomp"])
    except OSError:
        return "not available"
    lib.seccomp_version.restype = ctypes.POINTER(Version)
    v = lib.seccomp_version().contents
    return f"{v.major}.{v.minor}.{v.micro}"


def build(command_pid: int | None = None, create_netns: bool = False, resolv_dir_fd: int | None = None):
    """The filter: SYSCALLS allowed, with the argument checks of the module
    doc.  command_pid: the `-- COMMAND` child that kill() may signal;
    create_netns: umount2() may undo the namespace's bind mount;
    resolv_dir_fd: resolv.conf's directory, where openat() may open files
    read-only (resolver.py).  Return: a pyseccomp.SyscallFilter, not
    loaded."""
    sc = _import_pyseccomp()
    flt = sc.SyscallFilter(sc.ERRNO(DEFAULT_ACTION_ERRNO))
    for name in SYSCALLS:
        flt.add_rule(sc.ALLOW, name)
    for family in SOCKET_FAMILIES:
        flt.add_rule(sc.ALLOW, "socket", sc.Arg(0, sc.EQ, family))
    for request in IOCTLS:
        flt.add_rule(sc.ALLOW, "ioctl", sc.Arg(1, sc.EQ, request))
    for name in ("mmap", "mprotect"):
        flt.add_rule(sc.ALLOW, name, sc.Arg(2, sc.MASKED_EQ, PROT_EXEC, 0))
    flt.add_rule(sc.ALLOW, "newfstatat", sc.Arg(3, sc.EQ, AT_EMPTY_PATH))
    flt.add_rule(sc.ALLOW, "fstat")
    if command_pid is not None:
        flt.add_rule(sc.ALLOW, "kill", sc.Arg(0, sc.EQ, command_pid))
    if create_netns:
        flt.add_rule(sc.ALLOW, "umount2", sc.Arg(1, sc.EQ, MNT_DETACH))
    if resolv_dir_fd is not None:
        flt.add_rule(sc.ALLOW, "openat", sc.Arg(0, sc.EQ, resolv_dir_fd), sc.Arg(2, sc.EQ, resolver.OPEN_FLAGS))
    return flt


def enter(**allowances) -> None:
    """Load the filter (build()'s keyword arguments say what the mode needs)
    into this single-threaded process; from now on it cannot be removed.
    Raises SetupError."""
    flt = build(**allowances)
    try:
        flt.load()
    except OSError as e:
        raise SetupError(f"--enable-seccomp: cannot load the filter: {e.strerror}") from None
