"""The test harness: sandbox check, a plain user, guest namespaces, the daemon.

Every test runs inside the sealed sandbox of tests/sandbox.sh (the README's
`make test` puts it there).  The daemon and the guest namespace run as a plain
user created here, to prove the unprivileged path; the harness itself is root.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

TEST_USER = "slirpd-test"
REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
SLIRPD = str(VENV_BIN / "slirpd")
READY_TIMEOUT = 20.0
# The hardened pass (`make test-hardened`, the second half of `make test`):
# start_slirpd adds --enable-sandbox --enable-seccomp wherever the mode allows.
HARDEN = os.environ.get("SLIRPD_TEST_HARDEN") == "1"
# Measuring the seccomp allowlist: every daemon runs under strace, one trace
# file per process in this directory (see slirpd/seccomp.py).
STRACE_DIR = os.environ.get("SLIRPD_TEST_STRACE")
# The soak (tests/soak.sh): each daemon's descriptors and RSS once ready and at
# the end of its test, one JSON line per daemon appended to this file.
SOAK_LOG = os.environ.get("SLIRPD_SOAK_LOG")


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
    return argv


def pytest_sessionstart(session):
    if os.environ.get("SLIRPD_SANDBOX") != "1" or os.geteuid() != 0:
        pytest.exit("run the tests through `make test` (as root, inside tests/sandbox.sh)", returncode=2)
    routes = subprocess.run(["ip", "route", "show", "default"], capture_output=True, text=True).stdout
    if "dev up0" not in routes:
        pytest.exit(f"not inside the sandbox network namespace (default route: {routes!r})", returncode=2)
    # Children inherit ignored signals: a suite started under nohup (SIGHUP
    # ignored) would start every daemon and command that way.  The tests
    # decide their children's signals themselves (test_standalone's nohup
    # test ignores SIGHUP on purpose).
    signal.signal(signal.SIGHUP, signal.SIG_DFL)


@pytest.fixture(scope="session")
def plain_user() -> pwd.struct_passwd:
    """An unprivileged user (created when missing) that runs guests and daemons."""
    try:
        return pwd.getpwnam(TEST_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", TEST_USER],
                       check=True)
        return pwd.getpwnam(TEST_USER)


# Passed on to children: the sanitizer runtime of `make test-asan`, debug logs
INHERITED_ENV = ("PATH", "LD_PRELOAD", "ASAN_OPTIONS", "LSAN_OPTIONS", "UBSAN_OPTIONS", "PYTHONMALLOC", "SLIRPD_DEBUG")


def environ_without_preload(**extra: str) -> dict[str, str]:
    """This environment less LD_PRELOAD, plus extra: for programs other than
    slirpd, which under make test-asan's preloaded runtimes deadlock (pgrep,
    curl) or clash with their own (the fuzzer, the wheel's build tools)."""
    return {**{k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}, **extra}


# Marks the processes this test session starts as the plain user (and what
# they start): other sessions may run as the same user at the same time
SESSION_MARK = f"SLIRPD_TEST_SESSION={os.getpid()}"


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


def wait_for(predicate, timeout: float, what: str, interval: float = 0.02):
    """Poll predicate until it returns a true value; fail the test on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout}s waiting for {what}")


class Guest:
    """A process in new user, network and mount namespaces, started as the plain
    user exactly as the slirp4netns man page does:
    `unshare --user --map-root-user --net --mount`."""

    def __init__(self, user: pwd.struct_passwd):
        self.user = user
        self.proc = subprocess.Popen(["unshare", "--user", "--map-root-user", "--net", "--mount",
                                      "sleep", "infinity"], **as_user(user))
        self.pid = self.proc.pid
        own = os.stat("/proc/self/ns/net").st_ino
        wait_for(lambda: self._netns_ino() not in (None, own), 5, "the guest's network namespace")

    def _netns_ino(self):
        try:
            return os.stat(f"/proc/{self.pid}/ns/net").st_ino
        except OSError:
            return None

    def run(self, cmd: str | list[str], check: bool = True, timeout: float = 30, **kw) -> subprocess.CompletedProcess:
        """Run cmd (a shell string or an argv) inside the guest, as its root."""
        argv = ["sh", "-c", cmd] if isinstance(cmd, str) else list(cmd)
        enter = ["nsenter", f"--target={self.pid}", "--user", "--net", "--mount", "--preserve-credentials", "--"]
        res = subprocess.run(enter + argv, capture_output=True, text=True, timeout=timeout, **as_user(self.user), **kw)
        if check and res.returncode != 0:
            pytest.fail(f"guest command {cmd!r} failed ({res.returncode}):\n{res.stdout}\n{res.stderr}")
        return res

    def python(self, script: str, *args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
        """Run a Python script inside the guest (the test's interpreter)."""
        return self.run([sys.executable, "-c", script, *args], check=check, timeout=timeout)

    def ip_json(self, *args: str):
        """`ip -json ARGS` inside the guest, parsed."""
        return json.loads(self.run(["ip", "-json", *args]).stdout or "[]")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)


@pytest.fixture
def user_tmp(plain_user):
    """A fresh directory that the plain user owns (pytest's tmp_path is
    root's, mode 0700), removed afterwards."""
    import tempfile

    path = Path(tempfile.mkdtemp(prefix="slirpd-test-", dir="/tmp"))
    os.chown(path, plain_user.pw_uid, plain_user.pw_gid)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def guest(plain_user):
    g = Guest(plain_user)
    yield g
    g.stop()


@pytest.fixture
def net_guest(guest, start_slirpd):
    """A guest with slirpd attached (--configure, defaults); the daemon is
    guest.slirpd."""
    guest.slirpd = start_slirpd("--configure", str(guest.pid))
    return guest


class Slirpd:
    """A running slirpd (as the plain user) with its ready fd already fired."""

    def __init__(self, proc: subprocess.Popen, stderr_path: Path):
        self.proc = proc
        self.stderr_path = stderr_path
        self.at_start: dict | None = None  # footprint() once ready

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text()

    def stop(self, sig=signal.SIGTERM, timeout: float = 10) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout=timeout)

    def open_fds(self) -> int:
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    def counters(self, timeout: float = 5) -> dict:
        """The data plane's counters, asked for with SIGUSR1 (one JSON line
        on stderr)."""
        before = self.stderr.count("slirpd: counters ")
        self.proc.send_signal(signal.SIGUSR1)
        wait_for(lambda: self.stderr.count("slirpd: counters ") > before, timeout, "a counters line")
        line = [ln for ln in self.stderr.splitlines() if ln.startswith("slirpd: counters ")][-1]
        return json.loads(line[len("slirpd: counters "):])

    def footprint(self) -> dict | None:
        """Descriptors and RSS (KiB) now, None if the daemon is gone."""
        try:
            return {"fds": self.open_fds(), "rss_kib": self.rss_kib()}
        except (OSError, StopIteration):
            return None

    def cpu_ticks(self) -> int:
        """The daemon's user plus system CPU time so far, in clock ticks
        (/proc/PID/stat, fields 14 and 15)."""
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])

    def rss_kib(self) -> int:
        status = open(f"/proc/{self.proc.pid}/status").read()
        return int(next(line for line in status.splitlines() if line.startswith("VmRSS:")).split()[1])


