"""The data plane frame by frame: ARP, ICMP echo, and every counted drop.

Each test drives a real slirpd._dp instance through one of two links
(tests/lib/link.py; the frames are built by tests/lib/frames.py):

- "tap": a TAP device created here (unique name, IPv6 off so the kernel stays
  quiet on it).  The guest side is an AF_PACKET socket bound to the device:
  what it sends comes out of our TAP descriptor, what the data plane writes
  comes back to it.
- "pair": an AF_UNIX SOCK_SEQPACKET socket pair standing in for the TAP
  descriptor.  It keeps frame boundaries like a TAP, and also carries frames
  the kernel would refuse to send on an Ethernet device (runts, oversized).

No mocks: the C core reads and writes real descriptors.  To tell "no reply"
apart from "slow reply", a test sends the frame under test followed by an ARP
request (the sentinel) and expects the sentinel's reply to be the first frame
back.
"""

from __future__ import annotations

import ipaddress
import os
import select
import socket
import struct
import threading
import time

import pytest

from slirpd.dataplane import Dataplane, TapGone, counter_names

from lib.frames import (DNS4, GUEST4, GUEST_MAC, GW4, GW_MAC, arp_request, echo_request, eth, icmp, inet_csum, ip4,
                        l4_csum, parse_arp_reply, parse_echo_reply, pseudo4)
from lib.link import Link, MTU, TIMEOUT, VNET_HDR_LEN, make_cfg


OTHER4 = ipaddress.IPv4Address("10.0.2.77")


# --- links -------------------------------------------------------------------


@pytest.fixture(params=["tap", "pair"])
def link(request):
    lk = Link(request.param)
    yield lk
    lk.close()


@pytest.fixture
def tap():
    lk = Link("tap")
    yield lk
    lk.close()


# --- tests ---------------------------------------------------------------------

def test_counter_names():
    names = counter_names()
    assert len(names) == len(set(names))
    for needed in ("frames_in", "frames_out", "bytes_in", "bytes_out", "arp_replies",
                   "icmp_echo_replies", "drop_runt", "drop_ethertype", "drop_ipv6"):
        assert needed in names


@pytest.mark.parametrize("target", [GW4, DNS4])
def test_arp_reply(link, target):
    reply = link.exchange(arp_request(target))
    assert reply is not None
    sha, spa, tha, tpa = parse_arp_reply(reply)
    assert sha == GW_MAC and spa == target and tha == GUEST_MAC and tpa == GUEST4
    c = link.dp.counters()
    assert c["arp_replies"] == 1 and c["frames_in"] == 1 and c["frames_out"] == 1
    assert c["bytes_in"] == 42 and c["bytes_out"] == len(reply) == 60


@pytest.mark.parametrize("size", [0, 1, 56, 57, 1400, MTU - 28])
def test_icmp_echo_gw(link, size):
    payload = bytes((i * 7 + 3) & 0xFF for i in range(size))
    reply = link.exchange(echo_request(payload, ident=0xBEEF, seq=size))
    assert reply is not None
    src, dst, ident, seq, data = parse_echo_reply(reply)
    assert (src, dst, ident, seq, data) == (GW4, GUEST4, 0xBEEF, size, payload)
    c = link.dp.counters()
    assert c["icmp_echo_replies"] == 1 and c["frames_out"] == 1


def test_icmp_echo_dns(link):
    src, dst, _, _, data = parse_echo_reply(link.exchange(echo_request(b"dns", dst=DNS4)))
    assert (src, dst, data) == (DNS4, GUEST4, b"dns")


def test_many_frames_one_poll(link):
    """More frames than one receive batch, all answered in order."""
    n = 150
    for i in range(n):
        link.send(echo_request(struct.pack("!I", i), seq=i))
    link.pump(n)
    seqs = []
    for _ in range(n):
        frame = link.recv()
        assert frame is not None
        seqs.append(parse_echo_reply(frame)[3])
    assert sorted(seqs) == list(range(n))
    assert link.dp.counters()["icmp_echo_replies"] == n


