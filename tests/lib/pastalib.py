"""Running slirpd as pasta the way its clients do, for the pasta tests.

- pasta_link(): a directory holding `pasta`, a symbolic link to the slirpd
  under test (what a user puts in podman's helper_binaries_dir).
- Pasta.start(): pasta's argv run as podman runs it, as the plain user inside
  the guest's user and mount namespaces (podman's rootless namespaces),
  stdout and stderr read to EOF (podman's CombinedOutput: it returns only
  once the daemon has closed them), with pasta's exit status.  The daemon
  left running is found among the test session's processes; stop() ends it.
- Guest helpers: ip -j output, a TCP echo client and server and a UDP echo,
  run inside the guest's network namespace.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from lib.harness import SLIRPD, as_user, session_processes, wait_for

HOST4 = "198.51.100.1"  # the sandbox's address (tests/sandbox.sh), copied into the guest by pasta
HOST6 = "2001:db8::1"
GATEWAY4 = "198.51.100.254"
GATEWAY6 = "2001:db8::fe"
DNS_FORWARD = "169.254.1.1"  # podman's --dns-forward and --map-guest-addr
MAP_GUEST = "169.254.1.2"
START_TIMEOUT = 30.0
GONE_TIMEOUT = 5.0  # podman's own test gives pasta 5 s to notice its namespace is gone


def podman_argv(netns: str, *specs: str, extra=(), v50=False, v51=False) -> list[str]:
    """podman's pasta argv (containers/common libnetwork/pasta, 5.3 and
    later; v51: 5.1 and 5.2; v50: 5.0), with -t/-u specs as podman writes
    them and extra options from --network pasta:A,B or the rootless netns."""
    argv = ["--config-net", *extra, *specs]
    have = {s for s in specs if s in ("-t", "-u", "-T", "-U")} | {e for e in extra if e in ("-t", "-u", "-T", "-U")}
    if not v50:
        argv += ["--dns-forward", "169.254.0.1" if v51 else DNS_FORWARD]
    argv += [w for flag in ("-t", "-u", "-T", "-U") if flag not in have for w in (flag, "none")]
    argv += ["--no-map-gw"]
    if v50:
        argv += ["--dns", "none"]
    argv += ["--quiet", "--netns", netns]
    if not (v50 or v51):
        argv += ["--map-guest-addr", MAP_GUEST]
    return argv


def rootlesskit_argv(pid: int, ports: str = "auto") -> list[str]:
    """rootlesskit 2.0.2's pasta argv (captured: ../shared/clients/README.md),
    with its implicit port driver (auto) or none."""
    return ["--foreground", "--stderr", "--ns-ifname=tap0", "--mtu=65520", "--no-dhcp", "--no-ra",
            "--address=10.0.2.100", "--netmask=24", "--gateway=10.0.2.2", "--dns-forward=10.0.2.3", "--no-map-gw",
            "--ipv4-only", f"--tcp-ports={ports}", f"--udp-ports={ports}", str(pid)]


def pasta_link(directory: Path) -> str:
    """A `pasta` link to the slirpd under test in directory (made readable
    for the plain user). Return: its path."""
    directory.mkdir(exist_ok=True)
    os.chmod(directory, 0o755)
    link = directory / "pasta"
    if not link.exists():
        link.symlink_to(SLIRPD)
    return str(link)


def bind_netns(guest, uid: int) -> str:
    """podman's namespace file, /run/user/UID/netns/NAME, in the guest's mount
    namespace (a tmpfs over /run/user there), bound to its network namespace."""
    path = f"/run/user/{uid}/netns/netns-slirpd-pasta"
    guest.run(f"mount -t tmpfs tmpfs /run/user && mkdir -p {os.path.dirname(path)} && touch {path}"
              f" && mount --bind /proc/self/ns/net {path}")
    return path


class Pasta:
    """pasta as its clients run it (see the module doc)."""

    def __init__(self, guest, link: str):
        self.guest = guest
        self.link = link
        self.user = guest.user
        self.daemons: list[int] = []
        self.proc: subprocess.Popen | None = None

    def _enter(self) -> list[str]:
        return ["nsenter", f"--target={self.guest.pid}", "--user", "--mount", "--preserve-credentials", "--"]

    def start(self, argv: list[str], timeout: float = START_TIMEOUT, in_guest: bool = True) -> subprocess.CompletedProcess:
        """Run pasta with argv to its exit, podman's way: output read to EOF.
        Return: the result; the daemon it left is in self.daemons."""
        before = set(session_processes(self.user))
        cmd = [*(self._enter() if in_guest else []), self.link, *argv]
        res = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout,
                             **as_user(self.user))
        self.daemons += [p for p in session_processes(self.user) if p not in before and self._is_pasta(p)]
        return res

    def start_foreground(self, argv: list[str], ready_in: Path | None = None) -> subprocess.Popen:
        """rootlesskit's way: pasta stays in the foreground, output to a pipe;
        with ready_in, --pid ready_in is added and awaited (written once set up)."""
        if ready_in is not None:
            argv = ["--pid", str(ready_in), *argv]
        self.proc = subprocess.Popen([self.link, *argv], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, **as_user(self.user))
        if ready_in is not None:
            wait_for(lambda: self.proc.poll() is not None or (ready_in.exists() and ready_in.read_text()), 20,
                     "pasta to be set up")
            if self.proc.poll() is not None:
                pytest.fail(f"pasta exited {self.proc.returncode}: {self.proc.stdout.read()}")
        return self.proc

    def counters(self) -> dict:
        """The foreground daemon's counters: SIGUSR1 writes them as one line
        ("counters {...}") to its output, which the test reads."""
        self.proc.send_signal(signal.SIGUSR1)
        for line in self.proc.stdout:
            if line.startswith("counters "):
                return json.loads(line[len("counters "):])
        return {}

    @staticmethod
    def _is_pasta(pid: int) -> bool:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                return b"pasta" in f.read()
        except OSError:
            return False

    def alive(self) -> list[int]:
        """The daemons still running (not zombies)."""
        return [p for p in self.daemons if p in session_processes(self.user)]

    def wait_gone(self, timeout: float) -> None:
        wait_for(lambda: not self.alive(), timeout, "the pasta daemon to exit", interval=0.05)

    def stop(self) -> None:
        """End what is left, whatever happened."""
        for pid in self.alive():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
        if self.proc is not None:
            self.proc.wait(timeout=10)


def ip_json(guest, *args: str):
    """`ip -json ARGS` in the guest's network namespace."""
    return json.loads(guest.run(["ip", "-json", *args]).stdout or "[]")


