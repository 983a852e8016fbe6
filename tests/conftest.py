"""The test harness: sandbox check, markers, and the fixtures.

Every test runs inside the sealed sandbox of tests/sandbox.sh (the README's
`make test` puts it there).  The daemon and the guest namespace run as a plain
user created here, to prove the unprivileged path; the harness itself is root.
What the fixtures build on lives in tests/lib/.

The hardened pass (SLIRPD_TEST_HARDEN=1) runs only the tests marked
`daemon`: those that run the slirpd under test as a process (a daemon, or a
command line that exits, such as test_cli's).  In-process tests (frames
through the C core, the fuzzer, unit tests of the Python modules) run once.  A test gets the
marker by itself through a fixture that starts slirpd (DAEMON_FIXTURES), or
from its module; a test that runs slirpd without it fails in the first pass
(daemon_check), so that none loses its hardened run.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from lib import daemon_check
from lib.clients import ClientsRoot, RESOLVER
from lib.daemon import READY_TIMEOUT, Slirpd
from lib.deb12 import Deb12Clients
from lib.dns import DnsServer, host_resolver
from lib.guest import Guest
from lib.link import Link
from lib.harness import (HARDEN, REPO, SLIRPD, VENV_BIN, as_user, environ_without_preload, plain_user as new_plain_user,
                         read_with_timeout, run_ok, slirpd_argv)
from lib.pastalib import GATEWAY4, Pasta, pasta_link

# The soak (tests/soak.sh): each daemon's descriptors and RSS once ready and at
# the end of its test, one JSON line per daemon appended to this file.
SOAK_LOG = os.environ.get("SLIRPD_SOAK_LOG")
# Fixtures that start slirpd (directly, as pasta, or through podman and
# rootlesskit in the clients' root or on this Debian 12): a test using one,
# even through another fixture, is marked daemon.
DAEMON_FIXTURES = {"start_slirpd", "pasta_bin", "clients_root", "deb12_clients"}


def pytest_configure(config):
    config.addinivalue_line("markers", "daemon: runs the slirpd under test as a process (a daemon, or a command "
                                       "line that exits); the hardened pass (SLIRPD_TEST_HARDEN=1) runs only these")
    daemon_check.install(SLIRPD)


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


def pytest_collection_modifyitems(config, items):
    """Mark the tests that use a DAEMON_FIXTURES fixture; in the hardened
    pass, deselect the tests that are not marked daemon."""
    for item in items:
        if DAEMON_FIXTURES & set(item.fixturenames):
            item.add_marker(pytest.mark.daemon)
    if HARDEN:
        unmarked = [item for item in items if item.get_closest_marker("daemon") is None]
        if unmarked:
            config.hook.pytest_deselected(items=unmarked)
            items[:] = [item for item in items if item.get_closest_marker("daemon") is not None]


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    daemon_check.reset()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A test that ran slirpd (in its setup or its body) without the daemon
    marker fails: the hardened pass would leave it out."""
    outcome = yield
    report = outcome.get_result()
    if call.when == "call" and report.passed and daemon_check.started() \
            and item.get_closest_marker("daemon") is None:
        report.outcome = "failed"
        report.longrepr = (f"{item.nodeid} ran slirpd ({daemon_check.started()}) but is not marked daemon: "
                           "mark it (pytest.mark.daemon) so that the hardened pass runs it too")


@pytest.fixture(scope="session")
def plain_user():
    """An unprivileged user (created when missing) that runs guests and daemons."""
    return new_plain_user()


@pytest.fixture
def user_tmp(plain_user):
    """A fresh directory that the plain user owns (pytest's tmp_path is
    root's, mode 0700), removed afterwards."""
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
                got = read_with_timeout(rfd, READY_TIMEOUT)
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
    2.0 and the slirpd under test (a ClientsRoot: see tests/lib/clients.py)."""
    root = ClientsRoot.prepare(wheel, tmp_path_factory.mktemp("clients"))
    yield root
    root.close()


@pytest.fixture(scope="session")
def deb12_clients(tmp_path_factory):
    """Debian 12's podman 4.3 and rootlesskit 1.1, run as a plain user with
    subordinate ids (a Deb12Clients: see tests/lib/deb12.py)."""
    clients = Deb12Clients.prepare(tmp_path_factory.mktemp("deb12"))
    yield clients
    clients.close()


@pytest.fixture(scope="session")
def pasta_bin():
    """A `pasta` link to the slirpd under test (what users put in podman's
    helper_binaries_dir), in a directory the plain user may read."""
    directory = Path(tempfile.mkdtemp(prefix="slirpd-pasta-", dir="/tmp"))
    yield pasta_link(directory)
    shutil.rmtree(directory)


@pytest.fixture
def pasta_fg(guest, pasta_bin, user_tmp):
    """start(*options): slirpd as pasta in the foreground on the guest's PID
    (--config-net and options), returned once set up (pastalib.Pasta);
    stopped at teardown."""
    p = Pasta(guest, pasta_bin)

    def start(*options):
        p.start_foreground(["-f", "--config-net", *options, str(guest.pid)], ready_in=user_tmp / "pasta.pid")
        return p
    yield start
    p.stop()


@pytest.fixture
def pair():
    """A data plane on a socket-pair link (lib.link), closed afterwards."""
    link = Link("pair")
    yield link
    link.close()


@pytest.fixture
def dns_server(tmp_path):
    """The responder, and /etc/resolv.conf naming it.  Use before starting
    slirpd: it reads resolv.conf at start."""
    with host_resolver(tmp_path) as srv:
        yield srv


@pytest.fixture
def resolver():
    """The host's resolver: DNS on the sandbox's 127.0.0.53:53, UDP and TCP."""
    srv = DnsServer(RESOLVER)
    yield srv
    srv.close()


@pytest.fixture
def stub_resolver(tmp_path):
    """The host's resolver as systemd-resolved's stub: DNS on the sandbox's
    127.0.0.53:53, named first in /etc/resolv.conf (host_resolver), then the
    sandbox's gateway, which does not exist: podman drops loopback
    nameservers from a container's resolv.conf, and with none left would
    name Google's public ones."""
    with host_resolver(tmp_path, RESOLVER, f"nameserver {GATEWAY4}\n") as srv:
        yield srv
