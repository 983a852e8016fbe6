"""UDP segmentation both ways (csrc/udp.c, csrc/tap.c): batching, UDP_SEGMENT,
UDP_GRO, TUN_F_USO4/6 with VIRTIO_NET_HDR_GSO_UDP_L4, and their fallbacks.

Two levels, as in test_udp.py:

- frames: a slirpd._dp instance on a socket pair carrying virtio-net headers
  (tests/lib/link.py's "pair" link, which the data plane takes to speak
  every header: USO on) against real UDP sockets on the sandbox's 127.0.0.1.
  A GSO super-datagram from the "guest" must reach the host server as
  datagrams cut exactly at gso_size, the last one shorter; datagrams from the
  host must come back as GSO frames that, cut at their gso_size as the
  guest's kernel cuts them, give back exactly the datagrams sent.  Every lie
  a guest can tell in a GSO_UDP_L4 header is its own counted drop.
- guest: a real guest namespace whose kernel negotiates USO with the real
  TAP: 100,000 datagrams each way, in flow-controlled bursts (plain sends of
  varied sizes, runs of one size, and UDP_SEGMENT sends on both sides), each
  checked for its sequence number and content; zero-length and 65,507-byte
  datagrams both ways; the same with every offload turned off
  (SLIRPD_OFFLOADS_OFF), the path a kernel older than 6.2 takes.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
import threading
import time
import pytest

from lib.frames import GUEST4, GW4, eth, inet_csum, ip4
from lib.link import Link

UDP = 17
SOL_UDP = 17
UDP_SEGMENT = 103
UDP_GRO = 104
NEEDS_CSUM = 1
GSO_NONE, GSO_TCPV4, GSO_UDP_L4, GSO_ECN = 0, 1, 5, 0x80
L4_OFF = 14 + 20
ALL_OFF = "uso,udp_gso,udp_gro"
SO_RCVBUFFORCE = 33  # not in the socket module; the test runs as root


# --- frames ------------------------------------------------------------------

def vnet(flags=0, gso_type=GSO_NONE, hdr_len=0, gso_size=0, csum_start=0, csum_offset=0) -> bytes:
    """struct virtio_net_hdr_v1, host byte order."""
    return struct.pack("=BBHHHHH", flags, gso_type, hdr_len, gso_size, csum_start, csum_offset, 0)


def unvnet(hdr: bytes) -> dict:
    flags, gso_type, hdr_len, gso_size, start, offset, _ = struct.unpack("=BBHHHHH", hdr)
    return dict(flags=flags, gso_type=gso_type, hdr_len=hdr_len, gso_size=gso_size, csum_start=start,
                csum_offset=offset)


def pseudo4(src, dst, length: int) -> bytes:
    return (ipaddress.IPv4Address(src).packed + ipaddress.IPv4Address(dst).packed
            + struct.pack("!BBH", 0, UDP, length))


def partial_sum(src, dst, length: int) -> int:
    """What checksum offload leaves in the field: the pseudo-header sum, not complemented."""
    return ~inet_csum(pseudo4(src, dst, length)) & 0xFFFF


def super_datagram(payload: bytes, dport: int, sport: int = 40100, udp_len=None, frag=0x4000,
                   proto=UDP) -> bytes:
    """An IPv4 frame holding payload as one UDP super-datagram, its checksum
    field the partial sum, as a guest kernel hands a UDP_SEGMENT send to a
    TAP with USO."""
    length = 8 + len(payload)
    seg = struct.pack("!HHHH", sport, dport, length if udp_len is None else udp_len,
                      partial_sum(GUEST4, GW4, length)) + payload
    return eth(0x0800, ip4(seg, proto=proto, frag=frag))


def gso_hdr(gso_size: int, **over) -> bytes:
    fields = dict(flags=NEEDS_CSUM, gso_type=GSO_UDP_L4, hdr_len=L4_OFF + 8, gso_size=gso_size,
                  csum_start=L4_OFF, csum_offset=6)
    fields.update(over)
    return vnet(**fields)


def pattern(n: int, salt: int) -> bytes:
    return bytes((i * 31 + salt * 7 + (i >> 8)) & 0xFF for i in range(n))


class Server:
    """A UDP socket on the sandbox's 127.0.0.1 with a large receive buffer."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 8 << 20)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(5)
        self.port = self.sock.getsockname()[1]

    def recv_all(self, n: int) -> list[bytes]:
        return [self.sock.recvfrom(70000)[0] for _ in range(n)]

    def close(self):
        self.sock.close()


