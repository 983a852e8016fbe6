"""The Linux calls Python's os module lacks, the constants they take, and
SetupError, the failure of any set-up step.

The namespace helper, the sandbox, the standalone modes, `slirpd enter`,
the namespace-file watch and the socket remover call the C library through
ctypes (setns, unshare, mount, umount2, pivot_root, prctl, capget, capset,
inotify); this is their one door to it.  ctypes is imported on the first
call (libc()), never when this module is: with plain options the serving
daemon loads no ctypes at all (tests/test_startup.py), and a mode that needs
it makes its first call before the sandbox or seccomp could stop the import.

A call that fails raises OSError with the errno and "WHAT: reason" as its
strerror (check()); each caller turns that into its own SetupError message.
Every constant here is the kernel's (its uapi headers); no other module of
slirpd defines one of them again (tests/test_structure_py.py).
"""

from __future__ import annotations

import errno
import os
import struct

# Namespaces: clone(2), unshare(2), setns(2), ioctl NS_GET_NSTYPE
CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000
# mount(2) and umount2(2)
MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REMOUNT = 0x20
MS_NOSYMFOLLOW = 0x100
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 1 << 18
MNT_DETACH = 2
# prctl(2)
PR_SET_PDEATHSIG = 1
PR_SET_NAME = 15
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
# capget(2) and capset(2): a header, then two data structs (capabilities 0-31, 32-63)
CAP_NET_BIND_SERVICE = 10
LINUX_CAPABILITY_VERSION_3 = 0x20080522
CAP_HEADER = struct.Struct("=Ii")  # version, pid
CAP_DATA = struct.Struct("=III")  # effective, permitted, inheritable
# pivot_root(2) has no glibc wrapper: its number on each architecture a wheel is built for
SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "riscv64": 41, "ppc64le": 203,
                  "s390x": 217}.get(os.uname().machine)

_libc = None  # see libc()


class SetupError(Exception):
    """A set-up step failed (namespace, TAP, sockets, sandbox, ...); the
    message says which and why, as one line."""


def libc():
    """The C library through ctypes (errno kept for check()), loaded on
    first use."""
    global _libc
    if _libc is None:
        import ctypes

        _libc = ctypes.CDLL(None, use_errno=True)
    return _libc


def last_errno() -> int:
    """errno as the C library call that just failed left it."""
    import ctypes  # loaded by libc() already

    return ctypes.get_errno()


def last_error(what: str) -> OSError:
    """The error of the C library call that just failed: its errno, and
    "WHAT: reason" as strerror."""
    err = last_errno()
    return OSError(err, f"{what}: {os.strerror(err)}")


def check(rc: int, what: str) -> None:
    """A C library call's return code: raise last_error(what) unless it is 0."""
    if rc != 0:
        raise last_error(what)


def setns(fd: int, nstype: int) -> None:
    """setns(2) (os.setns from Python 3.12 on); raises OSError with the
    plain reason as strerror."""
    if hasattr(os, "setns"):
        os.setns(fd, nstype)
        return
    if libc().setns(fd, nstype) != 0:
        err = last_errno()
        raise OSError(err, os.strerror(err))


def mount(source: str | bytes | None, target: str | bytes, fstype: str | None, flags: int,
          data: str | None = None) -> None:
    """mount(2); raises OSError ("mount TARGET: reason")."""
    import ctypes

    def encoded(s):
        return None if s is None else os.fsencode(s)

    check(libc().mount(encoded(source), encoded(target), encoded(fstype), ctypes.c_ulong(flags), encoded(data)),
          f"mount {os.fsdecode(target)}")


def umount(target: str | bytes, flags: int = 0) -> None:
    """umount2(2); raises OSError ("umount TARGET: reason")."""
    check(libc().umount2(os.fsencode(target), flags), f"umount {os.fsdecode(target)}")


def pivot_root(new_root: str, put_old: str) -> None:
    """pivot_root(2); raises OSError (ENOSYS where its number is not known here)."""
    if SYS_PIVOT_ROOT is None:
        raise OSError(errno.ENOSYS, f"pivot_root: no system call number for {os.uname().machine}")
    check(libc().syscall(SYS_PIVOT_ROOT, os.fsencode(new_root), os.fsencode(put_old)), "pivot_root")


def prctl(option: int, arg: int, what: str) -> None:
    """prctl(2) with one argument (the others 0); raises OSError ("WHAT: reason")."""
    check(libc().prctl(option, arg, 0, 0, 0), what)


def capabilities() -> tuple[int, int, int]:
    """capget(2) of this thread. Return: its (effective, permitted,
    inheritable) capability sets, each a bit mask.  Raises OSError."""
    import ctypes

    header = ctypes.create_string_buffer(CAP_HEADER.pack(LINUX_CAPABILITY_VERSION_3, 0))
    data = ctypes.create_string_buffer(2 * CAP_DATA.size)
    check(libc().capget(header, data), "capget")
    low, high = CAP_DATA.iter_unpack(data.raw)
    return tuple(lo | hi << 32 for lo, hi in zip(low, high))


def set_capabilities(effective: int, permitted: int, inheritable: int) -> None:
    """capset(2) of this thread, each set a bit mask.  Raises OSError."""
    import ctypes

    header = ctypes.create_string_buffer(CAP_HEADER.pack(LINUX_CAPABILITY_VERSION_3, 0))
    sets = (effective, permitted, inheritable)
    data = ctypes.create_string_buffer(b"".join(CAP_DATA.pack(*(s >> shift & 0xFFFFFFFF for s in sets))
                                                for shift in (0, 32)))
    check(libc().capset(header, data), "capset")
