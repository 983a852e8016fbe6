"""--enable-seccomp: the filter allows what the serving daemon does and
refuses the rest with EPERM; a daemon under it keeps serving; a missing
libseccomp is one clear line and exit status 1."""

import ctypes.util
import json
import os
import subprocess
import sys

import pytest

from lib.harness import SLIRPD, as_user
from lib.lockdown import ATTEMPTS, status_field

pytestmark = pytest.mark.timeout(120)

# Loads the filter as the daemon does, then tries calls on both sides of it.
PROBE = r"""
import ctypes, json, mmap, os, socket
from slirpd import seccomp
libc = ctypes.CDLL(None, use_errno=True)
seccomp.enter()
""" + ATTEMPTS + r"""
def libc_call(rc):
    if rc != 0:
        raise OSError(ctypes.get_errno(), "libc")

def fork():
    if os.fork() == 0:
        os._exit(0)

attempt("socket AF_INET", lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM).close())
attempt("socket AF_INET6", lambda: socket.socket(socket.AF_INET6, socket.SOCK_DGRAM).close())
attempt("socket AF_NETLINK", lambda: socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0).close())
attempt("socket AF_UNIX", lambda: socket.socket(socket.AF_UNIX, socket.SOCK_STREAM).close())
attempt("socket AF_PACKET", lambda: socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0).close())
attempt("mmap rw", lambda: mmap.mmap(-1, 4096).close())
attempt("mmap exec", lambda: mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_EXEC).close())
attempt("open", lambda: open("/etc/hostname").close())
attempt("fork", fork)
attempt("execve", lambda: os.execv("/bin/true", ["true"]))
attempt("kill", lambda: os.kill(os.getppid(), 0))
attempt("unshare", lambda: libc_call(libc.unshare(0x10000000)))
attempt("ptrace", lambda: libc_call(libc.ptrace(16, os.getppid(), 0, 0)))
attempt("mount", lambda: libc_call(libc.mount(b"none", b"/tmp", b"tmpfs", 0, None)))
attempt("ioctl FIONBIO", lambda: __import__("fcntl").ioctl(0, 0x5421, b"\0" * 4))
attempt("ioctl FIONREAD", lambda: __import__("fcntl").ioctl(0, 0x541B, b"\0" * 4))
attempt("fstat", lambda: os.fstat(1))
attempt("stat path", lambda: os.stat("/"))
attempt("ioctl TIOCSTI", lambda: __import__("fcntl").ioctl(0, 0x5412, b"x"))
print(json.dumps(results), flush=True)
"""


def test_filter_allows_the_daemons_calls_and_refuses_others(plain_user):
    r, w = os.pipe()  # stdin: a pipe, so the ioctls have something to answer
    try:
        res = subprocess.run([sys.executable, "-c", PROBE], stdin=r, capture_output=True, text=True, timeout=60,
                             **as_user(plain_user))
    finally:
        os.close(r)
        os.close(w)
    assert res.returncode == 0, res.stderr
    got = json.loads(res.stdout)
    allowed = {"socket AF_INET", "socket AF_INET6", "mmap rw", "ioctl FIONBIO", "fstat"}
    assert got == {name: ("ok" if name in allowed else "EPERM") for name in got}
    assert len(got) == 19


def test_daemon_serves_under_the_filter(guest, start_slirpd):
    d = start_slirpd("-c", "--enable-seccomp", str(guest.pid))
    assert status_field(d.proc.pid, "Seccomp") == "2"  # SECCOMP_MODE_FILTER
    assert status_field(d.proc.pid, "NoNewPrivs") == "1"
    res = guest.run("ping -c 2 -i 0.2 -W 2 10.0.2.2", check=False)
    assert res.returncode == 0, res.stdout + res.stderr
    assert d.counters()["icmp_echo_replies"] >= 2
    assert d.stop() == 0
    assert "Traceback" not in d.stderr


def libseccomp_path() -> str:
    name = ctypes.util.find_library("seccomp")
    out = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True).stdout
    paths = [line.split("=>")[1].strip() for line in out.splitlines() if line.strip().startswith(name)]
    assert paths, f"{name} not in the linker cache"
    return os.path.realpath(paths[0])


def test_libseccomp_missing_is_one_line_and_exit_1():
    """A private mount namespace where the library is an empty file."""
    script = f"mount --bind /dev/null {libseccomp_path()} && exec {SLIRPD} --enable-seccomp 1"
    res = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                         capture_output=True, text=True, timeout=30)
    assert res.returncode == 1
    lines = res.stderr.splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("slirpd: --enable-seccomp: libseccomp is not available")