@pytest.fixture
def server():
    s = Server()
    yield s
    s.close()


def vlink(offloads=()) -> Link:
    return Link("pair", vnet_hdr=True, cfg_over={"offloads_off": tuple(offloads)})


def frames_back(link: Link, want: int, timeout: float = 5.0) -> list[tuple[dict, bytes]]:
    """Poll until want frames came back: (virtio-net header fields, frame) each."""
    out = []
    deadline = time.monotonic() + timeout
    while len(out) < want and time.monotonic() < deadline:
        link.dp.poll()
        f = link.recv(timeout=0.02)
        if f is not None:
            out.append((unvnet(link.last_vnet), f))
    return out


def cut_as_guest(hdr: dict, frame: bytes, sport: int, dport: int) -> list[bytes]:
    """Check a UDP frame to the guest as the guest's kernel would and return
    the datagrams it delivers: one, or a GSO frame cut at its gso_size."""
    assert frame[12:14] == b"\x08\x00"
    ip = frame[14:]
    assert ip[0] == 0x45 and inet_csum(ip[:20]) == 0 and ip[9] == UDP
    tot = struct.unpack("!H", ip[2:4])[0]
    assert struct.unpack("!H", ip[6:8])[0] & 0x3FFF == 0, "a fragment"
    l4 = ip[20:tot]
    s, d, length, c = struct.unpack("!HHHH", l4[:8])
    assert (s, d, length) == (sport, dport, len(l4)), "ports or UDP length"
    if hdr["flags"] & NEEDS_CSUM:
        assert (hdr["csum_start"], hdr["csum_offset"]) == (L4_OFF, 6)
        assert c == partial_sum(GW4, GUEST4, len(l4)), "not the pseudo-header sum"
    else:
        assert inet_csum(pseudo4(GW4, GUEST4, len(l4)) + l4) == 0, "bad UDP checksum"
    payload = l4[8:]
    if hdr["gso_type"] == GSO_NONE:
        assert len(frame) - 14 <= 1500
        return [payload]
    assert hdr["gso_type"] == GSO_UDP_L4 and hdr["flags"] & NEEDS_CSUM
    g = hdr["gso_size"]
    assert hdr["hdr_len"] == L4_OFF + 8 and 0 < g <= 1500 - 28 and len(payload) > g
    return [payload[i:i + g] for i in range(0, len(payload), g)]


@pytest.mark.parametrize("offloads", [(), ("udp_gso",)], ids=["udp_segment", "cut_here"])
@pytest.mark.parametrize("total,gso", [(10 * 1000 + 345, 1000), (4 * 1472, 1472), (100 * 100 + 1, 100)],
                         ids=["last_shorter", "last_full", "over_64_segments"])
def test_guest_gso_cut_at_gso_size(server, offloads, total, gso):
    """A guest's GSO super-datagram reaches the host as datagrams of exactly
    gso_size bytes, the last the rest: sent with UDP_SEGMENT where the socket
    takes it (up to 64 segments), else cut by slirpd."""
    lk = vlink(offloads)
    try:
        payload = pattern(total, 1)
        lk.send(super_datagram(payload, server.port), gso_hdr(gso))
        lk.pump(1)
        segs = (total + gso - 1) // gso
        got = server.recv_all(segs)
        assert got == [payload[i:i + gso] for i in range(0, total, gso)]
        assert [len(g) for g in got[:-1]] == [gso] * (segs - 1) and 0 < len(got[-1]) <= gso
        c = lk.dp.counters()
        assert c["udp_gso_in"] == 1 and c["vnet_gso_in"] == 1
        assert c["udp_gso_sent"] == (1 if not offloads and segs <= 64 else 0), c
        assert not {k: v for k, v in c.items() if k.startswith("drop_") and v}
        server.sock.settimeout(0.2)
        with pytest.raises(socket.timeout):
            server.sock.recvfrom(70000)  # nothing more
    finally:
        lk.close()


