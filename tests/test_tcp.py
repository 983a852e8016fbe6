"""TCP through slirpd: the guest connects to servers on the sandbox's 127.0.0.1
(10.0.2.2 from the guest), with real sockets on both ends.

Servers run in threads of the test process (lib.tcputil.Server); the guest side is
a Python script or a tool run inside the guest namespace.
"""

from __future__ import annotations

import errno
import hashlib
import http.server
import os
import re
import socket
import subprocess
import threading
import time

import pytest

from lib.harness import wait_for
from lib.tcputil import CHUNK, GUEST_RECV, GUEST_SEND, Server, echo, free_port, linger0, sink, source

MIB = 1 << 20


def tcp_counters(d) -> dict:
    return {k: v for k, v in d.counters().items() if "tcp" in k or k.startswith("flows")}


def flows_settled(d) -> bool:
    c = d.counters()
    return c["flows_created"] == c["flows_closed"]


# --- bulk transfers -----------------------------------------------------------

@pytest.mark.timeout(120)
def test_guest_to_host_256mib(net_guest):
    with Server(sink) as srv:
        out = net_guest.python(GUEST_SEND, str(srv.port), str(256 * MIB), timeout=90).stdout.split()
        srv.wait(1)
        assert not srv.errors
        assert srv.results[0] == (256 * MIB, out[1])
    wait_for(lambda: flows_settled(net_guest.slirpd), 5, "the flow to close")


def slow_sink(conn) -> tuple[int, str, list[float]]:
    """sink(), pausing after each read as a busy application would: (bytes,
    sha256, the pauses the data itself made, in seconds, over 0.1 s)."""
    h, n, stalls = hashlib.sha256(), 0, []
    while True:
        before = time.monotonic()
        d = conn.recv(CHUNK)
        waited = time.monotonic() - before
        if not d:
            return n, h.hexdigest(), stalls
        if n and waited > 0.1:
            stalls.append(round(waited, 3))
        h.update(d)
        n += len(d)
        time.sleep(0.0005)


@pytest.mark.timeout(120)
def test_slow_host_reader_gets_window_updates(net_guest):
    """A host reader slower than the guest keeps the socket nearly full: the
    window closes and must reopen as the socket drains.  A window update that
    is not sent leaves the guest waiting for its zero-window probe (200 ms,
    then more): with 64 KiB segments from the guest (TSO) that once happened
    dozens of times per 64 MiB."""
    with Server(slow_sink) as srv:
        out = net_guest.python(GUEST_SEND, str(srv.port), str(64 * MIB), timeout=90).stdout.split()
        srv.wait(1)
        assert not srv.errors
        n, sha, stalls = srv.results[0]
        assert (n, sha) == (64 * MIB, out[1])
    assert net_guest.slirpd.counters()["vnet_gso_in"] > 0
    # a busy machine may pause the reader once or twice; a missed window
    # update pauses it every few MiB
    assert len(stalls) <= 2, stalls
    wait_for(lambda: flows_settled(net_guest.slirpd), 5, "the flow to close")


@pytest.mark.timeout(120)
def test_host_to_guest_256mib(net_guest):
    with Server(source(256 * MIB)) as srv:
        out = net_guest.python(GUEST_RECV, str(srv.port), timeout=90).stdout.split()
        srv.wait(1)
        assert not srv.errors
        assert srv.results[0] == (int(out[0]), out[1])
        assert int(out[0]) == 256 * MIB
    wait_for(lambda: flows_settled(net_guest.slirpd), 5, "the flow to close")


@pytest.mark.timeout(120)
def test_jumbo_mtu_both_ways(guest, start_slirpd):
    d = start_slirpd("--configure", "--mtu=65520", str(guest.pid))
    with Server(sink) as srv:
        out = guest.python(GUEST_SEND, str(srv.port), str(64 * MIB)).stdout.split()
        srv.wait(1)
        assert srv.results[0] == (64 * MIB, out[1])
    with Server(source(64 * MIB)) as srv:
        out = guest.python(GUEST_RECV, str(srv.port)).stdout.split()
        srv.wait(1)
        assert srv.results[0] == (int(out[0]), out[1])
    assert d.counters()["tcp_conn_opened"] == 2


