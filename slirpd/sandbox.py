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

import errno
import os
import re

from slirpd._linux import (CAP_NET_BIND_SERVICE, CLONE_NEWNS, CLONE_NEWUSER, MNT_DETACH, MS_BIND, MS_NODEV, MS_NOEXEC,
                           MS_NOSUID, MS_NOSYMFOLLOW, MS_PRIVATE, MS_RDONLY, MS_REC, MS_REMOUNT, PR_CAP_AMBIENT,
                           PR_CAP_AMBIENT_CLEAR_ALL, PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS, SetupError, capabilities,
                           check, libc, mount, pivot_root, prctl, set_capabilities, setns, umount)

LOCKED_DOWN = MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC
CAP_LAST_CAP_FILE = "/proc/sys/kernel/cap_last_cap"
VISIBLE_DIRS = ("etc", "run")
NEW_ROOT = "/tmp"  # any directory: a tmpfs is mounted over it first
# The new root holds three directories (etc, run, and old until the pivot is done)
NEW_ROOT_OPTIONS = "size=4k,nr_inodes=8,mode=0755"


def check_resolv_conf(path: str = "/etc/resolv.conf") -> None:
    """Refuse when resolv.conf would vanish in the sandbox: a symlink that
    leads outside /etc and /run."""
    if os.path.islink(path):
        target = os.path.realpath(path)
        if not any(target == f"/{d}" or target.startswith(f"/{d}/") for d in VISIBLE_DIRS):
            raise SetupError(f"--enable-sandbox: {path} is a symlink to {target}, outside /etc and /run")


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
        try:
            mount(None, point, None, MS_BIND | MS_REMOUNT | LOCKED_DOWN | (MS_NOSYMFOLLOW if nosymfollow else 0))
        except OSError as e:
            if e.errno not in (errno.EACCES, errno.ENOENT):
                raise OSError(e.errno, f"remount {os.fsdecode(point)} read-only: {os.strerror(e.errno)}") from None


def _pivot_into_tmpfs() -> None:
    """Steps 2 and 3 of the module doc.  Raises OSError."""
    check(libc().unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    mount("tmpfs", NEW_ROOT, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NEW_ROOT_OPTIONS)
    for d in VISIBLE_DIRS:
        os.mkdir(f"{NEW_ROOT}/{d}")
        mount(f"/{d}", f"{NEW_ROOT}/{d}", None, MS_BIND | MS_REC)
        _lock_down(f"{NEW_ROOT}/{d}")
    os.mkdir(f"{NEW_ROOT}/old")
    pivot_root(NEW_ROOT, f"{NEW_ROOT}/old")
    os.chdir("/")
    umount("/old", MNT_DETACH)
    os.rmdir("/old")
    mount(None, "/", None, MS_BIND | MS_REMOUNT | LOCKED_DOWN)


def _own_user_namespace() -> None:
    """A new user namespace where this process's uid and gid are themselves
    and it holds every capability (to make a mount namespace).  Raises
    OSError."""
    uid, gid = os.geteuid(), os.getegid()
    check(libc().unshare(CLONE_NEWUSER), "unshare(CLONE_NEWUSER)")
    for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"), ("gid_map", f"{gid} {gid} 1")):
        with open(f"/proc/self/{name}", "w") as f:
            f.write(text)


def drop_capabilities(last: int, keep: int = CAP_NET_BIND_SERVICE) -> None:
    """Clear the ambient set, drop every capability up to last but keep
    (bounding set too; none stays inheritable) and set no_new_privs.
    Raises OSError."""
    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, "clear the ambient capabilities")
    for cap in range(last + 1):
        if cap != keep:
            prctl(PR_CAPBSET_DROP, cap, f"drop capability {cap} from the bounding set")
    held = capabilities()[1] & 1 << keep  # kept if permitted now
    set_capabilities(held, held, 0)
    prctl(PR_SET_NO_NEW_PRIVS, 1, "no_new_privs")


def enter(namespaces=None) -> None:
    """Enter the sandbox (see the module doc).  namespaces: the guest's
    (netns.TargetNamespaces), whose user namespace is joined when not
    running as root and which are closed before the pivot; None (BESS): a
    user namespace of our own when not root.  Raises SetupError."""
    check_resolv_conf()
    with open(CAP_LAST_CAP_FILE) as f:  # /proc is gone after the pivot
        last_cap = int(f.read())
    try:
        if os.geteuid() != 0:
            _join_user_namespace(namespaces)
        if namespaces is not None:
            namespaces.close()
        _pivot_into_tmpfs()
        drop_capabilities(last_cap)
    except OSError as e:
        where = f"{os.fsdecode(e.filename)}: " if e.filename is not None else ""
        raise SetupError(f"--enable-sandbox: {where}{e.strerror}") from None


def _join_user_namespace(namespaces) -> None:
    """Step 1 of the module doc, for a plain user: the guest's user
    namespace (namespaces.userns_fd, unless it is ours already), or with
    None a new one of our own.  Raises OSError."""
    if namespaces is None:
        _own_user_namespace()
    elif namespaces.userns_fd is not None:
        try:
            setns(namespaces.userns_fd, CLONE_NEWUSER)
        except OSError as e:
            raise OSError(e.errno, f"cannot join the guest's user namespace: {e.strerror}") from None