DROPS = {
    "arp_other_address": (lambda: arp_request(OTHER4), "drop_arp_not_for_us"),
    "arp_guest_own_address": (lambda: arp_request(GUEST4), "drop_arp_not_for_us"),
    "arp_reply_op": (lambda: arp_request(GW4, op=2), "drop_arp_op"),
    "arp_truncated": (lambda: arp_request(GW4)[:30], "drop_arp_malformed"),
    "arp_bad_hlen": (lambda: (lambda f: f[:18] + b"\x08" + f[19:])(arp_request(GW4)),
                     "drop_arp_malformed"),
    "ethertype_unknown": (lambda: eth(0x88B5, b"\0" * 46), "drop_ethertype"),
    "ethertype_vlan": (lambda: eth(0x8100, b"\0\x05\x08\x06" + b"\0" * 42), "drop_ethertype"),
    "ipv6": (lambda: eth(0x86DD, bytes.fromhex("60000000000011ff") + b"\0" * 40), "drop_ipv6"),
    "eth_multicast_source": (lambda: eth(0x0806, arp_request(GW4)[14:], src=b"\x01" + GUEST_MAC[1:]),
                             "drop_eth_src"),
    "ip4_truncated": (lambda: eth(0x0800, ip4(icmp(8, b""))[:12]), "drop_ip4_malformed"),
    "ip4_version": (lambda: eth(0x0800, ip4(icmp(8, b""), version=6)), "drop_ip4_malformed"),
    "ip4_ihl_small": (lambda: eth(0x0800, ip4(icmp(8, b""), ihl=4)), "drop_ip4_malformed"),
    "ip4_ihl_beyond_frame": (lambda: eth(0x0800, ip4(b"", ihl=15, tot_len=60)[:40]),
                             "drop_ip4_malformed"),
    "ip4_total_length_beyond_frame": (lambda: eth(0x0800, ip4(icmp(8, b"abc"), tot_len=200)),
                                      "drop_ip4_malformed"),
    "ip4_total_length_below_header": (lambda: eth(0x0800, ip4(icmp(8, b""), tot_len=16)),
                                      "drop_ip4_malformed"),
    "ip4_checksum": (lambda: eth(0x0800, ip4(icmp(8, b""), csum=0x1234)), "drop_ip4_checksum"),
    # fragments (reassembly itself: test_udp.py)
    "ip4_fragment_not_8_aligned": (lambda: eth(0x0800, ip4(icmp(8, b"x" * 13), frag=0x2000)),
                                   "drop_ip4_fragment"),
    "ip4_fragment_empty": (lambda: eth(0x0800, ip4(b"", frag=0x2010)), "drop_ip4_fragment"),
    "ip4_fragment_beyond_64k": (lambda: eth(0x0800, ip4(b"x" * 16, frag=0x1fff)),
                                "drop_ip4_fragment"),
    "ip4_fragment_martian": (lambda: eth(0x0800, ip4(b"x" * 16, frag=0x2000, src="127.0.0.1")),
                             "drop_ip4_martian"),
    "ip4_proto_gre": (lambda: eth(0x0800, ip4(b"\0" * 8, proto=47)), "drop_ip4_proto"),
    "udp_ports_zero": (lambda: eth(0x0800, ip4(b"\0" * 8, proto=17)), "drop_udp_malformed"),
    "udp_truncated": (lambda: eth(0x0800, ip4(b"\0\x10\0\x35", proto=17)), "drop_udp_malformed"),
    "udp_length_beyond_packet": (lambda: eth(0x0800, ip4(struct.pack("!HHHH", 4000, 53, 30, 0) + b"q",
                                                         proto=17)), "drop_udp_malformed"),
    "udp_checksum": (lambda: eth(0x0800, ip4(struct.pack("!HHHH", 4000, 9, 9, 0x1234) + b"q",
                                             proto=17)), "drop_udp_checksum"),
    "icmp_echo_beyond_gw_bad_checksum": (lambda: eth(0x0800, ip4(icmp(8, b"ab", good_csum=False),
                                                                 dst="198.51.100.1")),
                                         "drop_icmp_checksum"),
    "icmp_beyond_gw_not_echo": (lambda: eth(0x0800, ip4(icmp(13, b"\0" * 12), dst="198.51.100.1")),
                                "drop_icmp_type"),
    "icmp_truncated": (lambda: eth(0x0800, ip4(icmp(8, b"")[:4])), "drop_icmp_malformed"),
    "icmp_checksum": (lambda: eth(0x0800, ip4(icmp(8, b"abcd", good_csum=False))),
                      "drop_icmp_checksum"),
    "icmp_type_timestamp": (lambda: eth(0x0800, ip4(icmp(13, b"\0" * 12))), "drop_icmp_type"),
    "icmp_echo_reply": (lambda: eth(0x0800, ip4(icmp(0, b""))), "drop_icmp_type"),
    "ip4_source_multicast": (lambda: eth(0x0800, ip4(icmp(8, b""), src="224.0.0.1")),
                              "drop_ip4_martian"),
}