@pytest.mark.timeout(60)
def test_curl_large_file(net_guest, tmp_path):
    body = os.urandom(48 * MIB)
    (tmp_path / "big.bin").write_bytes(body)

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw):
            super().__init__(*a, directory=str(tmp_path), **kw)

        def log_message(self, *a):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        # the sanitizer runtime of `make test-asan` is for the daemon: curl
        # hangs with it preloaded
        r = net_guest.run(f"env -u LD_PRELOAD curl -sS --max-time 40 "
                          f"http://10.0.2.2:{httpd.server_port}/big.bin | sha256sum", timeout=50)
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert r.stdout.split()[0] == hashlib.sha256(body).hexdigest()


CONCURRENT = r"""
import asyncio, hashlib, os, sys
port, n, size = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])

async def one(i):
    data = os.urandom(size)
    r, w = await asyncio.open_connection("10.0.2.2", port)
    async def send():
        for off in range(0, size, 65536):
            w.write(data[off:off + 65536])
            await w.drain()
        w.write_eof()
    t = asyncio.create_task(send())
    got = await r.readexactly(size)
    await t
    assert await r.read() == b""
    w.close()
    return got == data

async def main():
    res = await asyncio.gather(*(one(i) for i in range(n)))
    print(sum(res))

asyncio.run(main())
"""


@pytest.mark.timeout(120)
def test_200_concurrent_connections(net_guest):
    with Server(echo) as srv:
        r = net_guest.python(CONCURRENT, str(srv.port), "200", str(MIB), timeout=100)
        assert r.stdout.split()[-1] == "200"
        srv.wait(200)
        assert not srv.errors
        assert srv.results == [MIB] * 200
    wait_for(lambda: flows_settled(net_guest.slirpd), 10, "all flows to close")


# --- half-close, refusal, resets --------------------------------------------

HALF_CLOSE_GUEST_FIRST = r"""
import socket, sys
s = socket.create_connection(("10.0.2.2", int(sys.argv[1])), timeout=20)
s.sendall(b"x" * 300000)
s.shutdown(socket.SHUT_WR)
got = b""
while True:
    d = s.recv(65536)
    if not d:
        break
    got += d
print(got.decode())
"""


def test_half_close_from_guest(net_guest):
    def handler(conn):
        n, digest = sink(conn)      # EOF from the guest...
        time.sleep(0.3)             # ...and the other direction still works later
        conn.sendall(f"{n} {digest}".encode())
        return n

    with Server(handler) as srv:
        out = net_guest.python(HALF_CLOSE_GUEST_FIRST, str(srv.port)).stdout.split()
        srv.wait(1)
    assert out == ["300000", hashlib.sha256(b"x" * 300000).hexdigest()]


HALF_CLOSE_HOST_FIRST = r"""
import socket, sys, time
s = socket.create_connection(("10.0.2.2", int(sys.argv[1])), timeout=20)
got = b""
while True:
    d = s.recv(65536)
    if not d:
        break
    got += d
time.sleep(0.3)
s.sendall(b"after eof " * 50000)
s.close()
print(len(got))
"""


def test_half_close_from_host(net_guest):
    def handler(conn):
        conn.sendall(b"y" * 200000)
        conn.shutdown(socket.SHUT_WR)
        return sink(conn)

    with Server(handler) as srv:
        out = net_guest.python(HALF_CLOSE_HOST_FIRST, str(srv.port)).stdout.split()
        srv.wait(1)
        assert not srv.errors
        assert srv.results[0] == (500000, hashlib.sha256(b"after eof " * 50000).hexdigest())
    assert out == ["200000"]
    wait_for(lambda: flows_settled(net_guest.slirpd), 5, "the flow to close")


CONNECT_EXPECT_FAIL = r"""
import socket, sys, time
t = time.monotonic()
try:
    socket.create_connection(("10.0.2.2", int(sys.argv[1])), timeout=10)
    print("connected")
except ConnectionRefusedError:
    print("refused", time.monotonic() - t)
except OSError as e:
    print("error", e, time.monotonic() - t)
"""


def test_connection_refused(net_guest):
    out = net_guest.python(CONNECT_EXPECT_FAIL, str(free_port())).stdout.split()
    assert out[0] == "refused" and float(out[1]) < 1.0
    c = net_guest.slirpd.counters()
    assert c["tcp_conn_failed"] == 1 and c["tcp_rst_sent"] >= 1
    wait_for(lambda: flows_settled(net_guest.slirpd), 5, "the flow to close")


def test_disable_host_loopback(guest, start_slirpd):
    d = start_slirpd("--configure", "--disable-host-loopback", str(guest.pid))
    with Server(sink) as srv:
        out = guest.python(CONNECT_EXPECT_FAIL, str(srv.port)).stdout.split()
        assert out[0] == "refused" and float(out[1]) < 1.0
        time.sleep(0.1)
        assert not srv.results and not srv.errors
    c = d.counters()
    assert c["drop_unreachable"] >= 1 and c["flows_created"] == 0