@pytest.fixture
def start_slirpd(plain_user, tmp_path):
    """Factory: start_slirpd(*args, ready=True, pass_fds=(), user=plain_user,
    wrap=(), binary=SLIRPD, env=None) -> Slirpd.  wrap is an argv prefix (e.g.
    nsenter ...); binary may be another implementation (Debian's slirp4netns);
    env adds variables to the daemon's environment.

    With ready=True a ready fd is added (-r) and the call returns once slirpd has
    written "1" to it.  Every daemon started is stopped at teardown."""
    started: list[Slirpd] = []

    def start(*args: str, ready: bool = True, pass_fds=(), user=plain_user, wrap=(), binary=SLIRPD,
              env=None) -> Slirpd:
        stderr_path = tmp_path / f"slirpd-{len(started)}.stderr"
        fds = list(pass_fds)
        args = list(args)
        if ready:
            rfd, wfd = os.pipe()
            fds.append(wfd)
            args.insert(0, f"--ready-fd={wfd}")
        argv = [*wrap, *(slirpd_argv(*args) if binary == SLIRPD else [binary, *args])]
        with open(stderr_path, "w") as err:
            kw = as_user(user) if user is not None else {"env": dict(os.environ)}
            kw["env"].update(env or {})
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=err, stderr=err, pass_fds=fds, **kw)
        d = Slirpd(proc, stderr_path)
        started.append(d)
        if ready:
            os.close(wfd)
            try:
                got = _read_with_timeout(rfd, READY_TIMEOUT)
            finally:
                os.close(rfd)
            if got != b"1":
                d.stop(signal.SIGKILL)
                pytest.fail(f"slirpd not ready (ready fd gave {got!r}); stderr:\n{d.stderr}")
            d.at_start = d.footprint()
        return d

    yield start
    for d in started:
        if d.proc.poll() is None:
            if SOAK_LOG and d.at_start:
                with open(SOAK_LOG, "a") as f:
                    f.write(json.dumps({"test": os.environ.get("PYTEST_CURRENT_TEST", "").split(" ")[0],
                                        "start": d.at_start, "end": d.footprint()}) + "\n")
            d.proc.kill()
            d.proc.wait(timeout=10)


