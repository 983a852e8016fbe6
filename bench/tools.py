"""The guest namespace and the daemons under test, run as the plain user.

A Guest is the test suite's (tests/lib/guest.py: `unshare --user
--map-root-user --net --mount sleep infinity` started as the plain user, the
same plain_user() as the tests'); commands enter it with nsenter.  Each daemon class attaches its tool to one guest at one MTU, sets up
the forward FWD_HOST_PORT -> FWD_GUEST_PORT and learns the address at which the
guest reaches the host's loopback (`gateway`).  The -v6 variants of slirp4netns
and slirpd run with -6 and do everything over IPv6: the guest reaches the host's
::1 at fd00::2, the forward goes from [::1]:FWD_HOST_PORT to the guest's
fd00::/64 address.  Every wait is bounded: a tool
that does not come up raises ToolError with the reason.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# the test suite's library (tests/lib/): the plain user, its environment, the guest
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from lib.guest import Guest as TestGuest  # noqa: E402
from lib.harness import REPO, as_user, plain_user, wait_for  # noqa: E402, F401 (REPO, plain_user: for bench.py)

FWD_HOST_PORT, FWD_GUEST_PORT = 15201, 5201
START_TIMEOUT = 20.0
CLK_TCK = os.sysconf("SC_CLK_TCK")


class ToolError(Exception):
    """A tool could not be started or asked; the message goes into the table."""


def require_sandbox_root(prog: str) -> None:
    """Exit with one line unless running as root inside tests/sandbox.sh."""
    if os.environ.get("SLIRPD_SANDBOX") != "1" or os.geteuid() != 0:
        sys.exit(f"{prog}: run it as root inside tests/sandbox.sh")


def ab_runs(directions: str, runs: int, venvs: list[str]):
    """(direction, run, venv) in the order of an A/B measurement: for each
    direction (comma-separated) and run, every venv in turn, alternating, so
    that a change of load hits them all; no venv: this interpreter's."""
    for direction in directions.split(","):
        for run in range(runs):
            for venv in venvs or [str(Path(sys.executable).parent.parent)]:
                yield direction, run, venv


def pasta_link(slirpd: Path) -> str:
    """A link named pasta to slirpd (slirpd takes pasta's command line by
    that name), in a directory of its own; "" without slirpd."""
    if not slirpd.exists():
        return ""
    directory = Path(tempfile.mkdtemp(prefix="slirpd-bench-pasta-", dir="/tmp"))
    os.chmod(directory, 0o755)
    (directory / "pasta").symlink_to(slirpd)
    return str(directory / "pasta")


def wait_until(predicate, timeout: float, what: str, interval: float = 0.05):
    """tests/lib's wait_for, raising ToolError on timeout (the table shows it)."""
    return wait_for(predicate, timeout, what, interval, error=ToolError)


def listening(pid: int, port: int) -> bool:
    """Whether a TCP socket listens on port in the network namespace of pid."""
    for table in ("tcp", "tcp6"):
        try:
            lines = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:
                return True
    return False


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat from field 3 (state) on, or None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2:].split()


def cpu_seconds(pid: int) -> float:
    """utime+stime of pid and its live descendants, plus its reaped children's."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (fields := _stat_fields(int(entry))):
            children.setdefault(int(fields[1]), []).append(int(entry))
    root = _stat_fields(pid)
    if root is None:
        return 0.0
    ticks = int(root[13]) + int(root[14])
    todo = [pid]
    while todo:
        p = todo.pop()
        if fields := _stat_fields(p):
            ticks += int(fields[11]) + int(fields[12])
        todo += children.get(p, [])
    return ticks / CLK_TCK


def rss_mib(pid: int) -> float:
    """VmRSS of pid in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise ToolError("no VmRSS")


def start_server(argv: list[str], port: int, netns_pid: int, guest: "Guest | None" = None) -> subprocess.Popen:
    """Start a server (in the guest if given) and wait until port listens in
    the network namespace of netns_pid; ToolError if it does not."""
    kw = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    proc = guest.popen(argv, **kw) if guest else subprocess.Popen(argv, **kw)
    deadline = time.monotonic() + 10
    while not listening(netns_pid, port):
        if time.monotonic() > deadline or proc.poll() is not None:
            stop(proc)
            raise ToolError(f"server {argv[0]} did not listen on {port}")
        time.sleep(0.02)
    return proc


def stop(proc: subprocess.Popen):
    """Kill a helper process and reap it."""
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=10)


class Guest(TestGuest):
    """The test suite's guest (tests/lib/guest.py); a namespace that does
    not appear raises ToolError, and run() leaves the exit status to the
    caller."""

    timeout_error = ToolError

    def run(self, cmd: list[str], timeout: float) -> subprocess.CompletedProcess:
        """Run cmd in the guest; subprocess.TimeoutExpired after timeout seconds."""
        return super().run(cmd, check=False, timeout=timeout)

    def global_address6(self) -> str | None:
        """The guest's first global IPv6 address on tap0, once it has one."""
        res = self.run(["ip", "-json", "-6", "addr", "show", "dev", "tap0", "scope", "global"], timeout=5)
        for link in json.loads(res.stdout or "[]"):
            for a in link.get("addr_info", []):
                if a.get("local") and not a.get("tentative"):
                    return a["local"]
        return None

    def default_gateway(self) -> str | None:
        """The guest's IPv4 default gateway, once it has one."""
        res = self.run(["ip", "-json", "-4", "route", "show", "default"], timeout=5)
        routes = json.loads(res.stdout or "[]")
        return routes[0].get("gateway") if routes else None


