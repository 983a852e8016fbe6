#!/usr/bin/env python3
"""Write the fuzzer's seed corpus (tests/fuzz/corpus) in the harness's input encoding.

Two sources:
- frames captured from the frame tests: run
      SLIRPD_FRAME_CAPTURE=DIR pytest tests/test_dataplane_frames.py
  (Link.send() appends each frame the test writes to DIR/<test name>), then
      mkseeds.py --capture DIR
  turns each test's frames into one seed: each frame, then a poll.
- conversations the frame tests cannot have, since they need the host side:
  TCP out (also with segments out of order) and in (forwarded), UDP, DNS,
  DHCP through the control ring, ping
  through a ping socket, fragments.  Where the guest must answer the data
  plane (the ACK of a SYN-ACK), the script runs the harness on the seed so far
  with FUZZ_TRACE set and reads the frames the data plane wrote.

The encoding is described at the top of fuzz_frames.c; keep the two in step.
"""

import argparse
import ipaddress
import os
import struct
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests/: its lib
from lib.frames import inet_csum as csum  # noqa: E402

OP_FRAME, OP_POLL, OP_TIME, OP_STREAM, OP_DGRAM, OP_SOCK_EVENT, OP_KNOB, OP_ACCEPT, \
    OP_CTL, OP_FWD, OP_API, OP_NS_CONNECT, OP_VNET_FRAME = range(13)
FWD_SPLICE_TCP, FWD_SPLICE_UDP = 2, 3  # fuzz_frames.c's listener slots: OP_FWD adds slot N with N << 1
PASTA_MODEL = 128  # byte 0: pasta's network model (harness_rules())
IPV6 = 32  # byte 0: IPv6 served
NO_USO = 1  # byte 2: the fake kernel refuses TUN_F_USO4/6
# OP_VNET_FRAME's what: NEEDS_CSUM, and the GSO type choices
VNET_CSUM, VNET_TCPV4, VNET_UDP_L4 = 1, 1 << 1, 3 << 1
EV_EOF, EV_RESET, EV_CONNECTED, EV_REFUSED, EV_DRAINED, EV_ICMP, EV_ERROR = range(7)

GW_MAC = bytes.fromhex("525500000202")
GUEST_MAC = bytes.fromhex("020000000064")
GW4, DNS4, GUEST4 = "10.0.2.2", "10.0.2.3", "10.0.2.100"
REMOTE4 = "198.51.100.1"



def eth(payload: bytes, ethertype=0x0800, dst=GW_MAC) -> bytes:
    return dst + GUEST_MAC + struct.pack("!H", ethertype) + payload


def ip4(payload: bytes, proto: int, dst: str, src=GUEST4, ident=1, frag=0x4000,
        options=b"") -> bytes:
    hlen = 20 + len(options)
    hdr = struct.pack("!BBHHHBBH4s4s", 0x40 | hlen // 4, 0, hlen + len(payload), ident, frag,
                      64, proto, 0, ipaddress.IPv4Address(src).packed,
                      ipaddress.IPv4Address(dst).packed) + options
    return hdr[:10] + struct.pack("!H", csum(hdr)) + hdr[12:] + payload


def pseudo(src: str, dst: str, proto: int, length: int) -> bytes:
    return (ipaddress.IPv4Address(src).packed + ipaddress.IPv4Address(dst).packed +
            struct.pack("!BBH", 0, proto, length))


def udp(dst: str, sport: int, dport: int, data: bytes, src=GUEST4) -> bytes:
    seg = struct.pack("!HHHH", sport, dport, 8 + len(data), 0) + data
    c = csum(pseudo(src, dst, 17, len(seg)) + seg) or 0xFFFF
    return eth(ip4(seg[:6] + struct.pack("!H", c) + seg[8:], 17, dst, src=src),
               dst=b"\xff" * 6 if dst == "255.255.255.255" else GW_MAC)