@pytest.mark.parametrize("case", sorted(DROPS))
def test_counted_drop(link, case):
    build, reason = DROPS[case]
    link.assert_dropped(build(), reason)


def test_ip4_padding_and_options(link):
    """Ethernet padding past the total length is ignored; options are skipped."""
    frame = eth(0x0800, ip4(icmp(8, b"pad"), ihl=6)) + b"\xee" * 20
    src, dst, _, _, data = parse_echo_reply(link.exchange(frame))
    assert (src, dst, data) == (GW4, GUEST4, b"pad")


def test_runt(pair):
    """Frames shorter than an Ethernet header (AF_PACKET refuses to send these)."""
    for size in (1, 6, 13):
        pair.assert_dropped(b"\x02" * size, "drop_runt")


def test_reply_over_mtu_dropped():
    """An echo whose reply would exceed the configured MTU is a counted drop."""
    lk = Link("pair", cfg_over={"mtu": 576})
    try:
        lk.assert_dropped(echo_request(b"z" * 1000), "drop_icmp_too_big")
        assert parse_echo_reply(lk.exchange(echo_request(b"z" * 548)))[4] == b"z" * 548
    finally:
        lk.close()


def test_vnet_hdr():
    """With IFF_VNET_HDR, the virtio-net header is skipped and written zeroed."""
    lk = Link("tap", vnet_hdr=True)
    try:
        sha, spa, _, _ = parse_arp_reply(lk.exchange(arp_request(GW4)))
        assert (sha, spa) == (GW_MAC, GW4)
        src, _, _, _, data = parse_echo_reply(lk.exchange(echo_request(b"v" * 100)))
        assert (src, data) == (GW4, b"v" * 100)
        c = lk.dp.counters()
        assert c["bytes_out"] == 60 + 14 + 20 + 8 + 100
    finally:
        lk.close()


# --- virtio-net headers from the guest (csrc/tap.c) ---------------------------

NEEDS_CSUM = 1
GSO_NONE, GSO_TCPV4, GSO_UDP, GSO_TCPV6, GSO_UDP_L4, GSO_ECN = 0, 1, 3, 4, 5, 0x80
L4_OFF = 14 + 20  # Ethernet + IPv4 header: csum_start of a transport header
TCP_CSUM_OFF, UDP_CSUM_OFF = 16, 6


def vnet(flags=0, gso_type=GSO_NONE, hdr_len=0, gso_size=0, csum_start=0, csum_offset=0) -> bytes:
    """struct virtio_net_hdr_v1, in the host's byte order as a TAP has it."""
    return struct.pack("=BBHHHHH", flags, gso_type, hdr_len, gso_size, csum_start, csum_offset, 0)


