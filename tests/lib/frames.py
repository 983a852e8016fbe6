"""Frames built and parsed in Python, independent of the C code under test.

Ethernet, ARP, IPv4 (with fragments), ICMP, UDP and IPv6 as the guest sends
them to the gateway, and checks of what the data plane sends back; the
addresses and MACs of slirp4netns's default network (10.0.2.0/24, fd00::/64).
"""

from __future__ import annotations

import ipaddress
import struct

GW_MAC = bytes.fromhex("525500000202")
GUEST_MAC = bytes.fromhex("020000000064")
GW4 = ipaddress.IPv4Address("10.0.2.2")
DNS4 = ipaddress.IPv4Address("10.0.2.3")
GUEST4 = ipaddress.IPv4Address("10.0.2.100")


def inet_csum(data: bytes) -> int:
    """RFC 1071 checksum, as the value to put in the field (big-endian int)."""
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def eth(ethertype: int, payload: bytes, dst: bytes = GW_MAC, src: bytes = GUEST_MAC) -> bytes:
    return dst + src + struct.pack("!H", ethertype) + payload


def arp_request(tpa, spa=GUEST4, op=1, sha=GUEST_MAC) -> bytes:
    body = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, op, sha,
                       ipaddress.IPv4Address(spa).packed, b"\0" * 6,
                       ipaddress.IPv4Address(tpa).packed)
    return eth(0x0806, body, dst=b"\xff" * 6)


def ip4(payload: bytes, dst=GW4, src=GUEST4, proto=1, ihl=5, tot_len=None, frag=0x4000,
        csum=None, version=4, ident=0x1234) -> bytes:
    options = b"\x01" * (4 * (ihl - 5)) if ihl > 5 else b""
    hlen = 4 * max(ihl, 5)
    if tot_len is None:
        tot_len = hlen + len(payload)
    hdr = struct.pack("!BBHHHBBH4s4s", version << 4 | ihl, 0, tot_len, ident, frag, 64,
                      proto, 0, ipaddress.IPv4Address(src).packed,
                      ipaddress.IPv4Address(dst).packed) + options
    if csum is None:
        csum = inet_csum(hdr)
    hdr = hdr[:10] + struct.pack("!H", csum) + hdr[12:]
    return hdr + payload


def icmp(type_: int, payload: bytes, ident=0x4242, seq=7, code=0, good_csum=True) -> bytes:
    msg = struct.pack("!BBHHH", type_, code, 0, ident, seq) + payload
    c = inet_csum(msg)
    if not good_csum:
        c ^= 0x5555
    return msg[:2] + struct.pack("!H", c) + msg[4:]


def echo_request(payload: bytes = b"", dst=GW4, **kw) -> bytes:
    return eth(0x0800, ip4(icmp(8, payload, **kw), dst=dst))


def tcp_flags(frame: bytes) -> int:
    """The flags of a TCP segment to the guest (an IPv4 header of 20 bytes)."""
    assert frame[12:14] == b"\x08\x00" and frame[23] == 6, frame[:40].hex()
    return frame[14 + 20 + 13]


def parse_arp_reply(frame: bytes):
    assert len(frame) >= 42
    assert frame[0:6] == GUEST_MAC and frame[6:12] == GW_MAC and frame[12:14] == b"\x08\x06"
    htype, ptype, hlen, plen, op, sha, spa, tha, tpa = struct.unpack(
        "!HHBBH6s4s6s4s", frame[14:42])
    assert (htype, ptype, hlen, plen, op) == (1, 0x0800, 6, 4, 2)
    return sha, ipaddress.IPv4Address(spa), tha, ipaddress.IPv4Address(tpa)


def parse_echo_reply(frame: bytes):
    """Validate an ICMP echo reply frame fully; return (src, dst, ident, seq, payload)."""
    assert frame[0:6] == GUEST_MAC and frame[6:12] == GW_MAC and frame[12:14] == b"\x08\x00"
    ip = frame[14:]
    assert ip[0] == 0x45
    tot_len = struct.unpack("!H", ip[2:4])[0]
    assert tot_len <= len(ip)
    assert inet_csum(ip[:20]) == 0, "bad IPv4 header checksum"
    assert ip[9] == 1 and ip[8] > 0
    assert struct.unpack("!H", ip[6:8])[0] & 0x3FFF == 0
    msg = ip[20:tot_len]
    assert inet_csum(msg) == 0, "bad ICMP checksum"
    type_, code, _, ident, seq = struct.unpack("!BBHHH", msg[:8])
    assert (type_, code) == (0, 0)
    return (ipaddress.IPv4Address(ip[12:16]), ipaddress.IPv4Address(ip[16:20]), ident, seq,
            msg[8:])


