"""Hostile frames from inside the guest: a real daemon on a real TAP, the frames
written raw on the guest's tap0 with an AF_PACKET socket.

Each family of bad frames is sent to a fresh daemon.  Afterwards the daemon must
be alive, answer a ping, carry a 16 MiB transfer intact (sha256), hold as many
descriptors as before and about the same memory, and have counted every frame
under a reason: each frame of a family names the counter(s) it must move, and
the test checks each counter moved at least that much.

The frames are built here (independent of the C under test) and handed to the
guest in a file; the guest script paces them so the TAP queue never overflows
(a frame the kernel dropped before the daemon read it would prove nothing).
"""

from __future__ import annotations

import collections
import ipaddress
import os
import struct

import pytest

from lib.frames import inet_csum as csum
from lib.harness import wait_for
from lib.tcputil import GUEST_SEND, Server, free_port, sink

MIB = 1 << 20
GW4, DNS4, GUEST4 = "10.0.2.2", "10.0.2.3", "10.0.2.100"
GW_MAC = bytes.fromhex("52550a000202")     # 52:55 and the gateway address, as libslirp
BCAST = b"\xff" * 6
ANY_DROP = "any drop_ counter"

# argv: frames file (u16 length, frame...), guest MAC placeholder is replaced by
# tap0's address -> prints "sent errors"
INJECT = r"""
import errno, socket, struct, sys, time
data = open(sys.argv[1], "rb").read()
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
s.bind(("tap0", 0))
mac = s.getsockname()[4]
off = sent = errors = 0
while off < len(data):
    n = struct.unpack_from("!H", data, off)[0] if data[off:off + 2] != b"\xff\xff" else struct.unpack_from("!I", data, off + 2)[0]
    off += 2 if data[off:off + 2] != b"\xff\xff" else 6
    f = data[off:off + n].replace(b"\x02GUEST", mac)
    off += n
    try:
        s.send(f)
        sent += 1
    except OSError as e:
        errors += 1
    if sent % 64 == 0:
        time.sleep(0.005)
print(sent, errors)
"""

GUEST_MAC_MARK = b"\x02GUEST"   # 6 bytes, replaced by tap0's MAC in the guest


def eth(payload: bytes, ethertype=0x0800, dst=GW_MAC, src=GUEST_MAC_MARK) -> bytes:
    return dst + src + struct.pack("!H", ethertype) + payload


def ip4(payload: bytes, proto=1, dst=GW4, src=GUEST4, ident=1, frag=0x4000, options=b"",
        ihl=None, tot_len=None, version=4, bad_csum=False) -> bytes:
    hlen = 20 + len(options)
    ihl = hlen // 4 if ihl is None else ihl
    tot_len = hlen + len(payload) if tot_len is None else tot_len
    hdr = struct.pack("!BBHHHBBH4s4s", version << 4 | ihl, 0, tot_len, ident, frag, 64, proto, 0,
                      ipaddress.IPv4Address(src).packed, ipaddress.IPv4Address(dst).packed) + options
    c = csum(hdr[:max(20, min(len(hdr), ihl * 4))]) ^ (0x1111 if bad_csum else 0)
    return hdr[:10] + struct.pack("!H", c) + hdr[12:] + payload


def icmp_echo(payload=b"hostile", ident=0x4242, seq=1) -> bytes:
    msg = struct.pack("!BBHHH", 8, 0, 0, ident, seq) + payload
    return msg[:2] + struct.pack("!H", csum(msg)) + msg[4:]


def pseudo(src: str, dst: str, proto: int, length: int) -> bytes:
    return (ipaddress.IPv4Address(src).packed + ipaddress.IPv4Address(dst).packed +
            struct.pack("!BBH", 0, proto, length))


def udp(sport: int, dport: int, data: bytes, dst=GW4, src=GUEST4, length=None) -> bytes:
    length = 8 + len(data) if length is None else length
    seg = struct.pack("!HHHH", sport, dport, length, 0) + data
    c = csum(pseudo(src, dst, 17, len(seg)) + seg) or 0xFFFF
    return seg[:6] + struct.pack("!H", c) + seg[8:]


def tcp(sport: int, dport: int, flags: int, seq=1000, ack=0, options=b"", data=b"", doff=None,
        dst=GW4, wnd=65535) -> bytes:
    doff = (20 + len(options)) // 4 if doff is None else doff
    seg = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, doff << 4, flags, wnd, 0, 0) + options + data
    c = csum(pseudo(GUEST4, dst, 6, len(seg)) + seg)
    return seg[:16] + struct.pack("!H", c) + seg[18:]


