"""The guest's loopback to the host's (pasta's -T and -U; csrc/splice.c for
TCP, udp.c for UDP): a client in the guest namespace connecting to its own
127.0.0.1:PORT (or [::1]:PORT) reaches a server on the host's loopback.

64 MiB each way arrive intact, a half-close is carried each way (the server
answers after the client's FIN, the client reads the answer to its end), a
reset is carried each way, a refused connect resets the guest's client, and
the daemon's descriptors come back to their count after thousands of
connections.  --host-lo-to-ns-lo takes the same path the other way: a -t
connection from the host's loopback reaches a server on the namespace's own
loopback, from loopback, with data, half-close and resets carried, and
descriptors flat.  UDP: datagrams of 0 and 65,507 bytes each way, two clients
told apart.  pasta mode always runs under its seccomp filter, so splice(2)
and pipe2 run filtered here.
"""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
import threading
import time

import pytest

from lib.harness import wait_for
from lib.pastalib import GuestServer, HostServer, host_tcp

pytestmark = pytest.mark.timeout(180)

SIZE = 64 << 20
NS_PORT, NS_UDP = 9400, 9401


@pytest.fixture
def spliced(pasta_fg):
    """start(tcp_spec, udp_spec): pasta -T/-U in the foreground on the guest."""
    return lambda tcp="none", udp="none": pasta_fg("-t", "none", "-u", "none", "-T", tcp, "-U", udp)


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def recv_all(conn) -> bytes:
    chunks = []
    while chunk := conn.recv(1 << 20):
        chunks.append(chunk)
    return b"".join(chunks)


GUEST_BULK = """
import hashlib, os, socket, sys
family = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
data = os.urandom(int(sys.argv[3]))
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=60)
s.sendall(data)
s.shutdown(socket.SHUT_WR)
got = []
while chunk := s.recv(1 << 20):
    got.append(chunk)
got = b"".join(got)
print(hashlib.sha256(data).hexdigest(), len(got), hashlib.sha256(got).hexdigest())
"""


@pytest.mark.parametrize("addr", ["127.0.0.1", "::1"])
def test_bulk_both_ways_with_half_close(spliced, guest, addr):
    """64 MiB to the host, whose server answers only after the client's FIN
    with 64 MiB of its own and closes: both arrive whole."""
    answer = os.urandom(SIZE)

    def handler(conn):
        got = recv_all(conn)  # to the client's FIN
        conn.sendall(answer)
        return digest(got), len(got)

    server = HostServer(handler, addr)
    try:
        spliced(f"{NS_PORT}:{server.port}")
        sent, n, got = guest.python(GUEST_BULK, addr, str(NS_PORT), str(SIZE), timeout=120).stdout.split()
        assert server.errors == [] and server.results == [(sent, SIZE)]
        assert (int(n), got) == (SIZE, digest(answer))
    finally:
        server.close()


GUEST_RESET = """
import socket, sys
try:
    s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
    s.sendall(b"x")
    print(repr(s.recv(10)))
except OSError as e:
    print(type(e).__name__)
"""


def test_reset_from_host_reaches_guest(spliced, guest):
    def handler(conn):
        conn.recv(1)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")
        return "reset"

    server = HostServer(handler)
    try:
        d = spliced(f"{NS_PORT}:{server.port}")
        assert guest.python(GUEST_RESET, str(NS_PORT)).stdout.strip() == "ConnectionResetError"
        assert d.proc.poll() is None
    finally:
        server.close()


GUEST_ABORT = """
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
s.sendall(b"hello")
s.recv(5)
s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\\1\\0\\0\\0\\0\\0\\0\\0")
s.close()
"""


def test_reset_from_guest_reaches_host(spliced, guest):
    def handler(conn):
        conn.sendall(conn.recv(5))
        try:
            return conn.recv(10)
        except ConnectionResetError:
            return "reset"

    server = HostServer(handler)
    try:
        spliced(f"{NS_PORT}:{server.port}")
        guest.python(GUEST_ABORT, str(NS_PORT))
        wait_for(lambda: server.results or server.errors, 10, "the host's server to see the end")
        assert server.results == ["reset"], server.errors
    finally:
        server.close()