def tcp4_frame(payload: bytes = b"", csum: str = "full", flags: int = 0x10, dport: int = 9) -> bytes:
    """An IPv4 TCP segment from the guest to the gateway (no flow: a RST answers)."""
    seg = struct.pack("!HHIIBBHHH", 40000, dport, 1000, 1, 5 << 4, flags, 65535, 0, 0) + payload
    c = l4_csum(pseudo4(GUEST4, GW4, 6, len(seg)), seg, csum)
    return eth(0x0800, ip4(seg[:16] + struct.pack("!H", c) + seg[18:], proto=6))


def udp4_frame(payload: bytes, dport: int, csum: str = "full") -> bytes:
    seg = struct.pack("!HHHH", 40001, dport, 8 + len(payload), 0) + payload
    c = l4_csum(pseudo4(GUEST4, GW4, 17, len(seg)), seg, csum)
    return eth(0x0800, ip4(seg[:6] + struct.pack("!H", c) + seg[8:], proto=17))


def partial_ok(frame: bytes, field: int) -> bytes:
    """A NEEDS_CSUM header naming exactly the transport checksum of frame."""
    return vnet(NEEDS_CSUM, csum_start=L4_OFF, csum_offset=field)


def gso_ok(frame: bytes, mss: int = 1000) -> bytes:
    return vnet(NEEDS_CSUM, GSO_TCPV4, hdr_len=L4_OFF + 20, gso_size=mss, csum_start=L4_OFF,
                csum_offset=TCP_CSUM_OFF)


