"""UDP through the data plane, and IPv4 reassembly of the guest's fragments.

Two levels:

- frames: a slirpd._dp instance on a socket pair (see tests/lib/link.py)
  talking to real UDP sockets on the sandbox's 127.0.0.1, so every header
  field, checksum and fragment of what comes back can be checked;
- guest: a real guest namespace with slirpd, its kernel fragmenting and
  reassembling, against a UDP echo server on the sandbox's 127.0.0.1 reached
  through the gateway 10.0.2.2.
"""

from __future__ import annotations

import ipaddress
import random
import socket
import struct
import threading
import time

import pytest

from lib.frames import (GUEST4, GW4, UDP, check_udp, echo_request, eth, fragments, inet_csum, ip4, parse_echo_reply,
                        parse_ip, reassemble, udp)
from lib.link import Link, collect, delta


# --- helpers -----------------------------------------------------------------

class UdpEcho:
    """A UDP echo server on the sandbox's 127.0.0.1, in a thread."""

    def __init__(self, host="127.0.0.1"):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.sock.bind((host, 0))
        self.port = self.sock.getsockname()[1]
        self.count = 0
        self.peers = set()
        self.sock.settimeout(0.2)
        self.stopping = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stopping:
            try:
                data, peer = self.sock.recvfrom(65535)
            except socket.timeout:
                continue
            except OSError:
                return
            self.count += 1
            self.peers.add(peer)
            self.sock.sendto(data, peer)

    def close(self):
        self.stopping = True
        self.thread.join(timeout=2)
        self.sock.close()


@pytest.fixture
def echo():
    e = UdpEcho()
    yield e
    e.close()


def closed_port() -> int:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# --- frames ------------------------------------------------------------------

def test_udp_echo_frames(pair, echo):
    """A datagram to the gateway reaches 127.0.0.1; the reply comes from the
    gateway and the port the guest wrote, with a correct checksum."""
    for payload, csum in ((b"hello", True), (b"no checksum", False), (b"", True)):
        pair.send(eth(0x0800, ip4(udp(payload, 40000, echo.port, csum=csum), proto=UDP)))
        frames = collect(pair, 1)
        assert len(frames) == 1
        f, l4 = parse_ip(frames[0])
        assert (f["src"], f["dst"], f["more"], f["off"]) == (GW4, GUEST4, False, 0)
        assert check_udp(f, l4, echo.port, 40000) == payload
    c = pair.dp.counters()
    assert c["flows_created"] == 1 and c["drop_udp_checksum"] == 0
    states = pair.dp.flow_states()
    assert states["UDP_ST_BOTH_WAYS"] == 1 and sum(states.values()) == 1, states  # the echo answered
    assert len(echo.peers) == 1 and next(iter(echo.peers))[0] == "127.0.0.1"


def test_udp_large_both_ways_frames(pair, echo):
    """A 65507-byte datagram sent as fragments is reassembled, echoed and
    fragmented back to the MTU."""
    payload = random.Random(7).randbytes(65507)
    frames = fragments(udp(payload, 40001, echo.port), 1480, ident=0x4321)
    random.Random(3).shuffle(frames)
    for fr in frames:
        pair.send(fr)
    back = collect(pair, 45, timeout=10)
    f, l4 = reassemble(back)
    assert (f["src"], f["dst"]) == (GW4, GUEST4)
    assert check_udp(f, l4, echo.port, 40001) == payload
    c = pair.dp.counters()
    assert c["ip4_reassembled"] == 1 and c["ip4_fragments"] == len(frames)


def test_udp_port_unreachable_frames(pair):
    """The host's ICMP port unreachable comes back to the guest, quoting the
    guest's datagram (its ports, the gateway address)."""
    port = closed_port()
    pair.send(eth(0x0800, ip4(udp(b"anyone?", 40002, port), proto=UDP)))
    frames = collect(pair, 1)
    assert frames, "no ICMP error"
    f, msg = parse_ip(frames[0])
    assert f["proto"] == 1 and (f["src"], f["dst"]) == (GW4, GUEST4)
    assert inet_csum(msg) == 0 and msg[0:2] == b"\x03\x03"
    quoted = msg[8:]
    assert ipaddress.IPv4Address(quoted[12:16]) == GUEST4 and ipaddress.IPv4Address(quoted[16:20]) == GW4
    assert quoted[9] == UDP and struct.unpack("!HH", quoted[20:24]) == (40002, port)
    assert pair.dp.counters()["udp_icmp_relayed"] == 1