def open_flow(lk: Link, server: Server, sport: int = 40200):
    """The guest sends one datagram to server: returns the flow socket's address."""
    seg = struct.pack("!HHHH", sport, server.port, 8 + 5, 0) + b"hello"
    lk.send(eth(0x0800, ip4(seg, proto=UDP)))
    lk.pump(1)
    data, peer = server.sock.recvfrom(100)
    assert data == b"hello"
    return peer


@pytest.mark.parametrize("offloads,frames", [((), 1), (("uso",), 11)], ids=["one_gso_frame", "no_uso"])
def test_host_run_coalesced(server, offloads, frames):
    """Datagrams of one size read together from a flow's socket, and a shorter
    last one, go to the guest as one GSO frame cut at their size; without USO
    as one frame each."""
    lk = vlink(offloads)
    try:
        peer = open_flow(lk, server)
        sent = [pattern(1000, i) for i in range(10)] + [pattern(321, 10)]
        for d in sent:
            server.sock.sendto(d, peer)
        back = frames_back(lk, frames)
        assert len(back) == frames
        got = [d for hdr, f in back for d in cut_as_guest(hdr, f, server.port, 40200)]
        assert got == sent
        c = lk.dp.counters()
        assert c["udp_gso_out"] == (1 if frames == 1 else 0)
        assert c["udp_gso_out_datagrams"] == (11 if frames == 1 else 0)
        assert lk.recv(0.1) is None
    finally:
        lk.close()


def test_host_run_breaks_at_other_size(server):
    """A run ends at a datagram of another size or an empty one: sizes 1000 x3,
    1200, 0, 500 x2 give frames of 3, 1, 1 and 2 datagrams, in order."""
    lk = vlink()
    try:
        peer = open_flow(lk, server)
        sent = [pattern(1000, i) for i in range(3)] + [pattern(1200, 3), b""] + [pattern(500, i) for i in (5, 6)]
        for d in sent:
            server.sock.sendto(d, peer)
        back = frames_back(lk, 4)
        assert [len(cut_as_guest(h, f, server.port, 40200)) for h, f in back] == [3, 1, 1, 2]
        assert [d for h, f in back for d in cut_as_guest(h, f, server.port, 40200)] == sent
    finally:
        lk.close()


@pytest.mark.parametrize("offloads,gro_in,frames", [((), 1, 1), (("udp_gro",), 0, 1), (("uso",), 1, 13)],
                         ids=["gro_to_gso", "kernel_cuts", "cut_here"])
def test_host_gro_buffer(server, offloads, gro_in, frames):
    """A host sender's UDP_SEGMENT buffer reaches the flow's socket coalesced
    (UDP_GRO) and the guest as one GSO frame with the same gso_size; without
    UDP_GRO the kernel cuts it and slirpd coalesces the run again; without USO
    slirpd cuts it into one frame per datagram, exactly at gso_size."""
    lk = vlink(offloads)
    try:
        peer = open_flow(lk, server)
        data = pattern(12 * 1100 + 99, 4)
        server.sock.sendmsg([data], [(SOL_UDP, UDP_SEGMENT, struct.pack("=H", 1100))], 0, peer)
        back = frames_back(lk, frames)
        assert len(back) == frames
        got = [d for h, f in back for d in cut_as_guest(h, f, server.port, 40200)]
        assert got == [data[i:i + 1100] for i in range(0, len(data), 1100)]
        if frames == 1:
            assert back[0][0]["gso_size"] == 1100
        c = lk.dp.counters()
        assert c["udp_gro_in"] == gro_in, c
        assert lk.recv(0.1) is None
    finally:
        lk.close()