UNREACH = r"""
import socket, sys, time
t = time.monotonic()
try:
    socket.create_connection((sys.argv[1], 80), timeout=10)
    print("connected")
except OSError as e:
    print(e.errno, time.monotonic() - t)
"""


def test_host_unreachable_is_icmp(net_guest):
    # an unreachable route in the sandbox: connect() fails at once, no packet
    # leaves; the guest should get EHOSTUNREACH from an ICMP error, not a RST
    subprocess.run(["ip", "route", "add", "unreachable", "203.0.113.0/24"], check=True)
    try:
        out = net_guest.python(UNREACH, "203.0.113.7").stdout.split()
    finally:
        subprocess.run(["ip", "route", "del", "unreachable", "203.0.113.0/24"], check=True)
    assert int(out[0]) == errno.EHOSTUNREACH and float(out[1]) < 1.0
    c = net_guest.slirpd.counters()
    assert c["tcp_conn_failed"] == 1 and c["icmp_unreach_sent"] == 1 and c["tcp_rst_sent"] == 0


HOST_RESET = r"""
import socket, sys
s = socket.create_connection(("10.0.2.2", int(sys.argv[1])), timeout=20)
n = 0
try:
    while True:
        d = s.recv(65536)
        if not d:
            print("eof", n)
            break
        n += len(d)
except ConnectionResetError:
    print("reset", n)
"""


def test_host_reset_mid_stream(net_guest):
    def handler(conn):
        conn.sendall(b"z" * 100000)
        time.sleep(0.3)
        linger0(conn)
        return True

    with Server(handler) as srv:
        out = net_guest.python(HOST_RESET, str(srv.port)).stdout.split()
        srv.wait(1)
    assert out[0] == "reset" and int(out[1]) == 100000
    assert net_guest.slirpd.counters()["tcp_rst_from_host"] == 1
    wait_for(lambda: flows_settled(net_guest.slirpd), 5, "the flow to close")


GUEST_RESET = r"""
import socket, struct, sys, time
s = socket.create_connection(("10.0.2.2", int(sys.argv[1])), timeout=20)
s.sendall(b"hello")
time.sleep(0.3)
s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
s.close()
"""


def test_guest_reset_reaches_host(net_guest):
    def handler(conn):
        got = conn.recv(100)
        try:
            more = conn.recv(100)
        except ConnectionResetError:
            return ("reset", got)
        return ("eof" if not more else "data", got)

    with Server(handler) as srv:
        net_guest.python(GUEST_RESET, str(srv.port))
        srv.wait(1)
        assert srv.results == [("reset", b"hello")]
    assert net_guest.slirpd.counters()["tcp_rst_from_guest"] == 1
    wait_for(lambda: flows_settled(net_guest.slirpd), 5, "the flow to close")


# --- loss -------------------------------------------------------------------

LOSS_RULES = ("nft add table inet t; "
              "nft add chain inet t o '{ type filter hook output priority 0 ; }'; "
              "nft add chain inet t i '{ type filter hook input priority 0 ; }'; "
              "nft add rule inet t o meta oifname tap0 numgen random mod 100 '<' 2 drop; "
              "nft add rule inet t i meta iifname tap0 numgen random mod 100 '<' 2 drop")


@pytest.mark.timeout(120)
def test_two_percent_loss_both_ways(net_guest):
    net_guest.run(LOSS_RULES)
    with Server(sink) as srv:
        out = net_guest.python(GUEST_SEND, str(srv.port), str(16 * MIB), timeout=90).stdout.split()
        srv.wait(1, timeout=60)
        assert srv.results[0] == (16 * MIB, out[1])
    # 64 MiB: GSO segments of up to 64 KiB make this only about a thousand
    # frames, of which 2% must be lost for us to retransmit
    with Server(source(64 * MIB)) as srv:
        out = net_guest.python(GUEST_RECV, str(srv.port), timeout=90).stdout.split()
        srv.wait(1, timeout=60)
        assert srv.results[0] == (int(out[0]), out[1])
    c = net_guest.slirpd.counters()
    assert c["tcp_retransmits"] > 0


# --- resources ----------------------------------------------------------------