BIG_TCP = tcp4_frame(b"g" * 3000, csum="partial")
VNET_DROPS = {
    "flag_unknown": (lambda: (echo_request(b"v"), vnet(flags=4)), "drop_vnet_hdr"),
    "csum_start_beyond_frame": (lambda: (echo_request(b"v"), vnet(NEEDS_CSUM, csum_start=5000)),
                                "drop_vnet_hdr"),
    "csum_offset_beyond_frame": (lambda: (tcp4_frame(), vnet(NEEDS_CSUM, csum_start=L4_OFF,
                                                             csum_offset=19)), "drop_vnet_hdr"),
    "csum_offset_huge": (lambda: (tcp4_frame(), vnet(NEEDS_CSUM, csum_start=L4_OFF,
                                                     csum_offset=0xFFFF)), "drop_vnet_hdr"),
    "csum_start_in_ethernet_header": (lambda: (tcp4_frame(), vnet(NEEDS_CSUM, csum_start=4,
                                                                  csum_offset=0)), "drop_vnet_hdr"),
    "gso_type_udp": (lambda: (BIG_TCP, gso_ok(BIG_TCP)[:1] + bytes([GSO_UDP]) + gso_ok(BIG_TCP)[2:]),
                     "drop_vnet_gso"),
    "gso_type_udp_l4": (lambda: (BIG_TCP, vnet(NEEDS_CSUM, GSO_UDP_L4, L4_OFF + 8, 1000, L4_OFF, 6)),
                        "drop_vnet_gso"),
    "gso_type_unknown": (lambda: (BIG_TCP, vnet(NEEDS_CSUM, 0x42, L4_OFF + 20, 1000, L4_OFF, 16)),
                         "drop_vnet_gso"),
    "gso_ecn_alone": (lambda: (BIG_TCP, vnet(NEEDS_CSUM, GSO_ECN, L4_OFF + 20, 1000, L4_OFF, 16)),
                      "drop_vnet_gso"),
    "gso_size_zero": (lambda: (BIG_TCP, vnet(NEEDS_CSUM, GSO_TCPV4, L4_OFF + 20, 0, L4_OFF, 16)),
                      "drop_vnet_gso"),
    "gso_size_huge": (lambda: (BIG_TCP, vnet(NEEDS_CSUM, GSO_TCPV4, L4_OFF + 20, 0xFFFF, L4_OFF, 16)),
                      "drop_vnet_gso"),
    "gso_hdr_len_beyond_frame": (lambda: (BIG_TCP, vnet(NEEDS_CSUM, GSO_TCPV4, 0xF000, 1000,
                                                        L4_OFF, 16)), "drop_vnet_gso"),
    "gso_without_needs_csum": (lambda: (tcp4_frame(b"g" * 3000), vnet(0, GSO_TCPV4, L4_OFF + 20,
                                                                      1000)), "drop_vnet_gso"),
    "gso_tcpv4_on_icmp": (lambda: (echo_request(b"i" * 3000), vnet(NEEDS_CSUM, GSO_TCPV4, L4_OFF + 8,
                                                                   1000, L4_OFF, 2)),
                          "drop_vnet_gso"),
    "gso_tcpv4_on_arp": (lambda: (arp_request(GW4), vnet(NEEDS_CSUM, GSO_TCPV4, 14, 8, 14, 0)),
                         "drop_vnet_gso"),
    "gso_tcpv6_on_ipv4": (lambda: (BIG_TCP, vnet(NEEDS_CSUM, GSO_TCPV6, L4_OFF + 20, 1000,
                                                 L4_OFF, 16)), "drop_vnet_gso"),
    "gso_csum_start_not_tcp_header": (lambda: (BIG_TCP, vnet(NEEDS_CSUM, GSO_TCPV4, L4_OFF + 20, 1000,
                                                             14, 10)), "drop_vnet_gso"),
    "gso_csum_offset_not_tcp_checksum": (lambda: (BIG_TCP, vnet(NEEDS_CSUM, GSO_TCPV4, L4_OFF + 20,
                                                                1000, L4_OFF, 6)), "drop_vnet_gso"),
    # NEEDS_CSUM naming a field other than the transport checksum: that
    # checksum is verified as it stands, and a partial sum there fails
    "partial_sum_csum_elsewhere": (lambda: (tcp4_frame(b"p", csum="partial"),
                                            vnet(NEEDS_CSUM, csum_start=14, csum_offset=10)),
                                   "drop_tcp_checksum"),
    # no NEEDS_CSUM: a partial sum is a bad checksum
    "partial_sum_without_flag_tcp": (lambda: (tcp4_frame(b"p", csum="partial"), vnet()),
                                     "drop_tcp_checksum"),
    "partial_sum_without_flag_udp": (lambda: (udp4_frame(b"p", 9, csum="partial"), vnet()),
                                     "drop_udp_checksum"),
    "data_valid_does_not_skip_verification": (lambda: (tcp4_frame(b"p", csum="bad"), vnet(flags=2)),
                                              "drop_tcp_checksum"),
}


@pytest.fixture
def vpair():
    lk = Link("pair", vnet_hdr=True)
    yield lk
    lk.close()


@pytest.mark.parametrize("case", sorted(VNET_DROPS))
def test_vnet_hostile_header_counted(vpair, case):
    build, reason = VNET_DROPS[case]
    frame, hdr = build()
    vpair.assert_dropped(frame, reason, vnet=hdr)
    assert vpair.last_vnet == bytes(VNET_HDR_LEN), "the ARP reply's header is not zero"


def test_vnet_short_header(vpair):
    """A message shorter than the virtio-net header."""
    for size in (1, 6, VNET_HDR_LEN - 1):  # 0 bytes is end of file
        before = vpair.dp.counters()["drop_vnet_hdr"]
        vpair.sock.send(b"\x02" * size)
        vpair.send(arp_request(GW4))
        vpair.pump(2)
        assert vpair.recv() is not None
        assert vpair.dp.counters()["drop_vnet_hdr"] == before + 1


def rst_for(link: Link, frame: bytes, hdr: bytes) -> bytes:
    """Send a segment without a flow; return the RST it gets."""
    reply = link.exchange_vnet(frame, hdr)
    assert reply is not None and reply[12:14] == b"\x08\x00" and reply[23] == 6
    tcp = reply[34:]
    assert tcp[13] & 0x04, "not a RST"
    return reply