def test_guest_datagrams_batched(server):
    """Datagrams of one flow in one receive batch leave with one sendmmsg():
    a run of one size as one UDP_SEGMENT message, cut by the kernel exactly
    as the guest sent them, in order, with other flows' datagrams between."""
    other = Server()
    lk = vlink()
    try:
        sent, sent_other = [], []
        for i in range(20):
            size = 800 if i < 15 else 300 + i  # a run of 15, then four of other sizes
            d = pattern(size, i)
            seg = struct.pack("!HHHH", 40300, server.port, 8 + size, 0) + d
            lk.send(eth(0x0800, ip4(seg, proto=UDP)))
            sent.append(d)
            if i % 5 == 0:
                o = pattern(99, 100 + i)
                lk.send(eth(0x0800, ip4(struct.pack("!HHHH", 40301, other.port, 8 + 99, 0) + o, proto=UDP)))
                sent_other.append(o)
        lk.pump(len(sent) + len(sent_other))
        assert server.recv_all(len(sent)) == sent
        assert other.recv_all(len(sent_other)) == sent_other
        c = lk.dp.counters()
        assert c["udp_gso_sent"] >= 1, c
        assert not {k: v for k, v in c.items() if k.startswith("drop_") and v}
    finally:
        lk.close()
        other.close()


# Each lie a guest can tell in a GSO_UDP_L4 header, or in the super-datagram
# it describes: (frame, header) builders and the drop each must count
BIG = pattern(3000, 9)
GSO_LIES = {
    "gso_size_zero": (lambda p: super_datagram(BIG, p), lambda: gso_hdr(0), "drop_vnet_gso"),
    "gso_size_beyond_frame": (lambda p: super_datagram(BIG, p), lambda: gso_hdr(5000), "drop_vnet_gso"),
    "hdr_len_beyond_frame": (lambda p: super_datagram(BIG, p), lambda: gso_hdr(1000, hdr_len=0xF000),
                             "drop_vnet_gso"),
    "without_needs_csum": (lambda p: super_datagram(BIG, p), lambda: gso_hdr(1000, flags=0), "drop_vnet_gso"),
    "ecn_bit": (lambda p: super_datagram(BIG, p), lambda: gso_hdr(1000, gso_type=GSO_UDP_L4 | GSO_ECN),
                "drop_vnet_gso"),
    "on_tcp": (lambda p: super_datagram(BIG, p, proto=6), lambda: gso_hdr(1000), "drop_vnet_gso"),
    "on_fragment": (lambda p: super_datagram(BIG, p, frag=0x2000), lambda: gso_hdr(1000), "drop_vnet_gso"),
    "csum_start_not_udp_header": (lambda p: super_datagram(BIG, p), lambda: gso_hdr(1000, csum_start=14,
                                                                                   csum_offset=10),
                                  "drop_vnet_gso"),
    "csum_offset_not_udp_checksum": (lambda p: super_datagram(BIG, p), lambda: gso_hdr(1000, csum_offset=4),
                                     "drop_vnet_gso"),
    "csum_offset_beyond_frame": (lambda p: super_datagram(BIG, p), lambda: gso_hdr(1000, csum_offset=0xFFF0),
                                 "drop_vnet_hdr"),
    "udp_length_short": (lambda p: super_datagram(BIG, p, udp_len=8 + 1000), lambda: gso_hdr(1000),
                         "drop_vnet_gso"),
    "udp_length_below_header": (lambda p: super_datagram(BIG, p, udp_len=4), lambda: gso_hdr(1000),
                                "drop_udp_malformed"),
    "udp_length_beyond_packet": (lambda p: super_datagram(BIG, p, udp_len=8 + 3001), lambda: gso_hdr(1000),
                                 "drop_udp_malformed"),
    "payload_not_above_gso_size": (lambda p: super_datagram(BIG[:1000], p), lambda: gso_hdr(1000),
                                   "drop_vnet_gso"),
    "over_128_segments": (lambda p: super_datagram(pattern(129 * 8, 1), p), lambda: gso_hdr(8),
                          "drop_vnet_gso"),
    "gso_size_over_mtu": (lambda p: super_datagram(pattern(2 * 1473, 1), p), lambda: gso_hdr(1473),
                          "drop_vnet_gso"),
}