def test_refused_resets_guest(spliced, guest):
    """Nothing listens on the host's port: the guest's client is reset."""
    with socket.socket() as s:  # a port sure to be closed
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    d = spliced(f"{NS_PORT}:{closed}")
    assert guest.python(GUEST_RESET, str(NS_PORT)).stdout.strip() in ("ConnectionResetError", "BrokenPipeError")
    assert d.proc.poll() is None


GUEST_MANY = """
import socket, sys
port, n = int(sys.argv[1]), int(sys.argv[2])
for i in range(n):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"%d" % i)
    s.shutdown(socket.SHUT_WR)
    assert s.recv(100) == b"%d" % i, i
    s.close()
print("done")
"""


def test_descriptors_flat(spliced, guest):
    """10,000 connections one after another: each is six descriptors while
    it lasts (two sockets, two pipes), none is left after."""
    server = HostServer(lambda conn: conn.sendall(recv_all(conn)))
    try:
        d = spliced(f"{NS_PORT}:{server.port}")
        fds = lambda: len(os.listdir(f"/proc/{d.proc.pid}/fd"))  # noqa: E731
        # one connection first: the daemon is serving (its setup's descriptors closed)
        assert guest.python(GUEST_MANY, str(NS_PORT), "1").stdout.strip() == "done"
        before = fds()
        assert guest.python(GUEST_MANY, str(NS_PORT), "10000", timeout=150).stdout.strip() == "done"
        deadline = time.monotonic() + 10
        while fds() != before and time.monotonic() < deadline:
            time.sleep(0.05)
        if fds() != before:
            left = sorted(os.readlink(f"/proc/{d.proc.pid}/fd/{fd}") for fd in os.listdir(f"/proc/{d.proc.pid}/fd"))
            pytest.fail(f"descriptors: {before} before, now {left}; counters {d.counters()}")
    finally:
        server.close()


GUEST_UDP = """
import socket, sys
port = int(sys.argv[1])
a, b = (socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(2))
for s in (a, b):
    s.settimeout(5)
out = []
for s, data in ((a, b""), (b, b"second-client"), (a, b"x" * 65507)):
    s.sendto(data, ("127.0.0.1", port))
    got, peer = s.recvfrom(70000)
    out.append(f"{len(got)}:{got[:13].decode()}:{peer[1] == port}")
print(" ".join(out))
"""


def test_udp_both_ways(spliced, guest):
    """-U: an empty datagram, one of 65,507 bytes (the largest), from two
    clients; each answer goes back to its client, from the port it sent to."""
    host = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    host.bind(("127.0.0.1", 0))
    peers = []

    def serve():
        for _ in range(3):
            data, peer = host.recvfrom(70000)
            peers.append(peer)
            host.sendto(data, peer)

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        spliced(udp=f"{NS_UDP}:{host.getsockname()[1]}")
        res = guest.python(GUEST_UDP, str(NS_UDP)).stdout.split()
        assert res == ["0::True", "13:second-client:True", "65507:xxxxxxxxxxxxx:True"]
        assert len(set(peers)) == 2 and all(p[0] == "127.0.0.1" for p in peers)
    finally:
        host.close()


# --- pasta's --host-lo-to-ns-lo: the host's loopback to the namespace's (csrc/nslo.c)

HOST_PORT = 19400  # the -t port on the host; the namespace's server is on NS_PORT


@pytest.fixture
def ns_lo(pasta_fg):
    """start(*options): pasta -t HOST_PORT:NS_PORT --host-lo-to-ns-lo in the
    foreground on the guest, no other forward."""
    return lambda *options: pasta_fg("-t", f"{HOST_PORT}:{NS_PORT}", "-u", "none", "-T", "none", "-U", "none",
                                     *options)