def test_vnet_partial_tcp_checksum_accepted(vpair):
    """NEEDS_CSUM naming the TCP checksum: the pseudo-header sum alone passes
    (the segment reaches TCP, which answers a flowless ACK with a RST)."""
    frame = tcp4_frame(b"partial", csum="partial")
    reply = rst_for(vpair, frame, partial_ok(frame, TCP_CSUM_OFF))
    seg = reply[34:14 + struct.unpack("!H", reply[16:18])[0]]  # Ethernet padding off
    assert inet_csum(pseudo4(GW4, GUEST4, 6, len(seg)) + seg) == 0, "our RST: full checksum"
    c = vpair.dp.counters()
    assert c["drop_tcp_no_flow"] == 1 and c["drop_tcp_checksum"] == 0
    assert vpair.last_vnet == bytes(VNET_HDR_LEN)


def test_vnet_gso_segment_accepted(vpair):
    """A sound 3000-byte GSO segment (gso_size 1000) is taken as one segment."""
    rst_for(vpair, BIG_TCP, gso_ok(BIG_TCP))
    c = vpair.dp.counters()
    assert c["vnet_gso_in"] == 1 and c["drop_tcp_no_flow"] == 1
    assert c["drop_vnet_gso"] == 0 and c["drop_vnet_hdr"] == 0


def test_vnet_partial_udp_checksum_accepted(vpair):
    srv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    srv.bind(("127.0.0.1", 0))
    srv.settimeout(TIMEOUT)
    with srv:
        frame = udp4_frame(b"partial udp", srv.getsockname()[1], csum="partial")
        vpair.send(frame, partial_ok(frame, UDP_CSUM_OFF))
        vpair.pump(1)
        assert srv.recvfrom(100)[0] == b"partial udp"
    assert vpair.dp.counters()["drop_udp_checksum"] == 0


def test_vnet_many_hostile_headers_then_serves(vpair):
    """Random headers in front of valid frames: no crash, every frame either
    handled or dropped under a reason, and the data plane still answers."""
    import random

    rnd = random.Random(5)
    frames = [echo_request(b"r" * 64), BIG_TCP, tcp4_frame(b"x"), arp_request(GW4)]
    n = 500
    for _ in range(n):
        vpair.send(rnd.choice(frames), bytes(rnd.getrandbits(8) for _ in range(VNET_HDR_LEN)))
        if rnd.random() < 0.1:
            vpair.pump(1)
            while vpair.recv(0.001) is not None:
                pass
    vpair.pump(0)
    while vpair.recv(0.05) is not None:
        pass
    assert vpair.exchange(arp_request(GW4)) is not None
    c = vpair.dp.counters()
    assert c["frames_in"] == n + 1
    assert c["drop_vnet_hdr"] + c["drop_vnet_gso"] > n // 2, c


def test_poll_idle_and_budget(link):
    assert link.dp.poll() == 0
    assert link.dp.poll(0) == 0
    for _ in range(5):
        link.send(arp_request(GW4))
    time.sleep(0.05)
    p = select.poll()
    p.register(link.dp.fileno(), select.POLLIN)
    assert p.poll(int(TIMEOUT * 1000))
    got = 0
    deadline = time.monotonic() + TIMEOUT
    while got < 5 and time.monotonic() < deadline:
        n = link.dp.poll(2)
        assert 0 <= n <= 2
        got += n
    assert got == 5