def ip6(payload: bytes, nh: int, src: str, dst: str, hops=1) -> bytes:
    """An Ethernet frame with an IPv6 packet (to our MAC address)."""
    hdr = struct.pack("!IHBB", 6 << 28, len(payload), nh, hops)
    return eth(hdr + ipaddress.IPv6Address(src).packed + ipaddress.IPv6Address(dst).packed + payload, 0x86DD)


def pseudo6(src: str, dst: str, proto: int, length: int) -> bytes:
    return ipaddress.IPv6Address(src).packed + ipaddress.IPv6Address(dst).packed + struct.pack("!IxxxB", length, proto)


def udp6(src: str, dst: str, sport: int, dport: int, data: bytes) -> bytes:
    """A UDP header (checksum right over IPv6) and data."""
    hdr = struct.pack("!HHHH", sport, dport, 8 + len(data), 0)
    return hdr[:6] + struct.pack("!H", csum(pseudo6(src, dst, 17, 8 + len(data)) + hdr + data) or 0xFFFF) + data


def icmp6(src: str, dst: str, msg: bytes) -> bytes:
    """An ICMPv6 message with its checksum set (msg's bytes 2-3 zero)."""
    return msg[:2] + struct.pack("!H", csum(pseudo6(src, dst, 58, len(msg)) + msg)) + msg[4:]


def udp_super(dst: str, sport: int, dport: int, data: bytes, src=GUEST4) -> bytes:
    """A UDP super-datagram as a guest kernel hands a UDP_SEGMENT send to a
    TAP with USO: the UDP length covers all of it, the checksum field holds
    the pseudo-header sum only."""
    length = 8 + len(data)
    partial = ~csum(pseudo(src, dst, 17, length)) & 0xFFFF
    return eth(ip4(struct.pack("!HHHH", sport, dport, length, partial) + data, 17, dst, src=src))


def tcp(dst: str, sport: int, dport: int, seq: int, ack: int, flags: str, data=b"",
        wnd=65535, options=b"") -> bytes:
    bits = sum({"F": 1, "S": 2, "R": 4, "P": 8, "A": 16}[f] for f in flags)
    off = (20 + len(options)) // 4
    seg = struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF,
                      off << 4, bits, wnd, 0, 0) + options + data
    c = csum(pseudo(GUEST4, dst, 6, len(seg)) + seg)
    return eth(ip4(seg[:16] + struct.pack("!H", c) + seg[18:], 6, dst))


def icmp_echo(dst: str, payload=b"ping", ident=0x4242, seq=1) -> bytes:
    msg = struct.pack("!BBHHH", 8, 0, 0, ident, seq) + payload
    return eth(ip4(msg[:2] + struct.pack("!H", csum(msg)) + msg[4:], 1, dst))


def arp_request(tpa: str) -> bytes:
    body = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, GUEST_MAC,
                       ipaddress.IPv4Address(GUEST4).packed, b"\0" * 6,
                       ipaddress.IPv4Address(tpa).packed)
    return eth(body, ethertype=0x0806, dst=b"\xff" * 6)


KNOB_SOCKET_ERR, KNOB_DGRAM_SEND_ERR, KNOB_ACCEPT_ERR, KNOB_EPOLL_ERR, KNOB_UDP_OFFLOAD = 0, 4, 8, 9, 12
UDP_OFF_NO_SEGMENT, UDP_OFF_NO_GRO, UDP_OFF_SEGMENT_EINVAL, UDP_OFF_SEGMENT_EIO = 1, 2, 4, 8
ERRNO_EMFILE, ERRNO_ENFILE = 6, 7  # indexes into fake_sys.c's fake_errnos[]
BUDGET_9, FD_LIMIT_8 = 5, 2  # indexes into harness_budgets[] and harness_fd_limits[]


