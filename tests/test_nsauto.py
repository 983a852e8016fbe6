"""pasta's -T auto / -U auto, its default (slirpd/nsautofwd.py): a server
bound on the host's loopback after slirpd started becomes reachable from
inside the namespace at the same 127.0.0.1:PORT (and [::1]:PORT) within a
few seconds, bytes intact both ways, and stops being so once it is closed;
TCP and UDP.  The ports -t/-u forward the other way are left alone, -T none
turns it off, and a helper that vanished stops it without ending the daemon.
pasta mode always runs under its sandbox and seccomp filter, so all of it
runs hardened here.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import time

import pytest

from lib.harness import wait_for
from lib.pastalib import HostServer

pytestmark = pytest.mark.timeout(120)

PORT_TCP, PORT_UDP, PORT_FIXED, PORT_LATE = 18410, 18411, 18412, 18413
FOLLOW_TIMEOUT = 5  # seconds: scans once a second
SIZE = 4 << 20


def reversed_echo(conn):
    """A HostServer handler: what the client sent, to its FIN, sent back reversed."""
    data = b""
    while chunk := conn.recv(1 << 20):
        data += chunk
    conn.sendall(data[::-1])


def host_tcp_echo(addr: str, port: int) -> HostServer:
    """A TCP server on the host's addr:port answering reversed_echo()."""
    return HostServer(reversed_echo, addr, port)


