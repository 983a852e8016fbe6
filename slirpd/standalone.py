"""Standalone modes: slirpd makes the namespaces itself.

- `slirpd [OPTIONS] -- COMMAND [ARGS]...` (like pasta): a child unshares user,
  network and mount namespaces, the caller mapped to root (plus the caller's
  /etc/subuid range through newuidmap/newgidmap when there is one); slirpd
  configures tap0 in it as with -c, the child bind-mounts a resolv.conf naming
  the DNS address over /etc/resolv.conf (its own mount namespace: the host's
  file is untouched), mounts a sysfs showing its own interfaces, and execs
  COMMAND.  slirpd passes SIGINT, SIGTERM and
  SIGHUP on to it (those it was started with ignored, like nohup's SIGHUP,
  stay ignored in both) and exits with its status; the command is killed
  if slirpd dies.
- `slirpd --create-netns=PATH` (like slirp-forwarder): a new network namespace
  is bind-mounted onto PATH and served until slirpd is killed; the mount is
  undone on exit.  Needs CAP_SYS_ADMIN in the current user namespace (run it
  inside `unshare -mr`).
"""

from __future__ import annotations

import errno
import os
import pwd
import signal

from slirpd._linux import (CLONE_NEWNET, CLONE_NEWNS, CLONE_NEWUSER, MNT_DETACH, MS_BIND, MS_PRIVATE, MS_REC,
                           PR_SET_PDEATHSIG, SetupError, check, libc, mount, prctl, umount)

RESOLV_CONF = "/etc/resolv.conf"


# --create-netns

def create_netns(path: str) -> None:
    """Bind a new network namespace onto path (created if missing).  A forked
    child makes it, as a plain user may not setns() back into a namespace of
    the initial user namespace; the bind mount is in the mount namespace we
    share with it.  Raises SetupError."""
    try:
        os.close(os.open(path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o644))
    except OSError as e:
        raise SetupError(f"--create-netns: {path}: {e.strerror}") from None
    libc()  # loaded now: release_netns() runs at exit, when seccomp allows no file to be opened
    err_r, err_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(err_r)
        try:
            check(libc().unshare(CLONE_NEWNET), "unshare(CLONE_NEWNET)")
            mount("/proc/self/ns/net", path, None, MS_BIND)
            os._exit(0)
        except OSError as e:
            os.write(err_w, str(e.strerror).encode())
            os._exit(1)
    os.close(err_w)
    message = os.read(err_r, 4096).decode(errors="replace")
    os.close(err_r)
    os.waitpid(pid, 0)
    if message:
        raise SetupError(f"--create-netns: {message} (run slirpd inside `unshare -mr`)")


def release_netns(path: str) -> None:
    """Undo create_netns(): the namespace goes away with its last user."""
    try:
        umount(path, MNT_DETACH)
    except OSError:
        pass


# -- COMMAND

def _subid_range(path: str, user: str, uid: int) -> tuple[int, int] | None:
    try:
        with open(path) as f:
            for line in f:
                name, _, rest = line.strip().partition(":")
                start, _, count = rest.partition(":")
                if name in (user, str(uid)) and start.isdigit() and count.isdigit():
                    return int(start), int(count)
    except OSError:
        return None
    return None


def _write_id_maps(pid: int) -> None:
    """Map the caller to root in the child's user namespace, with the
    caller's subordinate ids through newuidmap/newgidmap when it has some."""
    uid, gid = os.getuid(), os.getgid()
    try:
        user = pwd.getpwuid(uid).pw_name
    except KeyError:
        user = str(uid)
    subuid, subgid = _subid_range("/etc/subuid", user, uid), _subid_range("/etc/subgid", user, uid)
    if uid != 0 and subuid and subgid:
        import shutil
        import subprocess

        tools = shutil.which("newuidmap"), shutil.which("newgidmap")
        if all(tools):
            try:
                subprocess.run([tools[0], str(pid), "0", str(uid), "1", "1", str(subuid[0]), str(subuid[1])],
                               check=True)
                subprocess.run([tools[1], str(pid), "0", str(gid), "1", "1", str(subgid[0]), str(subgid[1])],
                               check=True)
            except subprocess.CalledProcessError as e:
                raise OSError(str(e)) from None
            return
    with open(f"/proc/{pid}/setgroups", "w") as f:
        f.write("deny")
    with open(f"/proc/{pid}/uid_map", "w") as f:
        f.write(f"0 {uid} 1")
    with open(f"/proc/{pid}/gid_map", "w") as f:
        f.write(f"0 {gid} 1")


def _die_with_parent(parent: int) -> None:
    """The command must not outlive slirpd, whatever ends slirpd (SIGKILL
    included): it would be left in namespaces without a network.  The
    kernel sends it SIGKILL when slirpd dies (PR_SET_PDEATHSIG survives
    unshare and exec); a parent already gone by now is checked by hand."""
    prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), "prctl(PR_SET_PDEATHSIG)")
    if os.getppid() != parent:
        os._exit(127)


