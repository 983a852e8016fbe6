"""Debian 12's own clients of slirp4netns, for real: podman 4.3 and
rootlesskit 1.1 as `make deps` installs them on this machine (with runc and
uidmap), running the slirpd under test, as a plain user with subordinate ids,
inside the test sandbox.

Deb12Clients.prepare() lays out a session's files once (WORK, which every
run sees as /mnt): the user's home, where podman finds a containers.conf
(cgroupfs, runc, file events: what this kernel's cgroup v1 needs, see
../shared/clients/README.md), a storage.conf (vfs), a registries.conf that
names no registry and a policy.json, so that nothing under the host's
/etc/containers decides anything; the subordinate ids, USER:SUBIDS; and a
busybox image, IMAGE, imported from the host's busybox and its shared
objects.

Every run (Deb12Clients.run) is a shell in a PID namespace and a mount
namespace of its own: as root it makes / shared there (as systemd does on a
host), mounts the PID namespace's own /proc (newuidmap finds podman's
process by its pid there), binds WORK on /mnt and the session's subuid and
subgid over /etc's, mounts a fresh tmpfs on /run/user (the user's
XDG_RUNTIME_DIR, where podman keeps its namespaces and state) and on /tmp,
then runs the command as the user.  When the command ends, or a timeout kills
it (unshare --kill-child), the kernel kills everything the run started
(podman's pause process, conmon, rootlessport, slirpd), the mounts go with
the namespace, and the run fails the test if a process of the user's is left
in the sandbox.  The host's /etc/resolv.conf is what the test binds over it
(a resolver on the sandbox's loopback).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from lib.clients import LoggedCommand, busybox_rootfs, check_nothing_left
from lib.harness import HARDEN, INHERITED_ENV, SLIRPD, plain_user

USER = "slirpd-deb12"
SUBIDS = (400000, 65536)  # first, count: apart from the Debian 13 root's podu (300000)
IMAGE = "localhost/bb"  # a full name: nothing to look up in a registry
BUSYBOX = Path("/bin/busybox")  # Debian 12's (dynamic)
# What `make deps` installs: a missing one fails the tests
BINARIES = {"podman": "/usr/bin/podman", "rootlesskit": "/usr/bin/rootlesskit", "rootlessctl": "/usr/bin/rootlessctl",
            "runc": "/usr/sbin/runc", "newuidmap": "/usr/bin/newuidmap", "newgidmap": "/usr/bin/newgidmap",
            "conmon": "/usr/bin/conmon", "slirp4netns": "/usr/bin/slirp4netns"}
RUN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
CONTAINERS_CONF = {
    "containers.conf": '[engine]\ncgroup_manager = "cgroupfs"\nruntime = "runc"\nevents_logger = "file"\n'
                       'image_copy_tmp_dir = "/tmp"\n',
    "storage.conf": '[storage]\ndriver = "vfs"\n',
    "registries.conf": "unqualified-search-registries = []\n",
    "policy.json": json.dumps({"default": [{"type": "insecureAcceptAnything"}]}) + "\n",
}
# rootlesskit 1.1's flags for slirpd's own confinement as dockerd-rootless.sh passes them
# (auto: on when `--help` lists them), in the hardened pass
ROOTLESSKIT_HARDEN = ["--slirp4netns-sandbox=auto", "--slirp4netns-seccomp=auto"]

# The host side of a forwarded port: connect to ADDR PORT (retried for
# TRIES x 0.1 s while the server comes up), send SIZE random bytes while
# reading what comes back; print "echoed" when it is the same bytes.
ECHO_CLIENT = r"""
import os, socket, sys, threading, time
addr, port, size, tries = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
data = os.urandom(size)
for attempt in range(tries):
    got = bytearray()
    try:
        with socket.create_connection((addr, port), timeout=10) as s:
            def send():
                s.sendall(data)
                s.shutdown(socket.SHUT_WR)
            t = threading.Thread(target=send, daemon=True)
            t.start()
            while chunk := s.recv(65536):
                got += chunk
            t.join()
    except OSError:
        pass
    if got == data:
        print("echoed", size)
        break
    time.sleep(0.1)
else:
    print("not echoed:", len(got), "bytes back")