def guest_link(guest, name: str) -> dict:
    (link,) = [entry for entry in ip_json(guest, "addr", "show") if entry["ifname"] == name]
    return link


def addresses(link: dict, family: str) -> list[str]:
    """A link's addresses of family ("inet", "inet6") as ADDR/PREFIX, link-local ones left out."""
    return [f"{a['local']}/{a['prefixlen']}" for a in link["addr_info"]
            if a["family"] == family and a.get("scope") != "link"]


def default_gateways(guest, family: str = "-4") -> list[str]:
    return [r["gateway"] for r in ip_json(guest, family, "route", "show") if r["dst"] == "default"]


GUEST_CONNECT = """
import socket, sys
host, port, data, timeout = sys.argv[1], int(sys.argv[2]), sys.argv[3].encode(), float(sys.argv[4])
try:
    s = socket.create_connection((host, port), timeout=timeout)
    s.sendall(data)
    s.shutdown(socket.SHUT_WR)
    got = b""
    while chunk := s.recv(65536):
        got += chunk
    print(got.decode())
except OSError as e:
    print(type(e).__name__)
"""


def guest_connect(guest, host: str, port: int, data: str = "hello", timeout: float = 10) -> str:
    """Connect from the guest, send data, half-close. Return: what came
    back, or the name of the exception that ended it (TimeoutError...)."""
    return guest.python(GUEST_CONNECT, host, str(port), data, str(timeout)).stdout.strip()