class Seed:
    """An input for the harness, built one operation at a time; budget and
    fd_limit index fuzz_frames.c's harness_budgets[] and harness_fd_limits[]; kernel is
    byte 2 (NO_USO)."""

    def __init__(self, config=0, mtu_index=0, budget=0, fd_limit=0, kernel=0):
        self.b = bytearray([config, mtu_index | budget << 3 | fd_limit << 6, kernel])

    def frame(self, f: bytes, poll=True):
        self.b += bytes([OP_FRAME]) + struct.pack("!H", len(f)) + f
        if poll:
            self.poll()
        return self

    def vnet_frame(self, what: int, gso_size: int, f: bytes, poll=True):
        self.b += bytes([OP_VNET_FRAME, what]) + struct.pack("!HH", gso_size, len(f)) + f
        if poll:
            self.poll()
        return self

    def poll(self, budget=64):
        self.b += bytes([OP_POLL, budget - 1])
        return self

    def time(self, unit: int, amount: int):
        self.b += bytes([OP_TIME, unit]) + struct.pack("!H", amount)
        return self

    def stream(self, data: bytes, sel=0):
        self.b += bytes([OP_STREAM, sel]) + struct.pack("!H", len(data)) + data
        return self.poll()

    def dgram(self, data: bytes, sel=0, origin=0):
        self.b += bytes([OP_DGRAM, sel, origin]) + struct.pack("!H", len(data)) + data
        return self.poll()

    def event(self, what: int, sel=0):
        self.b += bytes([OP_SOCK_EVENT, sel, what])
        return self.poll()

    def op(self, *raw: int):
        self.b += bytes(raw)
        return self


def harness_out(binary: str, seed: Seed) -> list[bytes]:
    """Frames the data plane writes when the harness runs seed."""
    path = f"/tmp/mkseeds-{os.getpid()}"
    with open(path, "wb") as f:
        f.write(seed.b)
    try:
        r = subprocess.run([binary, "-runs=1", path], env=dict(os.environ, FUZZ_TRACE="1"),
                           capture_output=True, text=True, check=True)
    finally:
        os.unlink(path)
    return [bytes.fromhex(line[4:]) for line in r.stderr.splitlines() if line.startswith("OUT ")]


def last_syn(frames: list[bytes]) -> bytes:
    """The last SYN (or SYN-ACK) frame the data plane sent."""
    for f in reversed(frames):
        if f[12:14] == b"\x08\x00" and f[23] == 6 and f[14 + (f[14] & 15) * 4 + 13] & 2:
            return f
    raise SystemExit("mkseeds: the data plane sent no SYN; has the harness changed?")


def last_syn_seq(frames: list[bytes]) -> int:
    """Sequence number of the last SYN (or SYN-ACK) the data plane sent."""
    f = last_syn(frames)
    return struct.unpack("!I", f[14 + (f[14] & 15) * 4 + 4:][:4])[0]