def test_wait_serves_until_python_has_work(link):
    """dp.wait() answers the guest by itself while it blocks, and comes back
    when its time is up or the watched fd is readable, not before."""
    r, w = os.pipe()
    try:
        link.dp.watch(r)
        start = time.monotonic()
        assert link.dp.wait(max_wait=0.2) == 0
        assert 0.15 <= time.monotonic() - start < 0.2 + TIMEOUT

        answers = []
        t = threading.Thread(target=lambda: [link.send(arp_request(GW4)) or answers.append(link.recv())
                                             for _ in range(3)])
        t.start()
        start = time.monotonic()
        served = 0
        while t.is_alive() and time.monotonic() - start < TIMEOUT:
            served += link.dp.wait(max_wait=0.3)
        t.join()
        assert served == 3 and all(parse_arp_reply(a) for a in answers)

        os.write(w, b"x")
        start = time.monotonic()
        link.dp.wait()  # no limit: the readable pipe ends it
        assert time.monotonic() - start < TIMEOUT
    finally:
        os.close(r)
        os.close(w)


def test_wait_sleeps_once_traffic_stops(link):
    """After a quick ping-pong, which makes dp.wait() poll between frames
    instead of sleeping, an idle wait costs next to no CPU: the busy poll
    only follows work, and its window shrinks when nothing comes."""
    r, w = os.pipe()
    try:
        link.dp.watch(r)
        answers = []
        t = threading.Thread(target=lambda: [link.send(arp_request(GW4)) or answers.append(link.recv())
                                             for _ in range(500)])
        t.start()
        start = time.monotonic()
        while t.is_alive() and time.monotonic() - start < TIMEOUT:
            link.dp.wait(max_wait=0.1)
        t.join()
        assert len(answers) == 500 and all(parse_arp_reply(a) for a in answers)

        cpu = time.thread_time()
        start = time.monotonic()
        assert link.dp.wait(max_wait=0.5) == 0
        assert time.monotonic() - start >= 0.45
        assert time.thread_time() - cpu < 0.05
    finally:
        os.close(r)
        os.close(w)


def test_close_twice(link):
    link.dp.close()
    link.dp.close()
    with pytest.raises(ValueError):
        link.dp.poll()
    with pytest.raises(ValueError):
        link.dp.fileno()


def test_close_closes_tap_fd():
    sock, dp_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    fd = os.dup(dp_end.fileno())
    dp_end.close()
    dp = Dataplane(make_cfg(), fd)
    epfd = dp.fileno()
    dp.close()
    for closed in (fd, epfd):
        with pytest.raises(OSError):
            os.fstat(closed)
    sock.close()


@pytest.mark.parametrize("over", [{"gw_mac": b"\x01\0\0\0\0\x01"}, {"gw_mac": b"\0" * 6},
                                  {"gw_mac": b"\x02" * 5}, {"mtu": 67}, {"mtu": 65522},
                                  {"gw4": ipaddress.IPv4Address("0.0.0.0")}])
def test_bad_config(over):
    r, w = os.pipe()
    try:
        with pytest.raises(OSError):
            Dataplane(make_cfg(**over), r)
        os.fstat(r)  # still ours after a failed constructor
    finally:
        os.close(r)
        os.close(w)


def test_tap_gone_interface_deleted(tap):
    assert tap.exchange(arp_request(GW4)) is not None
    from pyroute2 import IPRoute
    with IPRoute() as ipr:
        ipr.link("del", index=ipr.link_lookup(ifname=tap.name)[0])
    p = select.poll()
    p.register(tap.dp.fileno(), select.POLLIN)
    assert p.poll(int(TIMEOUT * 1000)), "epoll fd did not wake up"
    with pytest.raises(TapGone):
        tap.dp.poll()
    with pytest.raises(TapGone):
        tap.dp.poll()
    tap.dp.close()


def test_tap_gone_peer_closed(pair):
    pair.sock.close()
    with pytest.raises(TapGone):
        pair.dp.poll()


def test_instances_independent():
    a, b = Link("tap"), Link("pair")
    try:
        assert a.exchange(arp_request(GW4)) is not None
        assert b.exchange(echo_request(b"b")) is not None
        assert a.dp.counters()["icmp_echo_replies"] == 0
        assert b.dp.counters()["arp_replies"] == 0
    finally:
        a.close()
        b.close()