GUEST_SERVER = """
import socket, sys
family = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
proto, ports = sys.argv[2], [int(p) for p in sys.argv[3:]]
socks = []
for port in ports:
    s = socket.socket(family, socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((sys.argv[1], port))
    if proto == "tcp":
        s.listen(16)
    socks.append(s)
print("ready", flush=True)
import selectors
sel = selectors.DefaultSelector()
for s in socks:
    sel.register(s, selectors.EVENT_READ)
while True:
    for key, _ in sel.select():
        s = key.fileobj
        if proto == "udp":
            data, peer = s.recvfrom(65536)
            s.sendto(f"{s.getsockname()[1]} {peer[0]} ".encode() + data, peer)
            continue
        c, peer = s.accept()
        data = b""
        while chunk := c.recv(65536):
            data += chunk
        c.sendall(f"{s.getsockname()[1]} {peer[0]} ".encode() + data)
        c.close()
"""


class GuestServer:
    """Echo servers in the guest on addr, one per port: a reply is "PORT
    PEER DATA" (the port it came in on, the client as the guest sees it)."""

    def __init__(self, guest, addr: str, proto: str, *ports: int):
        enter = ["nsenter", f"--target={guest.pid}", "--user", "--net", "--mount", "--preserve-credentials", "--"]
        self.proc = subprocess.Popen([*enter, sys.executable, "-c", GUEST_SERVER, addr, proto, *map(str, ports)],
                                     stdout=subprocess.PIPE, text=True, **as_user(guest.user))
        if self.proc.stdout.readline() != "ready\n":
            self.close()
            pytest.fail("the guest's server did not start")

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=10)


def host_tcp(addr: str, port: int, data: bytes = b"hello", timeout: float = 10) -> bytes:
    """Connect from the host, send data, half-close, return what came back."""
    family = socket.AF_INET6 if ":" in addr else socket.AF_INET
    with socket.socket(family) as s:
        s.settimeout(timeout)
        s.connect((addr, port))
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        got = b""
        while chunk := s.recv(65536):
            got += chunk
    return got


def reachable(addr: str, port: int) -> bytes | None:
    """host_tcp()'s answer, or None if nothing answers (yet)."""
    try:
        return host_tcp(addr, port, timeout=3)
    except OSError:
        return None


def closed(addr: str, port: int) -> bool:
    """Whether nothing listens on the host's addr:port (a forward whose guest
    port is closed resets instead)."""
    try:
        socket.create_connection((addr, port), timeout=2).close()
    except ConnectionRefusedError:
        return True
    except OSError:
        pass
    return False


def host_udp(addr: str, port: int, data: bytes = b"hello", timeout: float = 5) -> bytes:
    """Send one datagram from the host, return the answer."""
    family = socket.AF_INET6 if ":" in addr else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(data, (addr, port))
        return s.recvfrom(65536)[0]


class HostEcho:
    """A TCP server on the host (the sandbox) on addr: answers "PEER DATA";
    peers: the clients so far.  A context manager."""

    def __init__(self, addr: str = "0.0.0.0"):
        self.sock = socket.create_server((addr, 0), family=socket.AF_INET6 if ":" in addr else socket.AF_INET)
        self.port = self.sock.getsockname()[1]
        self.peers: list[str] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def __enter__(self) -> "HostEcho":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _serve(self) -> None:
        while True:
            try:
                conn, peer = self.sock.accept()
            except OSError:
                return
            self.peers.append(peer[0])
            with conn:
                data = b""
                conn.settimeout(10)
                try:
                    while chunk := conn.recv(65536):
                        data += chunk
                    conn.sendall(peer[0].encode() + b" " + data)
                except OSError:
                    pass

    def close(self) -> None:
        self.sock.close()


class HostServer:
    """A TCP server on the host's addr:port (0: any free one), one connection
    at a time, handler(conn); what it returns goes to results."""

    def __init__(self, handler, addr="127.0.0.1", port=0):
        self.sock = socket.create_server((addr, port), family=socket.AF_INET6 if ":" in addr else socket.AF_INET)
        self.port = self.sock.getsockname()[1]
        self.results, self.errors = [], []
        self.handler = handler
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            try:
                with conn:
                    self.results.append(self.handler(conn))
            except OSError as e:
                self.errors.append(e)

    def close(self):
        """Close now (a thread blocked in accept() would keep it listening)."""
        self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
