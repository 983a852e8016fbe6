"""--enable-sandbox: after setup, hide the host's file system and drop
capabilities, as slirp4netns does.

Once the TAP is open, the data plane created and the control sockets bound,
slirpd needs nothing of the host's file system but /etc (resolv.conf) and
/run.  So it:

1. as a plain user, joins the guest's user namespace (where it may create a
   mount namespace); as root it stays where it is;
2. unshares a new mount namespace, mounts a tmpfs, bind-mounts /etc and /run
   into it and pivot_roots there, detaching the old root;
3. drops every capability but CAP_NET_BIND_SERVICE (bounding set included)
   and sets no_new_privs.

Host sockets are unaffected: the network namespace does not change.
"""

from __future__ import annotations

import ctypes
import os

from slirpd.netns import CLONE_NEWUSER, SetupError, _setns

CLONE_NEWNS = 0x00020000
MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 1 << 18
MNT_DETACH = 2
PR_SET_NO_NEW_PRIVS = 38
PR_CAPBSET_DROP = 24
CAP_NET_BIND_SERVICE = 10
CAP_LAST_CAP_FILE = "/proc/sys/kernel/cap_last_cap"
LINUX_CAPABILITY_VERSION_3 = 0x20080522
VISIBLE_DIRS = ("etc", "run")
NEW_ROOT = "/tmp"  # any directory: a tmpfs is mounted over it first

_libc = ctypes.CDLL(None, use_errno=True)


def _check(rc: int, what: str) -> None:
    if rc != 0:
        err = ctypes.get_errno()
        raise SetupError(f"--enable-sandbox: {what}: {os.strerror(err)}")


def check_resolv_conf(path: str = "/etc/resolv.conf") -> None:
    """Refuse when resolv.conf would vanish in the sandbox: a symlink that
    leads outside /etc and /run."""
    if os.path.islink(path):
        target = os.path.realpath(path)
        if not any(target == f"/{d}" or target.startswith(f"/{d}/") for d in VISIBLE_DIRS):
            raise SetupError(f"--enable-sandbox: {path} is a symlink to {target}, outside /etc and /run")


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    enc = (lambda s: None if s is None else s.encode())
    _check(_libc.mount(enc(source), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data)),
           f"mount {target}")


def _pivot_into_tmpfs() -> None:
    _check(_libc.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    _mount("tmpfs", NEW_ROOT, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755")
    for d in VISIBLE_DIRS:
        os.mkdir(f"{NEW_ROOT}/{d}")
        _mount(f"/{d}", f"{NEW_ROOT}/{d}", None, MS_BIND | MS_REC)
    os.mkdir(f"{NEW_ROOT}/old")
    _check(_libc.syscall(155, NEW_ROOT.encode(), f"{NEW_ROOT}/old".encode()), "pivot_root")  # SYS_pivot_root
    os.chdir("/")
    _check(_libc.umount2(b"/old", MNT_DETACH), "umount /old")
    os.rmdir("/old")


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def drop_capabilities(last: int, keep: int = CAP_NET_BIND_SERVICE) -> None:
    """Drop every capability up to last but keep (bounding set too) and set
    no_new_privs."""
    for cap in range(last + 1):
        if cap != keep:
            _check(_libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0), f"drop capability {cap} from the bounding set")
    header = _CapHeader(LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    keep_bit = 1 << keep
    current = (_CapData * 2)()
    _check(_libc.capget(ctypes.byref(header), current), "capget")
    held = current[0].permitted & keep_bit
    data[0].effective = data[0].permitted = held
    _check(_libc.capset(ctypes.byref(header), data), "capset")
    _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")


def enter(userns_fd: int | None) -> None:
    """Enter the sandbox (see the module doc).  userns_fd: the guest's user
    namespace, joined when not running as root (None: it is already ours)."""
    check_resolv_conf()
    with open(CAP_LAST_CAP_FILE) as f:  # /proc is gone after the pivot
        last_cap = int(f.read())
    if os.geteuid() != 0 and userns_fd is not None:
        try:
            _setns(userns_fd, CLONE_NEWUSER)
        except OSError as e:
            raise SetupError(f"--enable-sandbox: cannot join the guest's user namespace: {e.strerror}") from None
    _pivot_into_tmpfs()
    drop_capabilities(last_cap)