class Daemon:
    """One tool attached to one guest; subclasses implement start()."""

    name = "?"
    # the host's loopback address: where the servers listen
    loopback = "127.0.0.1"

    def __init__(self, binary: str, guest: Guest, mtu: int, workdir: Path, env: dict | None = None):
        self.binary = binary
        self.env = env or {}
        self.guest = guest
        self.mtu = mtu
        self.workdir = workdir
        self.proc: subprocess.Popen | None = None
        self.gateway = ""
        self.forward_error: str | None = None
        self.stderr_path = workdir / f"{self.name}-{mtu}.stderr"

    def _spawn(self, argv: list[str], pass_fds=()) -> subprocess.Popen:
        """Start argv as the plain user, stderr and stdout into stderr_path."""
        kw = as_user(self.guest.user)
        kw["env"].update(self.env)
        with open(self.stderr_path, "w") as err:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=err, stderr=err,
                                         pass_fds=pass_fds, **kw)
        return self.proc

    def stderr_tail(self) -> str:
        """The last line the daemon wrote, for error messages."""
        lines = self.stderr_path.read_text(errors="replace").strip().splitlines()
        return lines[-1] if lines else "(no output)"

    def alive(self) -> bool:
        """Whether the daemon process still runs."""
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        """Terminate the daemon (SIGKILL if it does not go within 5 s)."""
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


class SlirpCompatible(Daemon):
    """slirp4netns and slirpd: same command line, ready fd and JSON API socket."""

    options: list[str] = []
    gateway_address = "10.0.2.2"

    def start(self):
        """Start with --configure and an API socket, then add the port forward.
        A daemon that refuses -a is restarted with publish_options() instead
        (no forward if there are none)."""
        api = self.workdir / f"{self.name}-{self.mtu}.sock"
        if self._start_with([*self.options, "--api-socket", str(api)]):
            self._add_hostfwd(api)
        else:
            refusal = self.stderr_tail()
            publish = self.publish_options()
            if not self._start_with([*self.options, *publish]):
                raise ToolError(f"not ready: {self.stderr_tail()}")
            if not publish:
                self.forward_error = f"-a refused: {refusal}"
        self.gateway = self.gateway_address

    def publish_options(self) -> list[str]:
        """Command-line options that forward FWD_HOST_PORT, if the tool has any."""
        return []

    def _start_with(self, extra: list[str]) -> bool:
        """Start the daemon; True once it writes "1" to its ready fd."""
        rfd, wfd = os.pipe()
        argv = [self.binary, "--configure", f"--mtu={self.mtu}", f"--ready-fd={wfd}", *extra,
                str(self.guest.pid), "tap0"]
        try:
            self._spawn(argv, pass_fds=(wfd,))
            os.close(wfd)
            ready, _, _ = select.select([rfd], [], [], START_TIMEOUT)
            got = os.read(rfd, 1) if ready else b""
        finally:
            os.close(rfd)
        if got != b"1":
            self.stop()
        return got == b"1"

    def guest_address(self) -> str:
        """The guest_addr of the forward: "" is the -c address."""
        return ""

    def _add_hostfwd(self, api: Path):
        """add_hostfwd loopback:FWD_HOST_PORT -> guest FWD_GUEST_PORT over the API socket,
        TCP and UDP (iperf3 -u's control connection is TCP on the same port)."""
        try:
            guest_addr = self.guest_address()
        except ToolError as e:
            self.forward_error = str(e)
            return
        for proto in ("tcp", "udp"):
            self._add_one_hostfwd(api, proto, guest_addr)
            if self.forward_error:
                return

    def _add_one_hostfwd(self, api: Path, proto: str, guest_addr: str):
        """One add_hostfwd request; a failure goes to forward_error."""
        request = {"execute": "add_hostfwd", "arguments": {"proto": proto, "host_addr": self.loopback,
                                                           "host_port": FWD_HOST_PORT, "guest_addr": guest_addr,
                                                           "guest_port": FWD_GUEST_PORT}}
        try:
            with socket.socket(socket.AF_UNIX) as sock:
                sock.settimeout(5)
                sock.connect(str(api))
                sock.sendall(json.dumps(request).encode())
                sock.shutdown(socket.SHUT_WR)
                reply = b""
                while chunk := sock.recv(4096):
                    reply += chunk
            answer = json.loads(reply)
        except (OSError, ValueError) as e:
            self.forward_error = f"API: {e}"
            return
        if "error" in answer:
            self.forward_error = f"API: {answer['error']}"