def _read_with_timeout(fd: int, timeout: float) -> bytes:
    import select

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


@pytest.fixture(scope="session")
def wheel(tmp_path_factory) -> Path:
    """slirpd's manylinux wheel, built from a copy of the source tree and
    repaired by auditwheel (once a session: tests/test_wheel.py checks it,
    the Debian 13 clients run it)."""
    work = tmp_path_factory.mktemp("wheel")
    src = work / "src"
    shutil.copytree(REPO, src, ignore=shutil.ignore_patterns(
        ".git", "build", "dist", "wheelhouse", "*.egg-info", "*.so", "_dp.c", "__pycache__", ".pytest_cache",
        "results"))
    env = environ_without_preload(PATH=f"{VENV_BIN}:{os.environ['PATH']}")
    env.pop("SLIRPD_SANITIZE", None)
    run_ok([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", work / "dist", src], env=env)
    run_ok([VENV_BIN / "auditwheel", "repair", "--wheel-dir", work / "wheelhouse", *(work / "dist").glob("*.whl")],
           env=env)
    (whl,) = (work / "wheelhouse").glob("*.whl")
    return whl


@pytest.fixture(scope="session")
def clients_root(wheel, tmp_path_factory):
    """The Debian 13 root of ../shared/clients/ with podman 5.4, rootlesskit
    2.0 and the slirpd under test (a ClientsRoot: see tests/clients.py)."""
    from clients import ClientsRoot

    root = ClientsRoot.prepare(wheel, tmp_path_factory.mktemp("clients"))
    yield root
    root.close()


@pytest.fixture(scope="session")
def pasta_bin():
    """A `pasta` link to the slirpd under test (what users put in podman's
    helper_binaries_dir), in a directory the plain user may read."""
    import tempfile

    from pastalib import pasta_link

    directory = Path(tempfile.mkdtemp(prefix="slirpd-pasta-", dir="/tmp"))
    yield pasta_link(directory)
    shutil.rmtree(directory)


@pytest.fixture
def pasta_fg(guest, pasta_bin, user_tmp):
    """start(*options): slirpd as pasta in the foreground on the guest's PID
    (--config-net and options), returned once set up (pastalib.Pasta);
    stopped at teardown."""
    from pastalib import Pasta

    p = Pasta(guest, pasta_bin)

    def start(*options):
        p.start_foreground(["-f", "--config-net", *options, str(guest.pid)], ready_in=user_tmp / "pasta.pid")
        return p
    yield start
    p.stop()


def have(tool: str) -> bool:
    return shutil.which(tool) is not None