def scenarios(binary: str) -> dict[str, Seed]:
    out = {}

    out["ping"] = (Seed().frame(arp_request(GW4)).frame(icmp_echo(GW4))
                   .frame(icmp_echo(DNS4)).frame(icmp_echo(REMOTE4))
                   .dgram(struct.pack("!BBHHH", 0, 0, 0, 0x4242, 1) + b"ping")
                   .time(3, 2).poll())

    s = Seed(config=8).frame(udp(DNS4, 33333, 53, bytes.fromhex(
        "1234010000010000000000000378797a0000010001")))
    out["dns"] = s.dgram(bytes.fromhex("1234818000010001000000000378797a0000010001"
                                       "c00c000100010000003c00040a000001")).time(2, 20).poll()

    out["udp-icmp"] = (Seed().frame(udp(REMOTE4, 40000, 9, b"hello"))
                       .dgram(b"world").event(EV_ICMP).event(EV_ERROR).time(3, 2).poll())

    discover = bytes([1, 1, 6, 0]) + b"\x39\x03\xf3\x26" + b"\0" * 20 + GUEST_MAC + \
        b"\0" * 202 + b"\x63\x82\x53\x63" + bytes([53, 1, 1, 255])
    out["dhcp"] = (Seed().frame(udp("255.255.255.255", 68, 67, discover, src="0.0.0.0"))
                   .op(OP_CTL, 0).op(OP_CTL, 1).op(*struct.pack("!H", 342))
                   .op(*(GUEST_MAC + GW_MAC + b"\x08\x00" + b"\x45" + b"\0" * 327)).poll())

    payload = icmp_echo(GW4, payload=bytes(range(256)) * 4)[14 + 20:]
    chunks = [payload[i:i + 400] for i in range(0, len(payload), 400)]
    s = Seed()
    for i, c in enumerate(chunks):
        more = 0x2000 if i < len(chunks) - 1 else 0
        s.frame(eth(ip4(c, 1, GW4, ident=7, frag=more | (i * 50))), poll=False)
    s.frame(eth(ip4(chunks[1], 1, GW4, ident=7, frag=0x2000 | 25)))  # overlapping
    out["fragments"] = s.time(2, 40).poll()

    # TCP out: guest connects to a host, data both ways, both sides close
    syn = tcp(REMOTE4, 40001, 80, 1000, 0, "S",
              options=bytes([2, 4, 5, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7]))
    s = Seed().frame(syn).event(EV_CONNECTED)
    isn = last_syn_seq(harness_out(binary, s))
    s.frame(tcp(REMOTE4, 40001, 80, 1001, isn + 1, "A"))
    s.frame(tcp(REMOTE4, 40001, 80, 1001, isn + 1, "PA", b"GET / HTTP/1.0\r\n\r\n"))
    s.stream(b"HTTP/1.0 200 OK\r\n\r\n" + b"x" * 3000)
    s.frame(tcp(REMOTE4, 40001, 80, 1019, isn + 1 + 3019, "A"))
    s.event(EV_EOF)
    s.frame(tcp(REMOTE4, 40001, 80, 1019, isn + 1 + 3020, "FA"))
    out["tcp-out"] = s.time(2, 70).poll()

    # TCP out with loss: twelve segments arrive ahead of a hole (held out of
    # order, SACKed), then the hole, then the host reads everything
    s = Seed().frame(syn).event(EV_CONNECTED)
    isn = last_syn_seq(harness_out(binary, s))
    s.frame(tcp(REMOTE4, 40001, 80, 1001, isn + 1, "A"))
    for i in range(12):
        s.frame(tcp(REMOTE4, 40001, 80, 2001 + 1000 * i, isn + 1, "PA", bytes([65 + i]) * 1000), poll=False)
    s.poll()
    s.frame(tcp(REMOTE4, 40001, 80, 1001, isn + 1, "PA", b"h" * 1000))
    s.event(EV_DRAINED)
    out["tcp-ooo"] = s.time(2, 70).poll()

    # the same, the host resetting mid-stream, then a refused connection
    s = Seed().frame(syn).event(EV_CONNECTED)
    isn = last_syn_seq(harness_out(binary, s))
    s.frame(tcp(REMOTE4, 40001, 80, 1001, isn + 1, "A")).stream(b"y" * 1000)
    s.event(EV_RESET)
    s.op(OP_KNOB, 1, 2).frame(tcp(REMOTE4, 40002, 81, 5, 0, "S"))
    out["tcp-reset"] = s.time(2, 70).poll()

    # TCP in: a host client connects to the forward (guest port 8080)
    s = Seed().frame(arp_request(GW4)).op(OP_ACCEPT).poll()
    frames = harness_out(binary, s)
    isn = last_syn_seq(frames)
    sport = struct.unpack("!H", last_syn(frames)[34:36])[0]
    src = str(ipaddress.IPv4Address(last_syn(frames)[26:30]))

    def tin(seq, ack, flags, data=b""):
        seg = struct.pack("!HHIIBBHHH", 8080, sport, seq, ack & 0xFFFFFFFF, 5 << 4,
                          sum({"F": 1, "S": 2, "R": 4, "P": 8, "A": 16}[f] for f in flags),
                          65535, 0, 0) + data
        c = csum(pseudo(GUEST4, src, 6, len(seg)) + seg)
        return eth(ip4(seg[:16] + struct.pack("!H", c) + seg[18:], 6, src))

    s.frame(tin(5000, isn + 1, "SA"))
    s.stream(b"hello guest").frame(tin(5001, isn + 12, "PA", b"hello host"))
    s.event(EV_EOF).frame(tin(5011, isn + 13, "FA"))
    out["tcp-in"] = s.time(2, 70).poll()

    out["udp-fwd"] = (Seed().dgram(b"to the guest", sel=0xFF, origin=1)
                      .frame(udp("198.51.100.7", 5353, 1281, b"reply")).op(OP_FWD, 3).poll())

    # host sockets (flow.c): a budget of 9, of which the two listeners take
    # two and the guest's flows may hold seven.  Eight new UDP flows at once:
    # one refused (nothing idle to recycle), one touched again from each
    # side, a refused SYN, a forwarded connection that finds the budget used
    # up (the listener pauses, twice); two seconds later the listener
    # accepts, and a UDP flow, a SYN and a ping each recycle the least
    # recently used flow
    s = Seed(budget=BUDGET_9)
    for i in range(8):
        s.frame(udp(REMOTE4, 41000 + i, 9, b"u%d" % i), poll=False)
    s.poll().frame(udp(REMOTE4, 41002, 9, b"again")).dgram(b"reply", sel=1)
    s.frame(tcp(REMOTE4, 40010, 80, 1, 0, "S")).op(OP_ACCEPT).poll().time(0, 150).poll()
    s.time(2, 2).poll().poll()
    s.frame(udp(REMOTE4, 41100, 9, b"new")).frame(tcp(REMOTE4, 40011, 80, 1, 0, "S"))
    s.frame(icmp_echo(REMOTE4)).op(OP_ACCEPT, OP_ACCEPT).poll()
    out["sock-budget"] = s.op(OP_API, 0).time(2, 70).poll()

    # no budget, but only eight descriptors: socket() and accept4() say
    # EMFILE; refused while every flow is fresh, recycled once idle
    s = Seed(fd_limit=FD_LIMIT_8)
    for i in range(6):
        s.frame(udp(REMOTE4, 42000 + i, 9, b"e%d" % i), poll=False)
    s.poll().time(2, 2).poll().frame(udp(REMOTE4, 42100, 9, b"new"))
    s.op(OP_ACCEPT).poll().op(OP_ACCEPT, OP_ACCEPT, OP_ACCEPT, OP_ACCEPT).poll()
    out["sock-emfile"] = s.time(0, 150).poll().time(2, 70).poll()

    # accept4() failing with EMFILE, then ENFILE: the listener pauses and
    # tries again after the pause (once more when epoll refuses it back);
    # socket() saying ENFILE drops a datagram
    s = Seed().frame(arp_request(GW4)).op(OP_KNOB, KNOB_ACCEPT_ERR, ERRNO_EMFILE, OP_ACCEPT).poll().poll()
    s.op(OP_KNOB, KNOB_EPOLL_ERR, 1).time(0, 150).poll().op(OP_KNOB, KNOB_EPOLL_ERR, 0)
    s.time(0, 150).poll().op(OP_KNOB, KNOB_ACCEPT_ERR, ERRNO_ENFILE).time(0, 150).poll()
    s.op(OP_KNOB, KNOB_SOCKET_ERR, ERRNO_ENFILE).frame(udp(REMOTE4, 43000, 9, b"x"))
    s.op(OP_KNOB, KNOB_ACCEPT_ERR, 0, OP_KNOB, KNOB_SOCKET_ERR, 0).time(0, 150).poll()
    out["accept-no-fd"] = s.time(2, 70).poll()

    # the guest's loopback spliced to the host's (pasta's -T): a client in the
    # namespace connects, the host side's connect() completes, bytes both
    # ways through the pipes, the host fills up and drains, FINs both ways;
    # a second connection is reset by the host, a third refused
    s = Seed().op(OP_FWD, FWD_SPLICE_TCP << 1, 0x23, 0x29).op(OP_NS_CONNECT).poll()
    s.event(EV_CONNECTED, sel=1).stream(b"to the host" * 100, sel=0).stream(b"to the namespace", sel=1)
    s.op(OP_KNOB, 3, 1).stream(b"z" * 5000, sel=0).event(EV_DRAINED, sel=1).op(OP_KNOB, 3, 0)
    s.event(EV_EOF, sel=0).event(EV_EOF, sel=1)
    s.op(OP_NS_CONNECT).poll().event(EV_CONNECTED, sel=1).stream(b"x", sel=0).event(EV_RESET, sel=1)
    s.op(OP_NS_CONNECT).poll().event(EV_REFUSED, sel=1)
    out["splice-tcp"] = s.time(2, 70).poll()

    # pasta's -U: datagrams from two clients in the namespace, the host's
    # answers back; then idle
    s = Seed().op(OP_FWD, FWD_SPLICE_UDP << 1, 0x23, 0x2a)
    s.dgram(b"query", sel=0xFE, origin=0).dgram(b"", sel=0xFE, origin=1).dgram(b"answer", sel=0)
    out["splice-udp"] = s.event(EV_ERROR, sel=0).time(2, 70).poll()

    # pasta's network model: ARP for any address but the guest's, DNS to the
    # --dns-forward address, a connection to the --map-guest-addr address,
    # ping of the gateway (the host's loopback)
    s = Seed(config=PASTA_MODEL | 8).frame(arp_request("10.0.2.77")).frame(arp_request(GUEST4))
    s.frame(udp("169.254.1.1", 33334, 53, bytes.fromhex("1234010000010000000000000378797a0000010001")))
    s.frame(tcp("169.254.1.2", 40020, 80, 1, 0, "S")).event(EV_CONNECTED).frame(icmp_echo(GW4))
    out["pasta-model"] = s.time(2, 70).poll()

    # pasta's DHCPv6: a SOLICIT to ff02::1:2 queued for Python and taken,
    # then a router solicitation (its answer says Managed)
    guest_ll, servers = "fe80::ff:fe00:64", "ff02::1:2"
    solicit = b"\x01\x12\x34\x56" + struct.pack("!HH", 1, 10) + b"\0\x03\0\x01" + GUEST_MAC
    rs = bytes([133, 0, 0, 0]) + b"\0" * 4
    s = Seed(config=PASTA_MODEL | IPV6).frame(ip6(udp6(guest_ll, servers, 546, 547, solicit), 17, guest_ll, servers))
    s.op(OP_CTL, 0).frame(ip6(icmp6(guest_ll, "ff02::2", rs), 58, guest_ll, "ff02::2", hops=255))
    out["pasta-dhcpv6"] = s.poll()
    return out