def _default_signals() -> None:
    """Undo what Python itself did to signals at start-up (SIGPIPE and SIGXFSZ
    ignored), as subprocess does for its children: the command starts with
    the dispositions slirpd was given, ignored ones (nohup's SIGHUP) still
    ignored, caught ones back to default by exec."""
    for sig in (signal.SIGPIPE, signal.SIGXFSZ):
        signal.signal(sig, signal.SIG_DFL)


def _private_file(prefix: str, data: bytes) -> str:
    """A new file prefix + random letters holding data, mode 0600, created
    exclusively (no link followed): tempfile.mkstemp() without importing
    tempfile, shutil and what they bring (10 ms of CPU).  Return: its path."""
    for _ in range(100):  # as mkstemp: a name taken is tried again, a bounded number of times
        path = prefix + os.urandom(6).hex()
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        except FileExistsError:
            continue
        try:
            left = memoryview(data)
            while left:
                left = left[os.write(fd, left):]
        except OSError:
            os.unlink(path)
            raise
        finally:
            os.close(fd)
        return path
    raise FileExistsError(errno.EEXIST, f"no free name {prefix}*")


def _command_environment() -> dict[str, str]:
    """The environment slirpd was started with, for the command: Python's
    locale coercion (PEP 538) sets LC_CTYPE=C.UTF-8 in its own when the
    locale is C, unset or not installed (replacing a caller's LC_CTYPE that
    names a locale this machine lacks), which a command that slirp4netns or
    pasta runs would not see.  What was there at exec is /proc/self/environ."""
    env = dict(os.environ)
    if "LC_CTYPE" in env:
        with open("/proc/self/environ", "rb") as f:
            started_with = [var for var in f.read().split(b"\0") if var.startswith(b"LC_CTYPE=")]
        if started_with:
            env["LC_CTYPE"] = os.fsdecode(started_with[-1][len(b"LC_CTYPE="):])
        else:
            del env["LC_CTYPE"]
    return env


def _child(argv: list[str], env: dict[str, str], parent: int, unshared_w: int, go_r: int) -> None:
    """In the forked child: unshare, wait for the network, mount resolv.conf,
    exec.  Never returns."""
    try:
        _die_with_parent(parent)
        _default_signals()
        check(libc().unshare(CLONE_NEWUSER | CLONE_NEWNET | CLONE_NEWNS), "unshare")
        os.write(unshared_w, b"u")
        os.close(unshared_w)
        resolv = b""
        while chunk := os.read(go_r, 4096):
            resolv += chunk
        os.close(go_r)
        if not resolv:
            os._exit(127)  # slirpd gave up: it reports why
        mount(None, "/", None, MS_REC | MS_PRIVATE)
        try:  # a /sys that shows the new network namespace's interfaces
            mount("sysfs", "/sys", "sysfs", 0)
        except OSError:
            pass
        if resolv != b"-":
            tmp = _private_file("/tmp/slirpd-resolv-", resolv)
            try:
                mount(tmp, RESOLV_CONF, None, MS_BIND)
            finally:
                os.unlink(tmp)
        os.execvpe(argv[0], argv, env)
    except OSError as e:
        os.write(2, f"slirpd: {argv[0]}: {e.strerror}\n".encode())
        os._exit(127 if e.errno == 2 else 126)


class Command:
    """COMMAND running in new namespaces; pid is usable as a PID target."""

    def __init__(self, argv: list[str]):
        self.status: int | None = None
        unshared_r, unshared_w = os.pipe()
        self._go_r, self._go_w = os.pipe()
        parent = os.getpid()
        libc()  # loaded once, here: the command's child and the namespace helper (netns.py) both need it
        env = _command_environment()
        self.pid = os.fork()
        if self.pid == 0:
            os.close(unshared_r)
            os.close(self._go_w)
            _child(argv, env, parent, unshared_w, self._go_r)
        os.close(unshared_w)
        os.close(self._go_r)
        try:
            if os.read(unshared_r, 1) != b"u":
                raise SetupError("the command's namespaces could not be created")
            _write_id_maps(self.pid)
        except OSError as e:
            self.abort()
            raise SetupError(f"cannot map ids for the command's namespace: {e}") from None
        finally:
            os.close(unshared_r)

    def start(self, resolv_conf: str | None) -> None:
        """Let the command run, with resolv_conf's text over /etc/resolv.conf
        (None: leave the host's)."""
        os.write(self._go_w, (resolv_conf or "-").encode())
        os.close(self._go_w)
        self._go_w = -1

    def abort(self) -> None:
        """slirpd is giving up: a command not started yet exits without
        running, a running one is terminated; either is reaped.  Nothing to
        do once wait_status() has reaped it."""
        if self.status is not None:
            return
        if self._go_w >= 0:
            os.close(self._go_w)
            self._go_w = -1
        else:
            os.kill(self.pid, signal.SIGTERM)
        self.wait_status()

    def wait_status(self) -> int:
        """Wait for the command. Return: its exit status (128+N if killed by
        signal N), as a shell reports it."""
        if self.status is None:
            _, status = os.waitpid(self.pid, 0)
            self.status = os.WEXITSTATUS(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)
        return self.status
