"""Today's clients of slirp4netns, for real: podman 5.4, rootlesskit 2.0 and
Debian's own slirp4netns 1.2.1, in the Debian 13 root of ../shared/clients/
(its README says what this kernel needs), with the slirpd under test.

`make clients-root` builds the root once per machine and downloads, for the
root's Python, the wheels of slirpd's dependencies (pip in the root cannot
reach the package index).  ClientsRoot.prepare() then, once a session:

- installs slirpd from its wheel, with those wheels, into a venv at
  /mnt/slirpd in the root (`pip install --no-index`);
- imports a busybox-static image, IMAGE, for the user podu (uid 1500), in a
  container store of the session's own;
- gives the root the resolver of a systemd-resolved host: /etc/resolv.conf
  a symlink to ../run/systemd/resolve/stub-resolv.conf, which names
  127.0.0.53 (tests serve DNS there, in the sandbox).

The root itself is not changed.  The session's files live in a temporary
directory bound over the root's empty /mnt, podu's XDG data and cache
directories point into it, and /etc is an overlay of the root's /etc that
adds the symlink; debian13-enter.sh's BIND mounts them in each run's private
mount namespace, whose /run is a fresh tmpfs where each run writes the stub.

Every run (ClientsRoot.run) is debian13-enter.sh in a PID namespace of its
own whose init is the run's command.  When that ends, or a timeout kills it
(unshare --kill-child), the kernel kills everything the run started, the
daemons that podman and rootlesskit leave behind included (podman's pause
process, conmon, slirp4netns), and the run checks that nothing of podu's is
left in the sandbox.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import tarfile
import time
from pathlib import Path

import pytest

from lib.harness import REPO

ENTER = "../shared/clients/debian13-enter.sh"  # relative to REPO, the cwd of every run
ROOT = Path(os.environ.get("SLIRPD_CLIENTS_ROOT", "/var/tmp/deb13"))  # the Makefile's CLIENTS_ROOT
WHEELS = Path(os.environ.get("SLIRPD_CLIENTS_WHEELS", "/var/tmp/slirpd-wheels-deb13"))  # its CLIENTS_WHEELS
PODU, PODU_UID = "podu", 1500
PODU_UIDS = {PODU_UID, *range(300000, 300000 + 65536)}  # podu and its subordinate ids (debian13-root.sh)
IMAGE = "bb"
SLIRPD = "/mnt/slirpd/bin/slirpd"  # in the root
SLIRP4NETNS = "/usr/bin/slirp4netns"  # Debian 13's, in the root
PASTA = "/usr/bin/pasta"  # Debian 13's (passt 2025-05-03), in the root
RESOLVER = "127.0.0.53"
# systemd-resolved's files: the stub that /etc/resolv.conf links to, and the
# upstream servers, which podman gives a container when /etc/resolv.conf
# names only the stub (with none, it gives Google's public ones).  Upstream
# here is the sandbox's gateway, which does not exist: a container that
# falls back past the DNS address asks nothing that exists.
RESOLVED_DIR = "/run/systemd/resolve"
RESOLVED_FILES = {
    "stub-resolv.conf": ("# This is /run/systemd/resolve/stub-resolv.conf managed by man:systemd-resolved(8).\n"
                         f"nameserver {RESOLVER}\noptions edns0 trust-ad\nsearch .\n"),
    "resolv.conf": "# This is /run/systemd/resolve/resolv.conf managed by man:systemd-resolved(8).\n"
                   "nameserver 198.51.100.254\nsearch .\n",
}
# Each run's first lines, as root: those files in the run's fresh /run
RESOLVED_SETUP = "\n".join([f"mkdir -p {RESOLVED_DIR}", *(f"printf %s {shlex.quote(text)} > {RESOLVED_DIR}/{name}"
                                                           for name, text in RESOLVED_FILES.items())])
# podu's environment inside the root: the README's XDG_RUNTIME_DIR; the
# container store, caches and temporary files in the session's /mnt and the
# run's /tmp
PODU_ENV = (f"export XDG_RUNTIME_DIR=/run/user/{PODU_UID} XDG_DATA_HOME=/mnt/data XDG_CACHE_HOME=/mnt/cache"
            " TMPDIR=/tmp PODMAN_IGNORE_CGROUPSV1_WARNING=1; cd; ")
RUN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
LEFT_BEHIND_TIMEOUT = 10.0


def user_processes(uids: set[int]) -> list[str]:
    """The processes of uids (a user and its subordinate ids) in this
    network namespace, the test sandbox, as "PID COMMAND LINE"."""
    sandbox = os.stat("/proc/self/ns/net")
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/status") as f:
                uid = int(next(line for line in f if line.startswith("Uid:")).split()[1])
            net = os.stat(f"/proc/{pid}/ns/net")
            if uid in uids and (net.st_dev, net.st_ino) == (sandbox.st_dev, sandbox.st_ino):
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
                found.append(f"{pid} {cmdline}")
        except (OSError, StopIteration):
            continue  # gone meanwhile
    return found


def check_nothing_left(uids: set[int], where: str) -> None:
    """Fail when processes of uids outlive a run (once the kernel has had
    LEFT_BEHIND_TIMEOUT to finish a killed PID namespace); kill them first.
    where names the runs in the message."""
    deadline = time.monotonic() + LEFT_BEHIND_TIMEOUT
    while (left := user_processes(uids)) and time.monotonic() < deadline:
        time.sleep(0.05)
    for line in left:
        try:
            os.kill(int(line.split()[0]), signal.SIGKILL)
        except ProcessLookupError:
            pass
    if left:
        pytest.fail(f"processes left behind by a run {where} (killed):\n" + "\n".join(left))


def shared_libraries(binary: Path) -> list[str]:
    """The shared objects that binary loads (its interpreter included), as
    ldd finds them on this host; none for a static binary."""
    res = subprocess.run(["ldd", binary], capture_output=True, text=True)
    if res.returncode != 0:  # "not a dynamic executable"
        return []
    return re.findall(r"^\s*(?:\S+ => )?(/\S+) \(0x", res.stdout, re.M)


def busybox_rootfs(tar_path: Path, busybox: Path) -> None:
    """A container image's root file system: busybox as /bin/busybox, a
    link to it for each of its applets, and the shared objects it loads
    (none for busybox-static) at their paths."""
    applets = subprocess.run([busybox, "--list"], capture_output=True, text=True, check=True).stdout.split()
    libraries = shared_libraries(busybox)
    with tarfile.open(tar_path, "w") as tar:
        for d in ("bin", "etc"):
            info = tarfile.TarInfo(d)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        tar.add(busybox, "bin/busybox")
        for lib in libraries:
            tar.add(os.path.realpath(lib), lib.lstrip("/"))
        for name in applets:
            if name != "busybox":
                info = tarfile.TarInfo(f"bin/{name}")
                info.type, info.linkname = tarfile.SYMTYPE, "busybox"
                tar.addfile(info)


class LoggedCommand:
    """A wrapper script, WORK/DIRECTORY/NAME, which a run sees as
    /mnt/DIRECTORY/NAME (a run binds its session's files, work, on /mnt),
    that appends its argv to a log, one line per call, and execs binary:
    what a client passes to its network command (no argument here holds a
    space)."""

    def __init__(self, work: Path, name: str, binary: str, directory: str = "bin"):
        self.dir = f"/mnt/{directory}"
        self.path = f"{self.dir}/{name}"
        log = f"{directory}-{name}.argv"
        self.log = work / "log" / log
        self.log.unlink(missing_ok=True)
        (work / directory).mkdir(exist_ok=True)
        script = work / directory / name
        script.write_text(f'#!/bin/sh\necho "$*" >> /mnt/log/{log}\nexec {binary} "$@"\n')
        script.chmod(0o755)

    def calls(self) -> list[list[str]]:
        """The argv of each call so far."""
        return [line.split() for line in self.log.read_text().splitlines()] if self.log.exists() else []


class ClientsRoot:
    """The Debian 13 root, prepared for a session (see the module doc)."""

    def __init__(self, work: Path):
        self.work = work
        self.mnt = work / "mnt"
        self.etc = work / "etc"

    @classmethod
    def prepare(cls, wheel: Path, work: Path) -> ClientsRoot:
        """Check what `make clients-root` provides, lay out work, install
        slirpd from wheel and import IMAGE."""
        if not (REPO / ENTER).exists():
            pytest.fail(f"{(REPO / ENTER).resolve()} is missing: the repository's parent directory must hold shared/"
                        " (../shared/clients/, see its README)")
        if not (ROOT / ".ready").exists():
            pytest.fail(f"no Debian 13 root at {ROOT}: run `make clients-root` (as root, with network)")
        python = os.readlink(ROOT / "usr/bin/python3").removeprefix("python")
        wheels_for = (WHEELS / ".complete").read_text().split()[0] if (WHEELS / ".complete").exists() else None
        if wheels_for != python:
            pytest.fail(f"{WHEELS} holds no wheels for the root's Python {python}: run `make clients-root`")
        root = cls(work)
        os.chmod(work, 0o755)
        for d in ("bin", "log", "data", "cache"):
            (root.mnt / d).mkdir(parents=True)
        for d in ("log", "data", "cache"):
            shutil.chown(root.mnt / d, PODU_UID, PODU_UID)
        busybox_rootfs(root.mnt / "rootfs.tar", ROOT / "usr/bin/busybox")
        upper = work / "etc-upper"
        for d in (upper, work / "etc-work", root.etc):
            d.mkdir()
        (upper / "resolv.conf").symlink_to(f"..{RESOLVED_DIR}/stub-resolv.conf")
        subprocess.run(["mount", "-t", "overlay", "overlay", "-o",
                        f"lowerdir={ROOT}/etc,upperdir={upper},workdir={work}/etc-work", root.etc], check=True)
        try:
            root.run_ok("python3 -m venv /mnt/slirpd && /mnt/slirpd/bin/pip install -q --no-cache-dir"
                        f" --root-user-action=ignore --no-index --find-links /mnt/wheels /mnt/wheel/{wheel.name}",
                        as_root=True, binds=(f"{WHEELS}:/mnt/wheels", f"{wheel.parent}:/mnt/wheel"))
            root.run_ok(f"podman import /mnt/rootfs.tar {IMAGE} >/dev/null")
        except BaseException:
            root.close()
            raise
        return root

    def close(self) -> None:
        """Unmount the /etc overlay, remove the session's files."""
        subprocess.run(["umount", self.etc], check=True)
        shutil.rmtree(self.work)

    def logged(self, name: str) -> LoggedCommand:
        """slirpd or slirp4netns behind a LoggedCommand of that name."""
        return LoggedCommand(self.mnt, name, {"slirpd": SLIRPD, "slirp4netns": SLIRP4NETNS}[name])

    def logged_pasta(self, impl: str) -> LoggedCommand:
        """A LoggedCommand named pasta, in a directory of its own
        (/mnt/pasta-IMPL: podman's $CONTAINERS_HELPER_BINARY_DIR) that runs
        impl: "slirpd", through a link named pasta (slirpd takes pasta's
        command line by that name), or "pasta", Debian 13's."""
        binary = PASTA
        if impl == "slirpd":
            link = self.mnt / "lib" / "pasta"
            link.parent.mkdir(exist_ok=True)
            if not link.is_symlink():
                link.symlink_to(SLIRPD)
            binary = "/mnt/lib/pasta"
        return LoggedCommand(self.mnt, "pasta", binary, f"pasta-{impl}")

    def run(self, command: str, as_root: bool = False, binds: tuple[str, ...] = (),
            timeout: float = 120) -> subprocess.CompletedProcess:
        """Run command (sh) inside the root as podu (in PODU_ENV) or as root,
        with its output captured, in a PID namespace of its own (see the
        module doc); binds adds "SRC:DST" bind mounts.  Fails the test if a
        process of podu's outlives it."""
        if not as_root:
            command = f"exec su -s /bin/sh {PODU} -c {shlex.quote(PODU_ENV + command)}"
        bind = " ".join([f"{self.mnt}:/mnt", f"{self.etc}:/etc", *binds])
        argv = ["unshare", "--pid", "--fork", "--kill-child", "--", ENTER, str(ROOT), "sh", "-ec",
                f"{RESOLVED_SETUP}\n{command}"]
        try:
            return subprocess.run(argv, cwd=REPO, env={"PATH": RUN_PATH, "BIND": bind}, capture_output=True, text=True,
                                  timeout=timeout)
        finally:
            check_nothing_left(PODU_UIDS, "in the Debian 13 root")

    def run_ok(self, command: str, **kw) -> subprocess.CompletedProcess:
        """run(), failing the test unless command exits 0."""
        res = self.run(command, **kw)
        if res.returncode != 0:
            pytest.fail(f"{command!r} in the Debian 13 root exited {res.returncode}:\n{res.stdout}\n{res.stderr}")
        return res


def matches(argv: list[str], expected: list) -> bool:
    """argv is expected, word by word, where a compiled pattern in expected
    stands for a word that it matches in full."""
    return len(argv) == len(expected) and all(
        e.fullmatch(a) if isinstance(e, re.Pattern) else a == e for a, e in zip(argv, expected))