def udp_scenarios(out: dict):
    """UDP segmentation both ways, and the fallbacks of kernels that lack it."""
    gso = VNET_CSUM | VNET_UDP_L4
    body = bytes(range(256)) * 14  # 3584 bytes
    s = Seed(config=1).vnet_frame(gso, 1000, udp_super(GW4, 40000, 9, body))
    s.vnet_frame(gso, 30, udp_super(GW4, 40000, 9, body[:3000]))          # 100 segments: cut here
    s.vnet_frame(gso, 1000, udp_super(GW4, 40000, 9, body[:1000]))        # a lie: one segment
    for _ in range(3):                                                      # a run, merged
        s.frame(udp(GW4, 40000, 9, body[:500]), poll=False)
    s.frame(udp(GW4, 40000, 9, body[:120]))
    s.dgram(body[:700], origin=0x80 | 18 << 2)                              # GRO'd, gso 667
    for _ in range(4):                                                      # a run from the host
        s.op(OP_DGRAM, 0, 0, *struct.pack("!H", 300)).op(*body[:300])
    out["udp-gso"] = s.poll().time(3, 2).poll()

    s = Seed(config=1).op(OP_KNOB, KNOB_UDP_OFFLOAD, UDP_OFF_SEGMENT_EINVAL)
    s.vnet_frame(gso, 1000, udp_super(GW4, 40001, 9, body))                # refused: cut here
    s.op(OP_KNOB, KNOB_UDP_OFFLOAD, UDP_OFF_SEGMENT_EIO)
    for _ in range(3):
        s.frame(udp(GW4, 40001, 9, body[:400]), poll=False)
    out["udp-gso-refused"] = s.poll()

    s = Seed(config=1, mtu_index=2).op(OP_KNOB, KNOB_UDP_OFFLOAD, UDP_OFF_NO_SEGMENT | UDP_OFF_NO_GRO)
    s.frame(udp(GW4, 40002, 9, body[:200])).dgram(body[:1500], origin=0x80 | 8 << 2)
    out["udp-old-kernel"] = s.vnet_frame(gso, 500, udp_super(GW4, 40002, 9, body[:1500]))

    # a guest's replies to a forward's client, batched: sendmmsg() with the
    # client's address (forward 2 again on guest port 5352, an IPv4 listener)
    s = Seed(config=1).frame(arp_request(GW4)).op(OP_FWD, 3, OP_FWD, 2, *struct.pack("!H", 5352))
    s.dgram(b"query", sel=0xff, origin=1)
    for _ in range(3):
        s.frame(udp("198.51.100.7", 5352, 1281, body[:600]), poll=False)
    s.frame(udp("198.51.100.7", 5352, 1281, body[:100]))
    # a full socket in the middle of a batch, then a reassembled datagram
    s.op(OP_KNOB, KNOB_DGRAM_SEND_ERR, 1)
    for _ in range(3):
        s.frame(udp(GW4, 40004, 9, body[:800]), poll=False)
    s.frame(udp(GW4, 40004, 9, body[:90])).op(OP_KNOB, KNOB_DGRAM_SEND_ERR, 0)
    dgram = udp(GW4, 40005, 9, body[:2000])[14 + 20:]
    s.frame(eth(ip4(dgram[:1480], 17, GW4, ident=9, frag=0x2000)), poll=False)
    s.frame(eth(ip4(dgram[1480:], 17, GW4, ident=9, frag=1480 // 8)))
    # a run from the host whose last datagram is shorter
    s.op(OP_DGRAM, 0, 0, *struct.pack("!H", 400)).op(*body[:400])
    s.op(OP_DGRAM, 0, 0, *struct.pack("!H", 400)).op(*body[:400])
    out["udp-fwd-batch"] = s.dgram(body[:150])

    s = Seed(config=1, kernel=NO_USO).frame(udp(GW4, 40003, 9, b"x"))      # TAP without USO
    s.vnet_frame(gso, 1000, udp_super(GW4, 40003, 9, body))
    s.dgram(body[:1500], origin=0x80 | 8 << 2)
    out["udp-tap-no-uso"] = s


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--capture", help="directory of frames captured from the frame tests")
    ap.add_argument("--binary", default="tests/fuzz/out/fuzz_frames")
    ap.add_argument("--out", default="tests/fuzz/corpus")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)

    seeds = scenarios(args.binary)
    udp_scenarios(seeds)
    if args.capture:
        for name in sorted(os.listdir(args.capture)):
            data = open(os.path.join(args.capture, name), "rb").read()
            s, off = Seed(), 0
            while off + 2 <= len(data):
                n = struct.unpack("!H", data[off:off + 2])[0]
                s.frame(data[off + 2:off + 2 + n])
                off += 2 + n
            seeds["frames-" + name] = s
    for name, s in seeds.items():
        with open(os.path.join(args.out, name), "wb") as f:
            f.write(s.b)
    print(f"mkseeds: {len(seeds)} seeds in {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
