"""--enable-sandbox: after setup, hide the host's file system and drop
capabilities, as slirp4netns does, and a little more.

Once the TAP is open, the data plane created and the control sockets bound,
slirpd needs nothing of the host's file system but /etc (resolv.conf, which
may be a symlink into /run that the host replaces by rename).  So it:

1. as a plain user, joins a user namespace where it may create a mount
   namespace: the guest's, or in BESS mode (no guest) a new one of its own
   that maps its uid and gid to themselves; as root it stays where it is.
   The namespace fds are closed then, before anything else happens;
2. unshares a new mount namespace (every mount private: nothing the host
   mounts later shows up inside), mounts a small tmpfs, bind-mounts /etc and
   /run into it with their submounts, and makes every one of those mounts
   read-only, nosuid, nodev and noexec;
3. pivot_roots into the tmpfs, detaches the old root, and makes the new root
   read-only, nosuid, nodev and noexec too;
4. clears the ambient capabilities, drops every other capability but
   CAP_NET_BIND_SERVICE (the bounding set included; none inheritable) and
   sets no_new_privs.

After that the daemon can write no file of the host (not even as root: every
mount it sees is read-only, and it holds no CAP_SYS_ADMIN to remount one),
run no program from one, and holds no descriptor of a directory outside its
root: the API socket's file is removed by a helper outside (remover.py), the
BESS socket's once its peer is connected.  /etc and /run stay directories
of the host's, so a resolver file the host renames into place is the new one
inside as well.

Read-only remounts in a user namespace: the kernel locks the flags a mount
had when it was copied from a more privileged namespace (read-only, nosuid,
nodev, noexec, the atime ones), and refuses a remount that would clear one.
The remount here sets the first four, and passes no atime flag, which
mount(2) defines as keeping the mount's own (Linux 3.17 and later); so every
locked flag is kept, and nosymfollow is carried over where it was set.

Host sockets are unaffected: the network namespace does not change.
"""

from __future__ import annotations

import ctypes
import errno
import os
import re

from slirpd.netns import CLONE_NEWUSER, SetupError, _setns

CLONE_NEWNS = 0x00020000
MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REMOUNT = 0x20
MS_NOSYMFOLLOW = 0x100
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 1 << 18
LOCKED_DOWN = MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC
MNT_DETACH = 2
PR_SET_NO_NEW_PRIVS = 38
PR_CAPBSET_DROP = 24
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
CAP_NET_BIND_SERVICE = 10
CAP_LAST_CAP_FILE = "/proc/sys/kernel/cap_last_cap"
LINUX_CAPABILITY_VERSION_3 = 0x20080522
VISIBLE_DIRS = ("etc", "run")
NEW_ROOT = "/tmp"  # any directory: a tmpfs is mounted over it first
# The new root holds three directories (etc, run, and old until the pivot is done)
NEW_ROOT_OPTIONS = "size=4k,nr_inodes=8,mode=0755"

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


def _mount(source: str | None, target: str | bytes, fstype: str | None, flags: int,
           data: str | None = None) -> int:
    """mount(2). Return: 0, or the errno."""
    enc = (lambda s: s if s is None or isinstance(s, bytes) else s.encode())
    if _libc.mount(enc(source), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data)) == 0:
        return 0
    return ctypes.get_errno()


def _must_mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    err = _mount(source, target, fstype, flags, data)
    if err:
        raise SetupError(f"--enable-sandbox: mount {target}: {os.strerror(err)}")


def _unescape(field: bytes) -> bytes:
    """A path from /proc/self/mountinfo (space, tab, newline and backslash
    come as octal escapes)."""
    return re.sub(rb"\\([0-7]{3})", lambda m: bytes([int(m[1], 8)]), field)


def mounts_under(top: str) -> list[tuple[bytes, bool]]:
    """The mount points at top and below in this mount namespace, each with
    whether it has nosymfollow."""
    top_b = top.encode()
    found = []
    with open("/proc/self/mountinfo", "rb") as f:
        for line in f:
            fields = line.split()
            point = _unescape(fields[4])
            if point == top_b or point.startswith(top_b + b"/"):
                found.append((point, b"nosymfollow" in fields[5].split(b",")))
    return found


def _lock_down(top: str) -> None:
    """Remount every mount at top and below read-only, nosuid, nodev and
    noexec (the module doc says why the locked flags survive).  A mount
    point this process cannot reach (EACCES: below a directory it may not
    search; ENOENT: covered by a later mount) it cannot reach from the
    sandbox either: it is left as it is."""
    for point, nosymfollow in mounts_under(top):
        err = _mount(None, point, None, MS_BIND | MS_REMOUNT | LOCKED_DOWN | (MS_NOSYMFOLLOW if nosymfollow else 0))
        if err and err not in (errno.EACCES, errno.ENOENT):
            raise SetupError(f"--enable-sandbox: remount {os.fsdecode(point)} read-only: {os.strerror(err)}")


def _pivot_into_tmpfs() -> None:
    _check(_libc.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
    _must_mount(None, "/", None, MS_REC | MS_PRIVATE)
    _must_mount("tmpfs", NEW_ROOT, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NEW_ROOT_OPTIONS)
    for d in VISIBLE_DIRS:
        os.mkdir(f"{NEW_ROOT}/{d}")
        _must_mount(f"/{d}", f"{NEW_ROOT}/{d}", None, MS_BIND | MS_REC)
        _lock_down(f"{NEW_ROOT}/{d}")
    os.mkdir(f"{NEW_ROOT}/old")
    _check(_libc.syscall(155, NEW_ROOT.encode(), f"{NEW_ROOT}/old".encode()), "pivot_root")  # SYS_pivot_root
    os.chdir("/")
    _check(_libc.umount2(b"/old", MNT_DETACH), "umount /old")
    os.rmdir("/old")
    _must_mount(None, "/", None, MS_BIND | MS_REMOUNT | LOCKED_DOWN)


def _own_user_namespace() -> None:
    """A new user namespace where this process's uid and gid are themselves
    and it holds every capability (to make a mount namespace)."""
    uid, gid = os.geteuid(), os.getegid()
    _check(_libc.unshare(CLONE_NEWUSER), "unshare(CLONE_NEWUSER)")
    for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"), ("gid_map", f"{gid} {gid} 1")):
        with open(f"/proc/self/{name}", "w") as f:
            f.write(text)


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def drop_capabilities(last: int, keep: int = CAP_NET_BIND_SERVICE) -> None:
    """Clear the ambient set, drop every capability up to last but keep
    (bounding set too; none stays inheritable) and set no_new_privs."""
    _check(_libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0), "clear the ambient capabilities")
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


def enter(namespaces=None) -> None:
    """Enter the sandbox (see the module doc).  namespaces: the guest's
    (netns.TargetNamespaces), whose user namespace is joined when not
    running as root and which are closed before the pivot; None (BESS): a
    user namespace of our own when not root."""
    check_resolv_conf()
    with open(CAP_LAST_CAP_FILE) as f:  # /proc is gone after the pivot
        last_cap = int(f.read())
    if os.geteuid() != 0:
        if namespaces is None:
            _own_user_namespace()
        elif namespaces.userns_fd is not None:
            try:
                _setns(namespaces.userns_fd, CLONE_NEWUSER)
            except OSError as e:
                raise SetupError(f"--enable-sandbox: cannot join the guest's user namespace: {e.strerror}") from None
    if namespaces is not None:
        namespaces.close()
    _pivot_into_tmpfs()
    drop_capabilities(last_cap)