@pytest.mark.parametrize("addr", ["127.0.0.1", "::1"])
def test_host_lo_to_ns_lo_reaches_ns_loopback(ns_lo, guest, addr):
    """A server bound to the namespace's loopback only answers a client of
    the host's loopback, and sees it come from loopback: the request after
    the client's FIN (half-close), the answer to the client's end."""
    d = ns_lo("--host-lo-to-ns-lo")  # first: it brings the namespace's loopback (::1) up
    server = GuestServer(guest, addr, "tcp", NS_PORT)
    try:
        assert host_tcp(addr, HOST_PORT, b"x" * 100000) == f"{NS_PORT} {addr} ".encode() + b"x" * 100000
        c = d.counters()
        assert (c["ns_lo_dialled"], c["drop_ns_lo_pool_empty"], c["fwd_tcp_accepted"]) == (1, 0, 1), c
    finally:
        server.close()


@pytest.mark.parametrize("options", [(), ("--host-lo-to-ns-lo", "--no-splice")])
def test_without_host_lo_to_ns_lo_ns_loopback_unreached(ns_lo, guest, options):
    """Without the option (or with --no-splice, as in pasta), as before: the
    connection goes through the TAP to the guest's address, where a server
    on its loopback does not listen."""
    d = ns_lo(*options)
    server = GuestServer(guest, "127.0.0.1", "tcp", NS_PORT)
    try:
        with pytest.raises(OSError):
            host_tcp("127.0.0.1", HOST_PORT, timeout=5)
        assert d.counters()["ns_lo_dialled"] == 0
    finally:
        server.close()
    server = GuestServer(guest, "0.0.0.0", "tcp", NS_PORT)  # on its address it does: through the TAP
    try:
        assert host_tcp("127.0.0.1", HOST_PORT).endswith(b" hello")
        c = d.counters()
        assert (c["ns_lo_dialled"], c["fwd_tcp_accepted"]) == (0, 2), c
    finally:
        server.close()


GUEST_LO_ABORT = """
import socket, sys
s = socket.create_server(("127.0.0.1", int(sys.argv[1])))
print("ready", flush=True)
c, _ = s.accept()
c.recv(5)
c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\\1\\0\\0\\0\\0\\0\\0\\0")
c.close()
"""


def test_host_lo_to_ns_lo_resets(ns_lo, guest):
    """A reset is carried: nothing listening on the namespace's loopback
    port resets the host's client, and so does a server there aborting."""
    d = ns_lo("--host-lo-to-ns-lo")
    with pytest.raises((ConnectionResetError, BrokenPipeError)):
        host_tcp("127.0.0.1", HOST_PORT)
    assert d.counters()["splice_conn_failed"] == 1
    proc = guest.popen([sys.executable, "-c", GUEST_LO_ABORT, str(NS_PORT)], stdout=subprocess.PIPE)
    try:
        assert proc.stdout.readline() == "ready\n"
        with socket.create_connection(("127.0.0.1", HOST_PORT), timeout=10) as s:
            s.sendall(b"hello")
            with pytest.raises(ConnectionResetError):
                s.recv(10)
        assert proc.wait(timeout=10) == 0
        assert d.proc.poll() is None
    finally:
        proc.kill()
        proc.wait()


def test_host_lo_to_ns_lo_descriptors_flat(ns_lo, guest):
    """2,000 connections one after another, each a socket of the pool: the
    daemon's descriptors come back to their count (the pool refilled to the
    same level), and no connection found the pool empty."""
    d = ns_lo("--host-lo-to-ns-lo")
    server = GuestServer(guest, "127.0.0.1", "tcp", NS_PORT)
    try:
        fds = lambda: len(os.listdir(f"/proc/{d.proc.pid}/fd"))  # noqa: E731
        assert host_tcp("127.0.0.1", HOST_PORT) == f"{NS_PORT} 127.0.0.1 hello".encode()
        before = fds()
        for i in range(2000):
            assert host_tcp("127.0.0.1", HOST_PORT, b"%d" % i) == f"{NS_PORT} 127.0.0.1 {i}".encode()
        wait_for(lambda: fds() <= before, 10, "the descriptors to come back")
        c = d.counters()
        assert (c["ns_lo_dialled"], c["drop_ns_lo_pool_empty"]) == (2001, 0), c
        assert before - fds() < 16, "the pool refilled"  # refilled once at most half full: 32 at most
    finally:
        server.close()