@pytest.mark.parametrize("case", sorted(GSO_LIES))
def test_gso_udp_lie_counted(server, case):
    """Each lie is its own counted drop; nothing reaches the host, and the
    data plane still answers."""
    frame, hdr, reason = GSO_LIES[case]
    lk = vlink()
    try:
        lk.assert_dropped(frame(server.port), reason, vnet=hdr())
        server.sock.settimeout(0.2)
        with pytest.raises(socket.timeout):
            server.sock.recvfrom(70000)
    finally:
        lk.close()


def test_gso_udp_without_uso_is_a_lie(server):
    """A data plane that did not negotiate USO (the TAP refused it, or it was
    turned off) takes no GSO_UDP_L4 frame: the guest's kernel cannot send one."""
    lk = vlink(("uso",))
    try:
        lk.assert_dropped(super_datagram(BIG, server.port), "drop_vnet_gso", vnet=gso_hdr(1000))
    finally:
        lk.close()


# --- guest -------------------------------------------------------------------

BURST = 32
SIZE_RUN = 1200

# The datagram of a sequence number: its size and bytes, the same on both
# sides.  Bursts cycle through three kinds: sizes that vary (0 mod 3), a run
# of one size sent one by one (1 mod 3), a run sent with UDP_SEGMENT in
# messages of 16 (2 mod 3).
SEQ_LIB = r"""
import socket, struct, zlib
BURST, SIZE_RUN = %d, %d
BLOCK = bytes((i * 131 + (i >> 9)) & 0xFF for i in range(65536 + 4096))
def kind(seq):
    return (seq // BURST) %% 3
def size(seq):
    return 12 + (seq * 7919) %% 1389 if kind(seq) == 0 else SIZE_RUN
def datagram(seq):
    n = size(seq) - 8
    body = BLOCK[seq %% 4096: seq %% 4096 + n]
    return struct.pack("!II", seq, zlib.crc32(body)) + body
def check(data, want):
    seq, crc = struct.unpack("!II", data[:8])
    if seq != want:
        return "got %%d, expected %%d" %% (seq, want)
    if data != datagram(seq) or zlib.crc32(data[8:]) != crc:
        return "datagram %%d corrupted" %% seq
    return None
def send_burst(s, first, to=None):
    dgrams = [datagram(q) for q in range(first, first + BURST)]
    if kind(first) == 2:
        for i in range(0, BURST, 16):
            cm = [(17, 103, struct.pack("=H", SIZE_RUN))]
            if to:
                s.sendmsg([b"".join(dgrams[i:i + 16])], cm, 0, to)
            else:
                s.sendmsg([b"".join(dgrams[i:i + 16])], cm)
    else:
        for d in dgrams:
            if to:
                s.sendto(d, to)
            else:
                s.send(d)
""" % (BURST, SIZE_RUN)

# guest -> host: send bursts, each acked by the host receiver before the next
GUEST_SENDER = SEQ_LIB + r"""
import sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.connect(("10.0.2.2", int(sys.argv[1])))
count = int(sys.argv[2])
# the first packet waits for ARP, and the guest's kernel keeps only the
# newest of what queues behind it: a hello first, answered
s.settimeout(1)
for attempt in range(10):
    s.send(b"hello")
    try:
        if s.recv(16) == b"hello":
            break
    except socket.timeout:
        pass
else:
    sys.exit("no answer to hello")
s.settimeout(10)
for first in range(0, count, BURST):
    send_burst(s, first)
    try:
        ack = struct.unpack("!I", s.recv(16)[:4])[0]
    except socket.timeout:
        sys.exit("no ack for the burst at %d" % first)
    if ack != first + BURST:
        sys.exit("ack %d after the burst at %d" % (ack, first))
print("ok")
"""

# host -> guest: ask, receive bursts and ack each
GUEST_RECEIVER = SEQ_LIB + r"""
import sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
s.connect(("10.0.2.2", int(sys.argv[1])))
s.settimeout(10)
count = int(sys.argv[2])
s.send(b"start")
want = 0
while want < count:
    try:
        data = s.recv(70000)
    except socket.timeout:
        sys.exit("timeout waiting for datagram %d" % want)
    err = check(data, want)
    if err:
        sys.exit(err)
    want += 1
    if want % BURST == 0:
        s.send(struct.pack("!I", want))
print("ok", want)
"""


