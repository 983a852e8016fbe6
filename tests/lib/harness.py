"""The plain user, the slirpd under test and how children are started.

The daemon and the guest namespace run as a plain user created here, to prove
the unprivileged path; the harness itself is root.  The hardened pass
(SLIRPD_TEST_HARDEN=1, the second half of `make test`) starts every daemon
with --enable-sandbox --enable-seccomp where its mode allows: slirpd_argv()
is the one place that adds them.
"""

from __future__ import annotations

import os
import pwd
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lib import daemon_check

TEST_USER = "slirpd-test"
REPO = Path(__file__).resolve().parent.parent.parent
VENV_BIN = Path(sys.executable).parent
SLIRPD = str(VENV_BIN / "slirpd")
# The hardened pass (`make test-hardened`, the second half of `make test`):
# slirpd_argv adds --enable-sandbox --enable-seccomp wherever the mode allows.
HARDEN = os.environ.get("SLIRPD_TEST_HARDEN") == "1"
# Measuring the seccomp allowlist: every daemon runs under strace, one trace
# file per process in this directory (see slirpd/seccomp.py).
STRACE_DIR = os.environ.get("SLIRPD_TEST_STRACE")
# Passed on to children: the sanitizer runtime of `make test-asan`, debug logs
INHERITED_ENV = ("PATH", "LD_PRELOAD", "ASAN_OPTIONS", "LSAN_OPTIONS", "UBSAN_OPTIONS", "PYTHONMALLOC", "SLIRPD_DEBUG")
# Marks the processes this test session starts as the plain user (and what
# they start): other sessions may run as the same user at the same time
SESSION_MARK = f"SLIRPD_TEST_SESSION={os.getpid()}"


def plain_user(name: str = TEST_USER) -> pwd.struct_passwd:
    """The unprivileged user that runs guests and daemons, or another one
    named name (created when missing)."""
    try:
        return pwd.getpwnam(name)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
                       check=True)
        return pwd.getpwnam(name)


def harden_args(args) -> list[str]:
    """The flags the hardened pass adds to a slirpd command line: both, but
    no --enable-sandbox for --create-netns (it must unmount its namespace
    file on exit, which the sandbox's mount namespace would hide); none that
    are given."""
    args = list(args)
    confined = any(a.startswith("--create-netns") for a in args)
    extra = ["--enable-seccomp"] if confined else ["--enable-sandbox", "--enable-seccomp"]
    return [a for a in extra if a not in args]


def slirpd_argv(*args: str) -> list[str]:
    """The argv that runs slirpd with args, hardened and traced as the
    test pass asks (for tests that start slirpd without start_slirpd).

    Traced, a shell starts strace on itself and then execs slirpd: the
    daemon keeps the pid the test sees, so signals reach it, not strace."""
    argv = [SLIRPD, *(harden_args(args) if HARDEN else []), *args]
    if STRACE_DIR:
        no_fds = " ".join(f"{fd}>&-" for fd in range(3, 256))  # strace must not hold the ready fd open
        script = (f"strace -f -ff -qq -o {STRACE_DIR}/trace -p $$ 2>/dev/null {no_fds} & "
                  "until grep -q 'TracerPid:[[:space:]]*[1-9]' /proc/$$/status; do sleep 0.02; done; "
                  'exec "$@"')
        argv = ["bash", "-c", script, "bash", *argv]
    daemon_check.note_argv(argv)
    return argv


def environ_without_preload(**extra: str) -> dict[str, str]:
    """This environment less LD_PRELOAD, plus extra: for programs other than
    slirpd, which under make test-asan's preloaded runtimes deadlock (pgrep,
    curl) or clash with their own (the fuzzer, the wheel's build tools)."""
    return {**{k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}, **extra}


def as_user(user: pwd.struct_passwd) -> dict:
    """subprocess keyword arguments that run a child as user, with no extra groups."""
    env = {k: os.environ[k] for k in INHERITED_ENV if k in os.environ}
    mark, _, value = SESSION_MARK.partition("=")
    return {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": [], "cwd": "/",
            "env": {**env, "HOME": "/", mark: value}}


def session_processes(user: pwd.struct_passwd) -> list[int]:
    """The processes of user that this test session started, directly or
    not (their environment carries SESSION_MARK), zombies left out."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            if os.stat(f"/proc/{name}").st_uid != user.pw_uid:
                continue
            with open(f"/proc/{name}/stat") as f:
                if f.read().rpartition(")")[2].split()[0] == "Z":
                    continue
            with open(f"/proc/{name}/environ", "rb") as f:
                if SESSION_MARK.encode() in f.read().split(b"\0"):
                    found.append(int(name))
        except OSError:
            continue
    return found


def wait_for(predicate, timeout: float, what: str, interval: float = 0.02, error: type[Exception] | None = None):
    """Poll predicate until it returns a true value, and return that value.

    On timeout the test fails (pytest.fail), or, for callers outside a test
    (bench/), error is raised with the same message."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    message = f"timed out after {timeout}s waiting for {what}"
    if error is not None:
        raise error(message)
    pytest.fail(message)


def read_with_timeout(fd: int, timeout: float) -> bytes:
    """What fd gives until EOF or timeout seconds have passed."""
    data = b""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return data
        r, _, _ = select.select([fd], [], [], left)
        if not r:
            return data
        chunk = os.read(fd, 64)
        if not chunk:
            return data
        data += chunk


def run_ok(argv, **kw) -> subprocess.CompletedProcess:
    """Run argv (paths allowed) to completion, 180 s at most unless
    timeout= says otherwise; fail the test unless it exits 0."""
    res = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=kw.pop("timeout", 180),
                         **kw)
    assert res.returncode == 0, f"{argv}:\n{res.stdout}\n{res.stderr}"
    return res


def have(tool: str) -> bool:
    """Whether tool is on PATH."""
    return shutil.which(tool) is not None