def test_udp_unreachable_destination_frames(pair):
    """A destination the guest may not reach is a counted drop with an ICMP
    error, and no ICMP error answers a broadcast."""
    pair.send(eth(0x0800, ip4(udp(b"x", 40003, 9, dst="10.0.2.77"), dst="10.0.2.77", proto=UDP)))
    frames = collect(pair, 1)
    f, msg = parse_ip(frames[0])
    assert msg[0:2] == b"\x03\x01" and f["src"] == GW4
    pair.send(eth(0x0800, ip4(udp(b"x", 40003, 9, dst="10.0.2.255"), dst="10.0.2.255", proto=UDP)))
    assert collect(pair, 1, timeout=0.5) == []
    c = pair.dp.counters()
    assert c["drop_unreachable"] == 2 and c["icmp_unreach_sent"] == 1 and c["flows_created"] == 0


def test_udp_idle_flow_reaped(echo):
    """A flow is closed after its idle timeout (shortened through udp_idle_ms)."""
    lk = Link("pair", cfg_over={"udp_idle_ms": 300})
    try:
        lk.send(eth(0x0800, ip4(udp(b"a", 40004, echo.port), proto=UDP)))
        assert len(collect(lk, 1)) == 1
        assert lk.dp.timeout() is not None and lk.dp.timeout() <= 0.3
        t0 = time.monotonic()
        deadline = t0 + 5
        while lk.dp.counters()["flows_closed"] == 0 and time.monotonic() < deadline:
            time.sleep(max(lk.dp.timeout() or 0.05, 0.01))
            lk.dp.poll()
        assert lk.dp.counters()["flows_closed"] == 1
        assert time.monotonic() - t0 >= 0.2
        # a new datagram opens a new flow
        lk.send(eth(0x0800, ip4(udp(b"b", 40004, echo.port), proto=UDP)))
        assert len(collect(lk, 1)) == 1
        assert lk.dp.counters()["flows_created"] == 2
    finally:
        lk.close()