def seq_module():
    ns: dict = {}
    exec(SEQ_LIB, ns)
    return ns


class HostReceiver(threading.Thread):
    """Checks every datagram from the guest in order and acks each burst."""

    def __init__(self, count: int):
        super().__init__(daemon=True)
        self.sock = Server().sock
        self.port = self.sock.getsockname()[1]
        self.count, self.got, self.error = count, 0, None
        self.lib = seq_module()

    def run(self):
        try:
            while self.got < self.count:
                data, peer = self.sock.recvfrom(70000)
                if data == b"hello" and not self.got:
                    self.sock.sendto(data, peer)
                    continue
                err = self.lib["check"](data, self.got)
                if err:
                    self.error = err
                    return
                self.got += 1
                if self.got % BURST == 0:
                    self.sock.sendto(struct.pack("!I", self.got), peer)
        except OSError as e:
            self.error = f"{e!r} after {self.got}"


class HostSender(threading.Thread):
    """Sends bursts to whoever says "start", each once the last is acked."""

    def __init__(self, count: int):
        super().__init__(daemon=True)
        self.sock = Server().sock
        self.port = self.sock.getsockname()[1]
        self.count, self.error = count, None
        self.lib = seq_module()

    def run(self):
        try:
            data, peer = self.sock.recvfrom(100)
            assert data == b"start"
            for first in range(0, self.count, BURST):
                self.lib["send_burst"](self.sock, first, peer)
                ack = struct.unpack("!I", self.sock.recvfrom(16)[0][:4])[0]
                if ack != first + BURST:
                    self.error = f"ack {ack} after the burst at {first}"
                    return
        except (OSError, AssertionError) as e:
            self.error = repr(e)


OFFLOAD_CASES = {"offloads": {}, "no_uso": {"SLIRPD_OFFLOADS_OFF": "uso"},
                 "all_off": {"SLIRPD_OFFLOADS_OFF": ALL_OFF}}


@pytest.mark.timeout(300)
@pytest.mark.parametrize("case", sorted(OFFLOAD_CASES))
def test_100k_datagrams_each_way_guest(guest, start_slirpd, case):
    """100,000 datagrams guest->host and 100,000 host->guest through a real
    guest at MTU 1500, in bursts of 32 that each wait for an ack: none lost,
    reordered or corrupted.  With offloads the guest's UDP_SEGMENT sends reach
    slirpd as GSO frames and leave by UDP_SEGMENT, the host's reach the guest
    as GSO frames (from UDP_GRO reads and from coalesced runs).  Without USO
    (the TAP as a kernel before 6.2 opens it) the guest's kernel cuts its
    UDP_SEGMENT sends itself (no GSO frame reaches slirpd) and slirpd cuts
    the host's GRO'd buffers; with all off none of the offloads is used and
    the same datagrams arrive the same."""
    count = 100_000
    d = start_slirpd("--configure", str(guest.pid), env=OFFLOAD_CASES[case])

    rx = HostReceiver(count)
    rx.start()
    res = guest.python(GUEST_SENDER, str(rx.port), str(count), check=False, timeout=240)
    rx.join(timeout=10)
    rx.sock.close()
    assert res.returncode == 0 and rx.got == count and rx.error is None, (res.stdout, res.stderr, rx.error)
    up = d.counters()

    tx = HostSender(count)
    tx.start()
    res = guest.python(GUEST_RECEIVER, str(tx.port), str(count), check=False, timeout=240)
    tx.join(timeout=10)
    tx.sock.close()
    assert res.returncode == 0 and res.stdout.split() == ["ok", str(count)] and tx.error is None, \
        (res.stdout, res.stderr, tx.error)
    c = d.counters()

    drops = {k: v for k, v in c.items() if k.startswith("drop_") and v and k != "drop_ipv6"}
    assert not drops, drops
    if case == "offloads":
        assert up["udp_gso_in"] > 0 and up["udp_gso_sent"] > 0, up
        assert c["udp_gro_in"] > 0 and c["udp_gso_out"] > 0, c
    elif case == "no_uso":
        assert up["udp_gso_in"] == 0 and up["vnet_gso_in"] == 0, up
        assert up["udp_gso_sent"] > 0, up  # runs of the guest's datagrams, merged here
        assert c["udp_gro_in"] > 0 and c["udp_gso_out"] == 0 and c["vnet_gso_out"] == 0, c
    else:
        for k in ("udp_gso_in", "udp_gso_sent", "udp_gro_in", "udp_gso_out", "vnet_gso_in", "vnet_gso_out"):
            assert c[k] == 0, (k, c)