def arp(op=1, tpa=GW4, hlen=6, plen=4, ptype=0x0800, htype=1, spa=GUEST4) -> bytes:
    return struct.pack("!HHBBH6s4s6s4s", htype, ptype, hlen, plen, op, GUEST_MAC_MARK,
                       ipaddress.IPv4Address(spa).packed, b"\0" * 6,
                       ipaddress.IPv4Address(tpa).packed)


def bootp(op=1, htype=1, hlen=6, magic=b"\x63\x82\x53\x63", options=bytes([53, 1, 1, 255]),
          chaddr=b"\x02\x00\x00\x00\x00\x01") -> bytes:
    return (bytes([op, htype, hlen, 0]) + b"\x12\x34\x56\x78" + b"\0" * 20 + chaddr +
            b"\0" * 202 + magic + options)


def dhcp_frame(payload: bytes) -> bytes:
    return eth(ip4(udp(68, 67, payload, dst="255.255.255.255", src="0.0.0.0"), proto=17,
                   dst="255.255.255.255", src="0.0.0.0"), dst=BCAST)


# --- the families: lists of (frame, counter or tuple of counters it must move) ----

def family_truncated():
    ok_echo = ip4(icmp_echo())
    return [
        # (runts shorter than an Ethernet header cannot be sent on tap0 without
        # CAP_SYS_RAWIO in the initial namespace: the frame tests cover them)
        (eth(b""), "drop_ip4_malformed"),
        (eth(ok_echo[:19]), "drop_ip4_malformed"),
        (eth(ip4(icmp_echo(), ihl=4)), "drop_ip4_malformed"),
        (eth(ip4(icmp_echo(), ihl=15)), "drop_ip4_malformed"),
        (eth(ip4(icmp_echo(), tot_len=1400)), "drop_ip4_malformed"),
        (eth(ip4(icmp_echo(), tot_len=12)), "drop_ip4_malformed"),
        (eth(ip4(icmp_echo(), tot_len=65535)), "drop_ip4_malformed"),
        (eth(ip4(icmp_echo(), version=6)), "drop_ip4_malformed"),
        (eth(ip4(icmp_echo(), bad_csum=True)), "drop_ip4_checksum"),
        (eth(ip4(icmp_echo()[:3])), "drop_icmp_malformed"),
        (eth(ip4(tcp(40000, 80, 0x02)[:12], proto=6)), "drop_tcp_malformed"),
        (eth(ip4(tcp(40000, 80, 0x02, doff=15), proto=6)), "drop_tcp_malformed"),
        (eth(ip4(tcp(40000, 80, 0x02, doff=2), proto=6)), "drop_tcp_malformed"),
        (eth(ip4(udp(40000, 9, b"x")[:5], proto=17)), "drop_udp_malformed"),
        (eth(ip4(udp(40000, 9, b"abc", length=300), proto=17)), "drop_udp_malformed"),
        (eth(ip4(udp(40000, 9, b"abc", length=3), proto=17)), "drop_udp_malformed"),
        (eth(ip4(b"\0" * 40, proto=47)), "drop_ip4_proto"),
        (eth(b"\0" * 46, ethertype=0x88B5), "drop_ethertype"),
        (eth(b"\x60" + b"\0" * 39, ethertype=0x86DD), ANY_DROP),   # IPv6 header, no payload
        (eth(b"\x60\0\0\0\xff\xff\x00\x40" + b"\0" * 32, ethertype=0x86DD), ANY_DROP),  # lying length
    ]


def family_ip4_options():
    opts = {
        "nop": b"\x01\x01\x01\x00",
        "record_route": b"\x07\x0b\x04" + b"\0" * 8 + b"\x00",
        "lssr": b"\x83\x07\x04" + ipaddress.IPv4Address(GW4).packed + b"\x00",
        "ssrr": b"\x89\x07\x04" + ipaddress.IPv4Address("198.51.100.9").packed + b"\x00",
        "timestamp": b"\x44\x0c\x05\x00" + b"\0" * 8,
        "len_zero": b"\x07\x00\x00\x00",
        "len_past_header": b"\x44\xff\x05\x00",
        "router_alert": b"\x94\x04\x00\x00",
        "max_garbage": bytes(range(1, 41)),
    }
    return [(eth(ip4(icmp_echo(seq=i), options=o)), "icmp_echo_replies")
            for i, o in enumerate(opts.values())]