"""
# A server of one port that sends back what it gets (busybox nc, as in a
# container of IMAGE), one connection after another
ECHO_SERVER = "busybox nc -ll -p {port} -e /bin/cat"


class Deb12Clients:
    """The session's files and runs (see the module doc)."""

    def __init__(self, work: Path, user):
        self.work = work
        self.user = user
        self.uids = {user.pw_uid, *range(SUBIDS[0], SUBIDS[0] + SUBIDS[1])}

    @classmethod
    def prepare(cls, work: Path) -> Deb12Clients:
        """Check what `make deps` installs, lay out work, import IMAGE."""
        missing = [path for path in BINARIES.values() if not os.access(path, os.X_OK)]
        if missing:
            pytest.fail(f"Debian 12's clients are missing ({' '.join(missing)}): run `make deps` (as root)")
        if Path(SLIRPD).resolve().is_relative_to("/tmp"):
            pytest.fail(f"{SLIRPD} is under /tmp, which each run of the clients replaces: use a VENV elsewhere")
        clients = cls(work, plain_user(USER))
        try:
            clients.lay_out()
            clients.run_ok(f"podman import /mnt/rootfs.tar {IMAGE} >/dev/null")
        except BaseException:
            clients.close()
            raise
        return clients

    def lay_out(self) -> None:
        """The session's files (see the module doc) in work."""
        work, user = self.work, self.user
        os.chmod(work, 0o755)
        config = work / "home/.config/containers"
        config.mkdir(parents=True)
        for name, text in CONTAINERS_CONF.items():
            (config / name).write_text(text)
        (work / "log").mkdir()
        for d in ("home", "log"):
            for path in [work / d, *(work / d).rglob("*")]:
                shutil.chown(path, user.pw_uid, user.pw_gid)
        (work / "etc").mkdir()
        (work / "etc/subids").write_text(f"{USER}:{SUBIDS[0]}:{SUBIDS[1]}\n")
        busybox_rootfs(work / "rootfs.tar", BUSYBOX)

    def close(self) -> None:
        """Remove the session's files."""
        shutil.rmtree(self.work)

    def logged(self, name: str) -> LoggedCommand:
        """slirpd or Debian 12's slirp4netns behind a LoggedCommand of that
        name.  slirpd gets what the harness passes on to its children (under
        `make test-asan`, the sanitizer runtimes that its build needs), which
        a run's clients would not."""
        if name == "slirp4netns":
            return LoggedCommand(self.work, name, BINARIES["slirp4netns"])
        passed = [f"{key}={shlex.quote(os.environ[key])}" for key in INHERITED_ENV if key in os.environ and key != "PATH"]
        return LoggedCommand(self.work, name, " ".join(["env", *passed, SLIRPD]) if passed else SLIRPD)

    def run(self, command: str, timeout: float = 120) -> subprocess.CompletedProcess:
        """Run command (sh) as the user in a run of its own (see the module
        doc), with its output captured.  Fails the test if a process of the
        user's outlives it."""
        uid, gid = self.user.pw_uid, self.user.pw_gid
        env = (f"export HOME=/mnt/home XDG_RUNTIME_DIR=/run/user/{uid} TMPDIR=/tmp PATH={RUN_PATH}"
               " PODMAN_IGNORE_CGROUPSV1_WARNING=1; cd; ")
        setup = (f"mount --make-rshared /; mount -t proc proc /proc; mount --bind {self.work} /mnt; mount --bind /mnt/etc/subids /etc/subuid;"
                 " mount --bind /mnt/etc/subids /etc/subgid; mount -t tmpfs -o mode=0755 tmpfs /run/user;"
                 f" mkdir -m 0700 /run/user/{uid}; chown {uid}:{gid} /run/user/{uid};"
                 " mount -t tmpfs -o mode=1777 tmpfs /tmp;"
                 f" exec su -s /bin/sh {USER} -c {shlex.quote(env + command)}")
        argv = ["unshare", "--pid", "--fork", "--kill-child", "--mount", "--propagation", "private", "--",
                "sh", "-ec", setup]
        try:
            return subprocess.run(argv, env={"PATH": RUN_PATH}, capture_output=True, text=True, timeout=timeout)
        finally:
            check_nothing_left(self.uids, "of Debian 12's clients")

    def run_ok(self, command: str, **kw) -> subprocess.CompletedProcess:
        """run(), failing the test unless command exits 0."""
        res = self.run(command, **kw)
        if res.returncode != 0:
            pytest.fail(f"{command!r} as {USER} exited {res.returncode}:\n{res.stdout}\n{res.stderr}")
        return res


def rootlesskit_harden() -> list[str]:
    """The flags that the hardened pass adds to rootlesskit's command line."""
    return ROOTLESSKIT_HARDEN if HARDEN else []