EDGE_CLIENT = r"""
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
s.connect(("10.0.2.2", int(sys.argv[1])))
s.settimeout(2)
for size in (0, 65507, 0, 1, 65507):
    data = bytes((i * 7 + size) & 0xFF for i in range(size))
    for attempt in range(3):
        s.send(data)
        try:
            back = s.recv(70000)
        except socket.timeout:
            continue
        if back != data:
            sys.exit("datagram of %d bytes came back as %d bytes" % (size, len(back)))
        break
    else:
        sys.exit("no echo of %d bytes" % size)
print("ok")
"""


@pytest.mark.parametrize("mtu", [1500, 65520])
@pytest.mark.parametrize("case", sorted(OFFLOAD_CASES))
def test_zero_and_max_datagrams_guest(guest, start_slirpd, mtu, case):
    """Zero-length and 65,507-byte datagrams go guest->host and back intact,
    fragmented by the guest and by slirpd at MTU 1500, whole at 65520."""
    d = start_slirpd("--configure", f"--mtu={mtu}", str(guest.pid), env=OFFLOAD_CASES[case])
    srv = Server()
    seen = []

    def echo():
        try:
            while True:
                data, peer = srv.sock.recvfrom(70000)
                seen.append(len(data))
                srv.sock.sendto(data, peer)
        except OSError:
            pass

    t = threading.Thread(target=echo, daemon=True)
    t.start()
    try:
        res = guest.python(EDGE_CLIENT, str(srv.port), check=False)
    finally:
        srv.sock.close()
        t.join(timeout=5)
    assert res.stdout.strip() == "ok", (res.stdout, res.stderr)
    assert {0, 1, 65507} <= set(seen)
    c = d.counters()
    assert c["drop_udp_send"] == 0 and c["drop_udp_truncated"] == 0 and c["drop_vnet_gso"] == 0, c


# --- IPv6 ----------------------------------------------------------------------

def test_guest_gso_ipv6_cut_at_gso_size():
    """The same over IPv6: a GSO_UDP_L4 super-datagram (the checksum offload
    at the UDP header after the 40-byte IPv6 header) from the guest to the
    gateway's fd00::2 reaches a server on the host's ::1 cut at gso_size."""
    from lib.frames import frame6, GUEST6, GW6, ip6
    from lib.link import V6_CFG

    srv = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    srv.bind(("::1", 0))
    srv.settimeout(5)
    lk = Link("pair", vnet_hdr=True, cfg_over=V6_CFG)
    try:
        payload = pattern(5 * 1200 + 7, 3)
        length = 8 + len(payload)
        pseudo = (ipaddress.IPv6Address(GUEST6).packed + ipaddress.IPv6Address(GW6).packed
                  + struct.pack("!IxxxB", length, UDP))
        seg = struct.pack("!HHHH", 40400, srv.getsockname()[1], length, ~inet_csum(pseudo) & 0xFFFF) + payload
        lk.send(frame6(ip6(seg, UDP)), gso_hdr(1200, hdr_len=14 + 40 + 8, csum_start=14 + 40))
        lk.pump(1)
        got = [srv.recvfrom(70000)[0] for _ in range(6)]
        assert got == [payload[i:i + 1200] for i in range(0, len(payload), 1200)]
        c = lk.dp.counters()
        assert c["udp_gso_in"] == 1 and c["udp_gso_sent"] == 1, c
        assert not {k: v for k, v in c.items() if k.startswith("drop_") and v}
    finally:
        lk.close()
        srv.close()