def test_frag_duplicate_and_overlap(pair, echo):
    l4 = udp(bytes(range(256)) * 12, 40005, echo.port)
    a, b, c = fragments(l4, 1480, ident=1)
    before = pair.dp.counters()
    # exact duplicate: dropped alone, datagram still completes
    for fr in (a, a, c, b):
        pair.send(fr)
    assert len(collect(pair, 3)) == 3
    d = delta(before, pair.dp.counters())
    assert d["drop_frag_duplicate"] == 1 and d["ip4_reassembled"] == 1
    # inconsistent overlap: a second fragment covering part of the first with
    # other bytes drops the whole datagram
    before = pair.dp.counters()
    a, b, c = fragments(l4, 1480, ident=2)
    evil = eth(0x0800, ip4(b"\xee" * 800, proto=UDP, frag=0x2000 | 1000 // 8, ident=2))
    for fr in (a, evil, b, c):
        pair.send(fr)
    collect(pair, 3, timeout=1)
    d = delta(before, pair.dp.counters())
    assert d["drop_frag_overlap"] == 1 and d.get("ip4_reassembled", 0) == 0
    # the last fragment disagreeing with the known end is inconsistent too
    before = pair.dp.counters()
    a, b, c = fragments(l4, 1480, ident=3)
    short_last = eth(0x0800, ip4(b"z" * 8, proto=UDP, frag=1480 // 8, ident=3))
    for fr in (a, b, short_last, c):
        pair.send(fr)
    collect(pair, 3, timeout=1)
    d = delta(before, pair.dp.counters())
    assert d["drop_frag_overlap"] == 1 and d.get("ip4_reassembled", 0) == 0


def test_frag_incomplete_evicted(pair, echo):
    """Incomplete datagrams beyond the slots evict the oldest; a whole
    datagram still gets through, and a ping is still answered."""
    for ident in range(100, 300):
        pair.send(eth(0x0800, ip4(b"s" * 64, proto=UDP, frag=0x2000, ident=ident)))
    pair.pump(200)
    c = pair.dp.counters()
    assert c["ip4_fragments"] == 200 and c["drop_frag_evicted"] >= 200 - 64
    l4 = udp(b"q" * 4000, 40006, echo.port)
    for fr in fragments(l4, 1480, ident=7):
        pair.send(fr)
    f, data = reassemble(collect(pair, 3))
    assert check_udp(f, data, echo.port, 40006) == b"q" * 4000
    assert parse_echo_reply(pair.exchange(echo_request(b"alive")))[4] == b"alive"
    assert pair.dp.timeout() is not None  # incomplete slots wait for their timeout


def test_frag_icmp_to_gateway(pair):
    """Reassembly serves every protocol: a fragmented echo request to the
    gateway is answered (when the reply fits the MTU)."""
    from lib.frames import icmp
    msg = icmp(8, b"p" * 1000)
    for fr in fragments(msg, 504, ident=9, proto=1):
        pair.send(fr)
    frames = collect(pair, 1)
    assert parse_echo_reply(frames[0])[4] == b"p" * 1000


# --- guest -------------------------------------------------------------------

ECHO_CLIENT = r"""
import os, random, socket, sys
port, n = int(sys.argv[1]), int(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
s.settimeout(2)
rnd = random.Random(1)
retries = big = 0
for i in range(n):
    if i % 50 == 0:
        size = 61440 if i % 100 else 65507
    else:
        size = rnd.choice([4, 100, 1472, 1473, 2961, rnd.randrange(4, 9000)])
    data = i.to_bytes(4, "big") + rnd.randbytes(size - 4)
    for attempt in range(3):
        s.sendto(data, ("10.0.2.2", port))
        try:
            while True:
                got, addr = s.recvfrom(70000)
                if got[:4] == data[:4]:
                    break
        except socket.timeout:
            retries += 1
            continue
        assert addr == ("10.0.2.2", port), addr
        assert got == data, (i, len(got), len(data))
        big += size > 1472
        break
    else:
        sys.exit("datagram %d (%d bytes) lost 3 times" % (i, size))
print("ok", retries, big)
"""


def test_udp_echo_guest(net_guest, echo):
    """1000 datagrams, up to 65507 bytes, echoed through the gateway; the
    guest's fragments are reassembled, replies fragmented by slirpd."""
    res = net_guest.python(ECHO_CLIENT, str(echo.port), "1000", timeout=120)
    words = res.stdout.split()
    assert words[0] == "ok", res.stdout
    assert int(words[1]) <= 3, f"{words[1]} retries"
    c = net_guest.slirpd.counters()
    assert c["ip4_reassembled"] >= 20 and c["drop_udp_checksum"] == 0
    assert c["drop_ip4_fragment"] == 0 and c["drop_frag_overlap"] == 0
    assert echo.count >= 1000


CONNREFUSED_CLIENT = r"""
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.connect(("10.0.2.2", int(sys.argv[1])))
s.settimeout(3)
s.send(b"is anyone there?")
try:
    s.recv(100)
    print("answer")
except ConnectionRefusedError:
    print("refused")
except socket.timeout:
    print("timeout")
"""


def test_udp_port_unreachable_guest(net_guest):
    res = net_guest.python(CONNREFUSED_CLIENT, str(closed_port()))
    assert res.stdout.strip() == "refused"
    assert net_guest.slirpd.counters()["udp_icmp_relayed"] >= 1


MANY_PORTS_CLIENT = r"""
import socket, sys
port, n = int(sys.argv[1]), int(sys.argv[2])
socks = []
for i in range(n):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(2)
    s.sendto(b"%d" % i, ("10.0.2.2", port))
    socks.append(s)
for i, s in enumerate(socks):
    assert s.recv(100) == b"%d" % i
print("ok")
"""


def test_udp_flow_per_port(net_guest, echo):
    """One flow and one host socket per guest port; they are closed with the
    daemon's flows (flows_created/closed), not leaked."""
    fds = net_guest.slirpd.open_fds()
    res = net_guest.python(MANY_PORTS_CLIENT, str(echo.port), "200")
    assert res.stdout.strip() == "ok"
    c = net_guest.slirpd.counters()
    assert c["flows_created"] == 200 and c["flows_closed"] == 0
    assert net_guest.slirpd.open_fds() - fds == 200
    assert len(echo.peers) == 200


STRAY_FRAGMENTS = r"""
import random, socket, struct
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
rnd = random.Random(5)
src, dst = socket.inet_aton("10.0.2.100"), socket.inet_aton("10.0.2.2")
for i in range(1000):
    off = rnd.randrange(0, 8000)
    payload = rnd.randbytes(rnd.choice([8, 64, 1024]))
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), i + 1,
                      0x2000 | off, 64, 17, 0, src, dst)
    s.sendto(hdr + payload, ("10.0.2.2", 0))
print("sent")
"""


def test_stray_fragments_guest(net_guest, echo):
    """A thousand fragments that never complete: the daemon lives, memory does
    not grow, pings and large datagrams still work, drops are counted."""
    rss = net_guest.slirpd.rss_kib()
    assert net_guest.python(STRAY_FRAGMENTS).stdout.strip() == "sent"
    net_guest.run("ping -c 2 -i 0.2 -W 2 10.0.2.2")
    res = net_guest.python(ECHO_CLIENT, str(echo.port), "101", timeout=60)
    assert res.stdout.split()[0] == "ok"
    assert net_guest.slirpd.proc.poll() is None
    c = net_guest.slirpd.counters()
    assert c["ip4_fragments"] >= 900 and c["drop_frag_evicted"] >= 800, c
    assert net_guest.slirpd.rss_kib() - rss < 8 * 1024