class Slirp4netns(SlirpCompatible):
    name = "slirp4netns"


class Slirpd(SlirpCompatible):
    name = "slirpd"

    def publish_options(self) -> list[str]:
        """--publish=HOST:GUEST when slirpd's --help lists it."""
        try:
            usage = subprocess.run([self.binary, "--help"], capture_output=True, text=True, timeout=10).stdout
        except subprocess.TimeoutExpired:
            return []
        return ([f"--publish={FWD_HOST_PORT}:{FWD_GUEST_PORT}", f"--publish={FWD_HOST_PORT}:{FWD_GUEST_PORT}/udp"]
                if "--publish" in usage else [])


class V6:
    """Mixin for a slirp-compatible tool run with -6: everything over IPv6."""

    options = ["-6"]
    gateway_address = "fd00::2"
    loopback = "::1"

    def guest_address(self) -> str:
        """The guest's fd00::/64 address (configured by -c, or SLAAC's)."""
        return wait_until(self.guest.global_address6, START_TIMEOUT, "the guest's IPv6 address")


class Slirp4netns6(V6, Slirp4netns):
    name = "slirp4netns-v6"


class Slirpd6(V6, Slirpd):
    name = "slirpd-v6"


class Pasta(Daemon):
    """pasta attached to the guest's PID; it maps its gateway address to the
    host's loopback by default (--map-host-loopback) and forwards with -t."""

    name = "pasta"

    def argv(self, guest: Guest, *extra: str, forward: str = f"{FWD_HOST_PORT}:{FWD_GUEST_PORT}",
             udp: str = "none") -> list[str]:
        """pasta's command line on guest, with only one TCP forward (ours, or
        none) and one UDP forward (none unless given)."""
        return [self.binary, *extra, "--config-net", "--mtu", str(self.mtu), "--ipv4-only",
                "-t", forward, "-u", udp, "-T", "none", "-U", "none", str(guest.pid)]

    def start(self):
        """Start in the foreground with only our one TCP and UDP forward;
        ready once the guest has a default route and the host port listens."""
        self._spawn(self.argv(self.guest, "--foreground", udp=f"{FWD_HOST_PORT}:{FWD_GUEST_PORT}"))
        try:
            wait_until(lambda: not self.alive() or listening(os.getpid(), FWD_HOST_PORT), START_TIMEOUT,
                       "pasta's forwarded port")
            if not self.alive():
                raise ToolError(f"exited: {self.stderr_tail()}")
            self.gateway = wait_until(self.guest.default_gateway, START_TIMEOUT, "the guest's default route")
        except ToolError:
            self.stop()
            raise

    def time_to_ready(self) -> float:
        """Seconds from exec until pasta's readiness, in the mode podman uses
        (no --foreground): its parent exits 0 once the namespace is
        configured (no port forwarded: ours is taken).  On a fresh guest of its own; the
        daemon it leaves (its --pid file) is stopped after."""
        guest = Guest(self.guest.user)
        pid_file = self.workdir / f"{self.name}-ready.pid"
        try:
            start = time.monotonic()
            res = subprocess.run(self.argv(guest, "--quiet", "--pid", str(pid_file), forward="none"), capture_output=True,
                                 text=True, timeout=START_TIMEOUT, **as_user(guest.user))
            elapsed = time.monotonic() - start
            if res.returncode != 0:
                raise ToolError(f"exited {res.returncode}: {(res.stderr.strip().splitlines() or [''])[-1]}")
            if not guest.default_gateway():
                raise ToolError("exited 0 before the namespace was configured")
            return elapsed
        except subprocess.TimeoutExpired:
            raise ToolError(f"timeout ({START_TIMEOUT:.0f}s)") from None
        finally:
            try:
                os.kill(int(pid_file.read_text()), signal.SIGTERM)
            except (OSError, ValueError):
                pass
            guest.stop()


class SlirpdPasta(Pasta):
    """slirpd run as pasta (a link named pasta to it), with pasta's argv."""

    name = "slirpd-pasta"


TOOLS = {cls.name: cls for cls in (Slirp4netns, Slirpd, Pasta, SlirpdPasta, Slirp4netns6, Slirpd6)}


@contextlib.contextmanager
def attached(tool, binary: str, mtu: int, user, env: dict | None = None, wrap=None):
    """A fresh guest with tool (a Daemon class) started on it, with env added
    to the daemon's environment; both are stopped and their work directory
    removed on the way out.  wrap(workdir, binary), if given, returns the
    command to run instead of binary (a wrapper that runs it under a tool)."""
    workdir = Path(tempfile.mkdtemp(prefix="slirpd-bench-", dir="/tmp"))
    os.chown(workdir, user.pw_uid, user.pw_gid)
    guest = daemon = None
    try:
        guest = Guest(user)
        if wrap:
            binary = wrap(workdir, binary)
        daemon = tool(binary, guest, mtu, workdir, env)
        daemon.start()
        yield daemon
    finally:
        if daemon:
            daemon.stop()
        if guest:
            guest.stop()
        shutil.rmtree(workdir, ignore_errors=True)