SEQUENTIAL = r"""
import socket, sys
port, n = int(sys.argv[1]), int(sys.argv[2])
for i in range(n):
    s = socket.create_connection(("10.0.2.2", port), timeout=10)
    s.sendall(b"ping %d" % i)
    s.shutdown(socket.SHUT_WR)
    got = b""
    while True:
        d = s.recv(100)
        if not d:
            break
        got += d
    assert got == b"ping %d" % i, got
    s.close()
print("ok")
"""


@pytest.mark.timeout(150)
def test_10000_sequential_connections_leave_no_trace(net_guest):
    d = net_guest.slirpd
    with Server(echo) as srv:
        net_guest.python(SEQUENTIAL, str(srv.port), "500")
        wait_for(lambda: flows_settled(d), 5, "warm-up flows to close")
        fds, rss = d.open_fds(), d.rss_kib()
        net_guest.python(SEQUENTIAL, str(srv.port), "10000", timeout=120)
        srv.wait(10500)
        assert not srv.errors
    wait_for(lambda: flows_settled(d), 5, "all flows to close")
    assert d.open_fds() == fds
    assert d.rss_kib() < rss + 2048
    c = d.counters()
    assert c["tcp_conn_closed"] == 10500 and c["tcp_rst_sent"] == 0


# --- malformed segments from the guest ------------------------------------------

RAW_TCP = r"""
import ipaddress, socket, struct, sys

def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff

src, dst = ipaddress.IPv4Address("10.0.2.100").packed, ipaddress.IPv4Address("10.0.2.2").packed
port = int(sys.argv[1])

def tcp(flags=0x02, doff=5, bad_csum=False, payload=b"", seq=1000, ack=0):
    th = struct.pack("!HHIIBBHHH", 40000, port, seq, ack, doff << 4, flags, 65535, 0, 0) + payload
    c = csum(src + dst + struct.pack("!BBH", 0, 6, len(th)) + th)
    if bad_csum:
        c ^= 0x1234
    return th[:16] + struct.pack("!H", c) + th[18:]

def ip(l4):
    h = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), 1, 0x4000, 64, 6, 0, src, dst)
    return h[:10] + struct.pack("!H", csum(h)) + h[12:] + l4

s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800))
s.bind(("tap0", 0))
eth = bytes(6) + s.getsockname()[4] + b"\x08\x00"    # to anyone, from tap0's MAC
s.settimeout(2)
for seg in (tcp(bad_csum=True),             # checksum
            tcp(doff=15),                   # data offset beyond the segment
            tcp(doff=3),                    # data offset below the header
            tcp()[:12],                     # truncated header
            tcp(doff=6, payload=b"\x02\x08\x05\xb4")):  # option runs past the header
    s.send(eth + ip(seg))
s.send(eth + ip(tcp(flags=0x10, seq=5000, ack=777)))   # ACK for no connection
while True:
    f = s.recv(2000)
    if f[12:14] == b"\x08\x00" and f[23] == 6 and f[26:30] == dst:
        sport, dport, seq, ack, off, flags = struct.unpack("!HHIIBB", f[34:48])
        print(sport, dport, seq, flags)
        break
"""


def test_malformed_segments_counted_and_daemon_serves(net_guest):
    d = net_guest.slirpd
    port = free_port()
    out = net_guest.python(RAW_TCP, str(port)).stdout.split()
    # the ACK without a connection got a RST with seq = its ack number
    assert out == [str(port), "40000", "777", str(0x04)]
    c = d.counters()
    assert c["drop_tcp_checksum"] == 1
    assert c["drop_tcp_malformed"] == 4
    assert c["drop_tcp_no_flow"] == 1
    assert c["flows_created"] == 0
    with Server(sink) as srv:
        out = net_guest.python(GUEST_SEND, str(srv.port), str(MIB)).stdout.split()
        srv.wait(1)
        assert srv.results[0] == (MIB, out[1])


def test_idle_timeouts_are_named_limits():
    """The timeouts and limits the theory comment of tcp.c names exist."""
    here = os.path.join(os.path.dirname(__file__), "..", "csrc")
    src = open(os.path.join(here, "tcp.c")).read()
    limits = open(os.path.join(here, "dp_limits.h")).read()
    theory = src[:src.index("*/")]
    names = set(re.findall(r"\b(DP_[A-Z0-9_]+)\b", theory))
    assert {"DP_TCP_CONNECT_TIMEOUT_MS", "DP_TCP_FIN_TIMEOUT_MS", "DP_TCP_IDLE_TIMEOUT_MS"} <= names
    for name in names:
        assert f"#define {name}" in limits, name