def pseudo4(src, dst, proto: int, length: int) -> bytes:
    return (ipaddress.IPv4Address(src).packed + ipaddress.IPv4Address(dst).packed
            + struct.pack("!BBH", 0, proto, length))


def l4_csum(pseudo: bytes, seg: bytes, kind: str) -> int:
    """The checksum field: "full", "partial" (the pseudo-header sum only,
    not complemented, as checksum offload leaves it) or "bad"."""
    if kind == "full":
        return inet_csum(pseudo + seg)
    if kind == "partial":
        return ~inet_csum(pseudo) & 0xFFFF
    return inet_csum(pseudo + seg) ^ 0x5A5A


UDP = 17


def udp(payload: bytes, sport: int, dport: int, src=GUEST4, dst=GW4, csum=True) -> bytes:
    """A UDP header and payload with a correct (or zero) checksum."""
    length = 8 + len(payload)
    hdr = struct.pack("!HHHH", sport, dport, length, 0)
    if csum:
        pseudo = (ipaddress.IPv4Address(src).packed + ipaddress.IPv4Address(dst).packed +
                  struct.pack("!BBH", 0, UDP, length))
        c = inet_csum(pseudo + hdr + payload) or 0xFFFF
        hdr = hdr[:6] + struct.pack("!H", c)
    return hdr + payload


def fragments(l4: bytes, size: int, ident: int, dst=GW4, proto=UDP) -> list[bytes]:
    """Ethernet frames carrying l4 as IPv4 fragments of size bytes (a multiple of 8)."""
    out = []
    for off in range(0, len(l4), size):
        more = off + size < len(l4)
        frag = (0x2000 if more else 0) | off // 8
        out.append(eth(0x0800, ip4(l4[off:off + size], dst=dst, proto=proto, frag=frag, ident=ident)))
    return out


def parse_ip(frame: bytes):
    """Check an IPv4 frame to the guest; return (header fields, payload)."""
    assert frame[12:14] == b"\x08\x00"
    ip = frame[14:]
    assert ip[0] == 0x45 and inet_csum(ip[:20]) == 0
    tot_len, ident, frag = struct.unpack("!HHH", ip[2:8])
    f = dict(src=ipaddress.IPv4Address(ip[12:16]), dst=ipaddress.IPv4Address(ip[16:20]),
             proto=ip[9], ident=ident, more=bool(frag & 0x2000), off=(frag & 0x1FFF) * 8)
    return f, ip[20:tot_len]


def reassemble(frames: list[bytes]):
    """Reassemble IPv4 frames (one datagram) in Python; return (fields, l4)."""
    parts, total, first = {}, None, None
    for fr in frames:
        f, payload = parse_ip(fr)
        assert len(fr) - 14 <= 1500, "frame over the MTU"
        if f["off"] == 0:
            first = f
        parts[f["off"]] = payload
        if not f["more"]:
            total = f["off"] + len(payload)
        else:
            assert len(payload) % 8 == 0
    assert first is not None and total is not None
    assert len({parse_ip(fr)[0]["ident"] for fr in frames}) == 1
    data = b"".join(parts[o] for o in sorted(parts))
    assert len(data) == total
    return first, data


def check_udp(f, l4: bytes, sport: int, dport: int) -> bytes:
    """Validate a UDP datagram to the guest; return its payload."""
    assert f["proto"] == UDP
    s, d, length, c = struct.unpack("!HHHH", l4[:8])
    assert (s, d, length) == (sport, dport, len(l4))
    assert c != 0
    pseudo = f["src"].packed + f["dst"].packed + struct.pack("!BBH", 0, UDP, len(l4))
    assert inet_csum(pseudo + l4) == 0, "bad UDP checksum"
    return l4[8:]


GW6 = "fd00::2"
DNS6 = "fd00::3"
GUEST6 = ipaddress.IPv6Address("fd00::100")


def ip6(payload: bytes, nh: int, src=GUEST6, dst=GW6, hops=64, plen=None, version=6) -> bytes:
    plen = len(payload) if plen is None else plen
    return struct.pack("!IHBB16s16s", version << 28, plen, nh, hops, ipaddress.IPv6Address(src).packed,
                       ipaddress.IPv6Address(dst).packed) + payload


def frame6(packet: bytes, dst_mac=GW_MAC) -> bytes:
    return eth(0x86DD, packet, dst=dst_mac)