class HostUdpEcho:
    """A UDP socket on the host's addr:port sending each datagram back reversed."""

    def __init__(self, addr: str, port: int):
        self.sock = socket.socket(socket.AF_INET6 if ":" in addr else socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((addr, port))
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                data, peer = self.sock.recvfrom(65536)
                if peer is None:  # woken by close()
                    return
                self.sock.sendto(data[::-1], peer)
            except OSError:
                return

    def close(self):
        """Close now: a thread blocked on the socket keeps it open until woken."""
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


GUEST_TCP = """
import hashlib, os, socket, sys
family = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
data = os.urandom(int(sys.argv[3]))
try:
    s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10)
except OSError as e:
    print(type(e).__name__)
    sys.exit()
s.sendall(data)
s.shutdown(socket.SHUT_WR)
got = b""
while chunk := s.recv(1 << 20):
    got += chunk
print("intact" if got == data[::-1] else f"corrupt {len(got)}")
"""

GUEST_UDP = """
import os, socket, sys
family = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
s = socket.socket(family, socket.SOCK_DGRAM)
s.settimeout(1)
data = os.urandom(int(sys.argv[3]))
s.sendto(data, (sys.argv[1], int(sys.argv[2])))
try:
    got = s.recv(65536)
    print("intact" if got == data[::-1] else f"corrupt {len(got)}")
except OSError as e:
    print(type(e).__name__)
"""

GUEST_BINDABLE = """
import socket, sys
family = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
s = socket.socket(family, socket.SOCK_STREAM if sys.argv[2] == "tcp" else socket.SOCK_DGRAM)
try:
    s.bind((sys.argv[1], int(sys.argv[3])))
    print("free")
except OSError as e:
    print(type(e).__name__)
"""


def guest_tcp(guest, addr: str, port: int, size: int = SIZE) -> str:
    return guest.python(GUEST_TCP, addr, str(port), str(size)).stdout.strip()


def guest_udp(guest, addr: str, port: int, size: int = 1400) -> str:
    return guest.python(GUEST_UDP, addr, str(port), str(size)).stdout.strip()


def guest_bindable(guest, addr: str, proto: str, port: int) -> str:
    return guest.python(GUEST_BINDABLE, addr, proto, str(port)).stdout.strip()


@pytest.fixture
def pasta_auto(pasta_fg):
    """pasta in the foreground with -t none -u none and extra options; no
    -T or -U unless given: pasta's default, auto."""
    return lambda *options: pasta_fg("-t", "none", "-u", "none", *options)


@pytest.mark.parametrize("addr", ["127.0.0.1", "::1"])
def test_tcp_follows_host_server(pasta_auto, guest, addr):
    """A host server started after slirpd is reached from the namespace's
    own loopback, 4 MiB each way intact, and is gone once it is closed."""
    d = pasta_auto()
    assert guest_tcp(guest, addr, PORT_TCP, 1) == "ConnectionRefusedError"
    server = host_tcp_echo(addr, PORT_TCP)
    try:
        wait_for(lambda: guest_tcp(guest, addr, PORT_TCP, 1) == "intact", FOLLOW_TIMEOUT, "the port to follow")
        assert guest_tcp(guest, addr, PORT_TCP) == "intact"
    finally:
        server.close()
    wait_for(lambda: guest_bindable(guest, addr, "tcp", PORT_TCP) == "free", FOLLOW_TIMEOUT,
             "the namespace's port to close")
    assert guest_tcp(guest, addr, PORT_TCP, 1) == "ConnectionRefusedError"
    assert d.proc.poll() is None


@pytest.mark.parametrize("addr", ["127.0.0.1", "::1"])
def test_udp_follows_host_socket(pasta_auto, guest, addr):
    """A UDP socket bound on the host later: datagrams from the namespace's
    loopback reach it and its answers come back, until it is closed."""
    d = pasta_auto()
    server = HostUdpEcho(addr, PORT_UDP)
    try:
        wait_for(lambda: guest_udp(guest, addr, PORT_UDP) == "intact", FOLLOW_TIMEOUT, "the port to follow")
        assert guest_udp(guest, addr, PORT_UDP, 0) == "intact"
        assert guest_udp(guest, addr, PORT_UDP, 65000) == "intact"
    finally:
        server.close()
    wait_for(lambda: guest_bindable(guest, addr, "udp", PORT_UDP) == "free", FOLLOW_TIMEOUT,
             "the namespace's port to close")
    assert d.proc.poll() is None


def test_other_direction_left_alone(pasta_fg, guest):
    """-t PORT and -u PORT listen on the host: -T/-U auto do not mirror
    them back into the namespace, where a server may bind them; the other
    ports still follow."""
    d = pasta_fg("-t", str(PORT_FIXED), "-u", str(PORT_FIXED))
    server = host_tcp_echo("127.0.0.1", PORT_TCP)
    try:
        wait_for(lambda: guest_tcp(guest, "127.0.0.1", PORT_TCP, 1) == "intact", FOLLOW_TIMEOUT,
                 "the port to follow")
        for proto in ("tcp", "udp"):
            assert guest_bindable(guest, "127.0.0.1", proto, PORT_FIXED) == "free"
    finally:
        server.close()
    assert d.proc.poll() is None


def test_none_forwards_nothing(pasta_auto, guest):
    """-T none -U none (podman's): nothing follows the host's ports."""
    pasta_auto("-T", "none", "-U", "none")
    tcp, udp = host_tcp_echo("127.0.0.1", PORT_TCP), HostUdpEcho("127.0.0.1", PORT_UDP)
    try:
        time.sleep(2.5)  # two scans, had it been on
        assert guest_tcp(guest, "127.0.0.1", PORT_TCP, 1) == "ConnectionRefusedError"
        assert guest_bindable(guest, "127.0.0.1", "udp", PORT_UDP) == "free"
    finally:
        tcp.close()
        udp.close()


def _binder_pid(daemon_pid: int) -> int:
    """The daemon's child named slirpd-nsbind (nsbinder.py's helper)."""
    with open(f"/proc/{daemon_pid}/task/{daemon_pid}/children") as f:
        children = [int(p) for p in f.read().split()]
    for pid in children:
        with open(f"/proc/{pid}/comm") as f:
            if f.read().strip() == "slirpd-nsbind":
                return pid
    pytest.fail(f"no slirpd-nsbind among the daemon's children {children}")


def test_helper_gone_stops_auto_only(pasta_auto, guest):
    """The helper killed: a port that follows now is logged once, automatic
    forwarding stops, the daemon serves on (a port followed before still
    carries data)."""
    d = pasta_auto()
    early = host_tcp_echo("127.0.0.1", PORT_TCP)
    try:
        wait_for(lambda: guest_tcp(guest, "127.0.0.1", PORT_TCP, 1) == "intact", FOLLOW_TIMEOUT,
                 "the port to follow")
        binder = _binder_pid(d.proc.pid)
        os.kill(binder, signal.SIGKILL)
        late = [host_tcp_echo("127.0.0.1", PORT_LATE + i) for i in range(3)]
        try:
            time.sleep(2.5)  # two scans
            assert guest_tcp(guest, "127.0.0.1", PORT_LATE, 1) == "ConnectionRefusedError"
            assert guest_tcp(guest, "127.0.0.1", PORT_TCP) == "intact"
            assert d.proc.poll() is None
        finally:
            for s in late:
                s.close()
    finally:
        early.close()
    d.proc.terminate()
    out = d.proc.stdout.read()
    assert d.proc.wait(timeout=10) == 0, out
    assert out.count("automatic forwarding stopped") == 1, out