def family_fragments():
    frames = []
    # never complete, by the thousand: each id starts a reassembly that is evicted
    for i in range(3000):
        frames.append((eth(ip4(b"\0" * 64, ident=i, frag=0x2000)), ("ip4_fragments", "drop_frag_evicted")))
    payload = icmp_echo(bytes(range(256)) * 4, seq=2)                   # 1032 bytes
    # overlapping and duplicate pieces of one datagram, then its good pieces
    frames += [
        (eth(ip4(payload[:512], ident=50000, frag=0x2000)), "ip4_fragments"),
        (eth(ip4(payload[256:768], ident=50000, frag=0x2000 | 32)), "drop_frag_overlap"),
        (eth(ip4(payload[:512], ident=50000, frag=0x2000)), ("drop_frag_duplicate", "drop_frag_overlap")),
    ]
    # a datagram past 65535 bytes
    frames.append((eth(ip4(b"\0" * 800, ident=50001, frag=8100)), ("drop_ip4_fragment", "ip4_fragments")))
    # a complete one in three pieces, out of order: reassembled and answered
    frames += [
        (eth(ip4(payload[512:1024], ident=50002, frag=0x2000 | 64)), "ip4_fragments"),
        (eth(ip4(payload[1024:], ident=50002, frag=128)), "ip4_fragments"),
        (eth(ip4(payload[:512], ident=50002, frag=0x2000)), ("ip4_reassembled", "icmp_echo_replies")),
    ]
    # tiny 8-byte fragments of one UDP datagram
    data = udp(40000, 9, b"t" * 240, dst="198.51.100.1")
    for off in range(0, len(data), 8):
        more = 0x2000 if off + 8 < len(data) else 0
        frames.append((eth(ip4(data[off:off + 8], proto=17, dst="198.51.100.1", ident=50003,
                               frag=more | off // 8)), "ip4_fragments"))
    return frames


def family_tcp(port_closed: int, port_open: int):
    frames = []
    impossible = {
        "syn_fin": 0x03, "syn_rst": 0x06, "all": 0xFF, "none": 0x00, "fin": 0x01,
        "rst_ack": 0x14, "urg_psh": 0x28, "ece_cwr_syn": 0xC2,
    }
    for i, flags in enumerate(impossible.values()):
        for port in (port_closed, port_open):
            frames.append((eth(ip4(tcp(41000 + i, port, flags), proto=6)), ANY_DROP + "|tcp"))
    options = {
        "wscale_255": b"\x03\x03\xff\x00",
        "mss_zero": b"\x02\x04\x00\x00",
        "mss_one": b"\x02\x04\x00\x01",
        "len_zero": b"\x02\x00\x00\x00",
        "len_one": b"\x08\x01\x00\x00",
        "past_header": b"\x08\x0a\x00\x00",
        "sack_garbage": b"\x05\x22" + b"\xff" * 34 + b"\x00\x00",
        "eol_then_junk": b"\x00\xff\xff\xff",
    }
    for i, o in enumerate(options.values()):
        frames.append((eth(ip4(tcp(42000 + i, port_closed, 0x02, options=o), proto=6)), ANY_DROP + "|tcp"))
    # a SYN flood on a closed host port: each is a host connect() refused, a RST
    for i in range(1000):
        frames.append((eth(ip4(tcp(20000 + i, port_closed, 0x02, seq=i), proto=6)), ANY_DROP + "|tcp"))
    # segments for no connection, with data and silly windows
    for i in range(50):
        frames.append((eth(ip4(tcp(43000 + i, port_open, 0x18, seq=i << 20, ack=i, wnd=0,
                                   data=b"z" * 100), proto=6)), ANY_DROP + "|tcp"))
    return frames


def family_arp_dhcp():
    frames = [
        (eth(arp(hlen=7), ethertype=0x0806, dst=BCAST), "drop_arp_malformed"),
        (eth(arp(plen=16), ethertype=0x0806, dst=BCAST), "drop_arp_malformed"),
        (eth(arp(ptype=0x86DD), ethertype=0x0806, dst=BCAST), "drop_arp_malformed"),
        (eth(arp(htype=6), ethertype=0x0806, dst=BCAST), "drop_arp_malformed"),
        (eth(arp()[:20], ethertype=0x0806, dst=BCAST), "drop_arp_malformed"),
        (eth(arp(op=9), ethertype=0x0806, dst=BCAST), "drop_arp_op"),
        (eth(arp(op=2), ethertype=0x0806, dst=BCAST), ("drop_arp_op", "drop_arp_not_for_us")),
        (eth(arp(tpa="10.0.2.77"), ethertype=0x0806, dst=BCAST), "drop_arp_not_for_us"),
        (eth(arp(tpa=GUEST4), ethertype=0x0806, dst=BCAST), "drop_arp_not_for_us"),
    ]
    dhcp = [
        bootp()[:100],                                  # truncated
        bootp(magic=b"\xde\xad\xbe\xef"),               # bad magic cookie
        bootp(options=bytes([53, 200])),                # option runs past the end
        bootp(options=bytes([12, 0, 255])),             # no message type
        bootp(op=2),                                    # a reply
        bootp(hlen=16),                                 # not Ethernet
        bootp(chaddr=b"\x01\x00\x5e\x00\x00\x01"),      # multicast client
        bootp(options=bytes([53, 1, 77, 255])),         # unknown message type
        bootp(options=bytes([53, 1, 3, 50, 4, 1, 2, 3, 4, 255])),   # REQUEST for a foreign address
        bootp(options=bytes([53, 1, 1]) + bytes([0]) * 1000),       # long padding
    ]
    frames += [(dhcp_frame(p), ("ctl_frames", "drop_ctl_full", "drop_ctl_too_big")) for p in dhcp]
    # a burst of DISCOVERs from as many clients, more than the ring holds
    for i in range(300):
        frames.append((dhcp_frame(bootp(chaddr=b"\x02\x00\x00\x01" + struct.pack("!H", i))),
                       ("ctl_frames", "drop_ctl_full")))
    return frames


def family_martians():
    frames = []
    for src in ("0.0.0.0", "127.0.0.1", "224.0.0.5", "255.255.255.255", "240.1.2.3", GW4, DNS4):
        frames.append((eth(ip4(icmp_echo(), src=src)), "drop_ip4_martian"))
        frames.append((eth(ip4(udp(40000, 9, b"m", src=src, dst="198.51.100.1"), proto=17,
                               dst="198.51.100.1", src=src)), "drop_ip4_martian"))
    for mac in (BCAST, b"\x01\x00\x5e\x00\x00\x05", b"\x33\x33\x00\x00\x00\x01", GW_MAC):
        frames.append((eth(ip4(icmp_echo()), src=mac), "drop_eth_src"))
    # broadcast and multicast destinations are not hosts to ping or connect to
    for dst in ("10.0.2.255", "255.255.255.255", "224.0.0.1"):
        frames.append((eth(ip4(icmp_echo(), dst=dst), dst=BCAST), ANY_DROP + "|ping"))
        frames.append((eth(ip4(tcp(44000, 80, 0x02, dst=dst), proto=6, dst=dst), dst=BCAST),
                       ANY_DROP + "|tcp"))
    return frames


def family_oversize():
    big = icmp_echo(b"o" * 8000)
    return [
        (eth(ip4(big)), ("drop_icmp_too_big", "drop_ip_too_big")),
        (eth(ip4(udp(40000, 9, b"u" * 8500, dst="198.51.100.1"), proto=17, dst="198.51.100.1")),
         ("drop_ip_too_big", "drop_udp_send", "drop_udp_malformed", "flows_created")),
        (eth(ip4(tcp(45000, 80, 0x18, data=b"t" * 8000), proto=6)), ANY_DROP + "|tcp"),
        (eth(ip4(icmp_echo(b"h" * 60000))), ("drop_icmp_too_big", "drop_ip_too_big")),
        (eth(b"\0" * 9000, ethertype=0x88B5), "drop_ethertype"),
    ]


TCP_OUTCOMES = ("drop_tcp_malformed", "drop_tcp_checksum", "drop_tcp_no_flow",
                "drop_tcp_out_of_window", "drop_tcp_bad_ack", "drop_tcp_socket", "tcp_rst_sent",
                "tcp_conn_failed", "tcp_conn_opened", "drop_unreachable", "icmp_unreach_sent")
PING_OUTCOMES = ("ping_requests", "drop_ping_forbidden", "drop_ping_socket", "drop_ping_send",
                 "drop_unreachable", "icmp_echo_replies")


def outcome_counters(reason, counters: dict) -> tuple[str, ...]:
    """The counters any of which may account for a frame expecting reason."""
    drops = tuple(k for k in counters if k.startswith("drop_"))
    if reason == ANY_DROP:
        return drops
    if reason == ANY_DROP + "|tcp":
        return drops + TCP_OUTCOMES
    if reason == ANY_DROP + "|ping":
        return drops + PING_OUTCOMES
    return reason if isinstance(reason, tuple) else (reason,)


def transfer(guest, size=16 * MIB):
    with Server(sink) as srv:
        out = guest.python(GUEST_SEND, str(srv.port), str(size), timeout=90).stdout.split()
        srv.wait(1, timeout=60)
        assert not srv.errors, srv.errors
        assert srv.results[0] == (size, out[1]), "transfer corrupted"


def flows_settled(d) -> bool:
    c = d.counters()
    return c["flows_created"] == c["flows_closed"]


def live_flows(d) -> int:
    c = d.counters()
    return c["flows_created"] - c["flows_closed"]


def inject(guest, path, frames) -> tuple[int, int]:
    with open(path, "wb") as f:
        for frame, _ in frames:
            f.write(struct.pack("!H", len(frame)) if len(frame) < 0xFFFF else
                    b"\xff\xff" + struct.pack("!I", len(frame)))
            f.write(frame)
    os.chmod(path, 0o644)
    sent, errors = map(int, guest.python(INJECT, str(path), timeout=120).stdout.split())
    return sent, errors


FAMILIES = ["truncated", "ip4_options", "fragments", "tcp", "arp_dhcp", "martians", "oversize"]


@pytest.mark.timeout(300)
@pytest.mark.parametrize("family", FAMILIES)
def test_hostile_family(family, net_guest, user_tmp):
    d = net_guest.slirpd
    net_guest.run("ping -c 1 -W 5 10.0.2.2")
    neigh = net_guest.ip_json("neigh", "show", "10.0.2.2")
    assert neigh[0]["lladdr"] == GW_MAC.hex(":"), neigh  # the frames use it
    transfer(net_guest, 4 * MIB)            # warm up: buffers and caches as in use
    wait_for(lambda: flows_settled(d), 10, "warm-up flows to close")
    fds, rss = d.open_fds(), d.rss_kib()

    with Server(sink) as srv_open:
        port_closed = free_port()
        frames = {
            "truncated": family_truncated, "ip4_options": family_ip4_options,
            "fragments": family_fragments, "arp_dhcp": family_arp_dhcp,
            "martians": family_martians, "oversize": family_oversize,
            "tcp": lambda: family_tcp(port_closed, srv_open.port),
        }[family]()
        if family == "oversize":    # a guest that lies about the MTU
            net_guest.run("ip link set tap0 mtu 65000")
        before = d.counters()
        sent, errors = inject(net_guest, user_tmp / "frames", frames)
        if family == "oversize":
            net_guest.run("ip link set tap0 mtu 1500")
        assert (sent, errors) == (len(frames), 0)

        # every frame reached the daemon and was accounted for
        wait_for(lambda: d.counters()["frames_in"] - before["frames_in"] >= len(frames), 20,
                 "the daemon to read every frame")
        after = d.counters()

    delta = {k: after[k] - before[k] for k in after if k != "sockets"}  # the rest are counters
    want = collections.Counter(outcome_counters(r, after) for _, r in frames)
    for counters, n in want.items():
        got = sum(delta[c] for c in counters)
        assert got >= n, f"{n} frames expected under {counters}, counted {got}: " + \
            str({k: v for k, v in delta.items() if v})
    assert delta["tap_read_errors"] == 0

    # and the daemon is whole
    assert d.proc.poll() is None, d.stderr
    net_guest.run("ping -c 1 -W 5 10.0.2.2")
    transfer(net_guest)
    # TCP flows close with their connections; UDP and ping flows the frames
    # opened idle out after a minute, each holding one socket until then
    wait_for(lambda: d.open_fds() == fds + live_flows(d), 30,
             f"descriptors back to {fds} plus one per live UDP/ping flow")
    assert live_flows(d) <= 4, d.counters()
    assert d.rss_kib() < rss + 8192, (rss, d.rss_kib())
    assert "Traceback" not in d.stderr, d.stderr
