"""DHCPv4 server for guests that configure themselves (libslirp answers DHCP
too, so guests that are not --configure'd work; pasta answers it too).

A rare protocol, so it lives here: the data plane hands over every frame sent
to UDP port 67 (a batch per wake-up) and sends the replies built here.  What
the replies say is a Settings, one per network model: slirp_settings() for
slirp4netns's (leases from network+15, kept per client MAC address; router
network+2, DNS network+3), slirpd/pasta/net.py's dhcp_settings() for pasta's
(every client gets the guest's one address, as pasta's dhcp.c hands out
c->ip4.addr, for an infinite lease).  The reply carries the router, the DNS
servers (if any), the subnet mask, the MTU (option 26), the lease time, the
domain search list (option 119, if any) and, when the router is off the
subnet, a classless static route to it (option 121, as pasta sends it).
DISCOVER, REQUEST, RELEASE and INFORM are answered; anything malformed
(truncated, wrong magic cookie, options running past the packet) is dropped
and counted in `drops`.

Leases are made when a client asks, never ahead: the next address of the
network after the last one handed out, or one a client released.  At most
LEASES_MAX are held, so the memory and the time of a request are bounded
whatever --cidr says (a /8 holds 16.7 million addresses, a /1 two billion);
a client beyond that is a counted drop (pool_exhausted).  handle() raises
nothing, whatever the guest sends: an error nobody foresaw is a counted drop
too ("unexpected").
"""

from __future__ import annotations

import collections
import heapq
import ipaddress
import struct

from slirpd.config import DHCP_START_OFFSET, Config
from slirpd.log import log

LEASE_SECONDS = 86400
LEASE_INFINITE = 0xFFFFFFFF  # pasta's lease time (RFC 2131: infinity)
LEASES_MAX = 256  # leases held at once, whatever the network's size
BOOTREQUEST, BOOTREPLY = 1, 2
MAGIC = b"\x63\x82\x53\x63"
DISCOVER, OFFER, REQUEST, DECLINE, ACK, NAK, RELEASE, INFORM = 1, 2, 3, 4, 5, 6, 7, 8
OPT_PAD, OPT_END = 0, 255
OPT_HOSTNAME, OPT_RAPID_COMMIT = 12, 80
OPT_MASK, OPT_ROUTER, OPT_DNS, OPT_MTU, OPT_SEARCH, OPT_CLASSLESS_ROUTE = 1, 3, 6, 26, 119, 121
OPT_REQUESTED_IP, OPT_LEASE, OPT_OVERLOAD, OPT_MSG_TYPE, OPT_SERVER_ID = 50, 51, 52, 53, 54
BOOTP_LEN = 236  # fixed part, before the magic cookie
ETH_HLEN, IP_HLEN, UDP_HLEN = 14, 20, 8
SERVER_PORT, CLIENT_PORT = 67, 68
BROADCAST_MAC = b"\xff" * 6
FLAG_BROADCAST = 0x8000


def inet_checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071) of data."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


class Settings(collections.namedtuple(
        "Settings", ("server", "mac", "network", "router", "mtu", "dns", "search", "address", "lease_seconds",
                     "hostname", "rapid_commit"),
        defaults=((), (), None, LEASE_SECONDS, None, False))):
    """What the server hands out.

    server: our address (the server identifier and the replies' source);
    mac: our MAC address; network: the IPv4Network the leases are in (its
    mask is option 1); router: the guest's gateway; mtu: option 26 (None:
    left out); dns: the DNS servers (option 6, left out if empty); search:
    domain names (option 119, left out if empty); address: the one address
    every client gets (pasta), or None for leases from network+15
    (slirp4netns); lease_seconds: option 51; hostname: the client's
    (option 12), or None; rapid_commit: a DISCOVER asking for rapid commit
    (option 80, RFC 4039) gets the ACK at once, as pasta gives it."""

    __slots__ = ()


def slirp_settings(cfg: Config) -> Settings:
    """slirp4netns's DHCP: leases in --cidr, the gateway network+2 as router
    and server, the DNS forwarder network+3 (unless --disable-dns)."""
    return Settings(server=cfg.gateway, mac=cfg.gateway_mac, network=cfg.cidr, router=cfg.gateway, mtu=cfg.mtu,
                    dns=() if cfg.disable_dns else (cfg.dns,))


def encode_search(names) -> bytes:
    """Option 119's value: each domain name as DNS labels (RFC 3397; no
    compression pointers).  Raises ValueError for a name no DNS message can
    carry."""
    out = b""
    for name in names:
        for label in name.rstrip(".").split("."):
            raw = label.encode("idna") if label else b""
            if not 0 < len(raw) < 64:
                raise ValueError(f"invalid domain name: {name}")
            out += bytes([len(raw)]) + raw
        out += b"\0"
    return out


def _option(code: int, value: bytes) -> bytes:
    """One option, split into pieces of at most 255 bytes (RFC 3396), as
    long ones (option 119) need."""
    return b"".join(bytes([code, len(value[i:i + 255])]) + value[i:i + 255] for i in range(0, len(value) or 1, 255))


class Malformed(Exception):
    """A frame the server drops; str() is the drop reason."""


class FrameServer:
    """What a server of control frames (DHCP here, DHCPv6 in dhcpv6.py)
    shares: handle() raises nothing, a Malformed frame is a drop counted
    under its reason, any other error one under "unexpected"; subclasses
    give _handle() and PROTOCOL (for the log)."""

    PROTOCOL = "DHCP"

    def __init__(self):
        self.drops: collections.Counter[str] = collections.Counter()
        self.replies = 0

    def handle(self, frame: bytes) -> bytes | None:
        """One frame to the server's port in, the reply frame (or None) out."""
        try:
            return self._handle(frame)
        except Malformed as e:
            self.drops[str(e)] += 1
        except Exception as e:  # a bug must cost one frame, not the daemon
            log.debug("%s frame dropped: %s: %s", self.PROTOCOL, type(e).__name__, e)
            self.drops["unexpected"] += 1
        return None

    def _handle(self, frame: bytes) -> bytes | None:
        """The reply to one frame, or None; raises Malformed (each
        subclass says what it answers)."""
        raise NotImplementedError


def parse_options(data: bytes) -> dict[int, bytes]:
    """DHCP options after the magic cookie; raises Malformed when one runs
    past the packet or the list has no end."""
    opts: dict[int, bytes] = {}
    i = 0
    while i < len(data):
        code = data[i]
        if code == OPT_PAD:
            i += 1
            continue
        if code == OPT_END:
            return opts
        if i + 2 > len(data) or i + 2 + data[i + 1] > len(data):
            raise Malformed("option_overflow")
        opts[code] = data[i + 2:i + 2 + data[i + 1]]
        i += 2 + data[i + 1]
    raise Malformed("no_end_option")


class DhcpServer(FrameServer):
    """Leases and replies for one virtual network."""

    def __init__(self, settings: Settings):
        super().__init__()
        self.settings = settings
        net = settings.network
        # Never handed out yet: from _next up to the broadcast address,
        # excluded (the gateway and the DNS address lie below network+15)
        self._next = int(net.network_address) + DHCP_START_OFFSET
        self._end = int(net.broadcast_address)
        self._released: list[int] = []  # a heap: the lowest goes out first
        self.leases: dict[bytes, ipaddress.IPv4Address] = {}

    def _lease_for(self, mac: bytes) -> ipaddress.IPv4Address | None:
        """The client's lease, made now if it has none; None when
        LEASES_MAX are held or the network has no address left."""
        if self.settings.address is not None:
            return self.settings.address
        if mac in self.leases:
            return self.leases[mac]
        if len(self.leases) >= LEASES_MAX:
            return None
        if self._released:
            addr = heapq.heappop(self._released)
        elif self._next < self._end:
            addr = self._next
            self._next += 1
        else:
            return None
        self.leases[mac] = ipaddress.IPv4Address(addr)
        return self.leases[mac]

    def _release(self, mac: bytes, addr: ipaddress.IPv4Address) -> None:
        """RELEASE: the client gives back its lease (if addr is it)."""
        if self.leases.get(mac) == addr:
            del self.leases[mac]
            heapq.heappush(self._released, int(addr))

    def stats(self) -> dict:
        """get_stats's "dhcp" section: replies sent, leases held, drops by reason."""
        return {"replies": self.replies, "leases": len(self.leases), "leases_max": LEASES_MAX,
                "drops": dict(self.drops)}

    def _handle(self, frame: bytes) -> bytes | None:
        """One frame to UDP port 67 in, the reply frame (or None) out;
        raises Malformed."""
        if len(frame) < ETH_HLEN + IP_HLEN:
            raise Malformed("truncated")
        ihl = (frame[ETH_HLEN] & 0x0F) * 4
        udp = ETH_HLEN + ihl
        if ihl < IP_HLEN or len(frame) < udp + UDP_HLEN:
            raise Malformed("truncated")
        udp_len = struct.unpack_from("!H", frame, udp + 4)[0]
        bootp = frame[udp + UDP_HLEN:udp + max(udp_len, UDP_HLEN)]
        if udp_len < UDP_HLEN or udp + udp_len > len(frame) or len(bootp) < BOOTP_LEN + len(MAGIC):
            raise Malformed("truncated")
        if bootp[0] != BOOTREQUEST or bootp[1] != 1 or bootp[2] != 6:
            raise Malformed("not_ethernet_request")
        if bootp[BOOTP_LEN:BOOTP_LEN + 4] != MAGIC:
            raise Malformed("bad_magic_cookie")
        opts = parse_options(bootp[BOOTP_LEN + 4:])
        msg_type = opts.get(OPT_MSG_TYPE, b"")
        if len(msg_type) != 1:
            raise Malformed("no_message_type")
        xid, flags = bootp[4:8], struct.unpack_from("!H", bootp, 10)[0]
        ciaddr = ipaddress.IPv4Address(bootp[12:16])
        chaddr = bootp[28:34]
        if chaddr[0] & 1 or chaddr == b"\0" * 6:
            raise Malformed("bad_client_mac")
        kind = msg_type[0]
        if kind == DISCOVER:
            addr = self._lease_for(chaddr)
            if addr is None:
                raise Malformed("pool_exhausted")
            if self.settings.rapid_commit and OPT_RAPID_COMMIT in opts:  # RFC 4039: the lease at once
                return self._reply(ACK, xid, flags, chaddr, addr, ipaddress.IPv4Address(0), rapid=True)
            return self._reply(OFFER, xid, flags, chaddr, addr, ipaddress.IPv4Address(0))
        if kind == REQUEST:
            wanted = opts.get(OPT_REQUESTED_IP)
            wanted_ip = ipaddress.IPv4Address(wanted) if wanted and len(wanted) == 4 else ciaddr
            server_id = opts.get(OPT_SERVER_ID)
            if server_id is not None and server_id != self.settings.server.packed:
                return None  # the client chose another server
            addr = self._lease_for(chaddr)
            if addr is None or wanted_ip != addr:
                return self._reply(NAK, xid, flags | FLAG_BROADCAST, chaddr, ipaddress.IPv4Address(0), ciaddr)
            return self._reply(ACK, xid, flags, chaddr, addr, ciaddr)
        if kind == RELEASE:
            self._release(chaddr, ciaddr)
            return None
        if kind == INFORM:
            return self._reply(ACK, xid, flags, chaddr, ipaddress.IPv4Address(0), ciaddr, lease=False)
        if kind == DECLINE:
            return None
        raise Malformed("unknown_message_type")

    def _options(self, kind: int, lease: bool, rapid: bool) -> bytes:
        """The reply's options, the message type first (rapid: an ACK to a
        DISCOVER, which says so with option 80)."""
        st = self.settings
        opts = bytes([OPT_MSG_TYPE, 1, kind, OPT_SERVER_ID, 4]) + st.server.packed
        if kind == NAK:
            return opts + bytes([OPT_END])
        opts += bytes([OPT_MASK, 4]) + st.network.netmask.packed
        opts += bytes([OPT_ROUTER, 4]) + st.router.packed
        if st.dns:
            opts += bytes([OPT_DNS, 4 * len(st.dns)]) + b"".join(a.packed for a in st.dns)
        if st.mtu:
            opts += bytes([OPT_MTU, 2]) + struct.pack("!H", st.mtu)
        if lease:
            opts += bytes([OPT_LEASE, 4]) + struct.pack("!I", st.lease_seconds)
        if st.hostname:
            opts += _option(OPT_HOSTNAME, st.hostname.encode())
        if st.search:
            opts += _option(OPT_SEARCH, encode_search(st.search))
        if rapid:
            opts += bytes([OPT_RAPID_COMMIT, 0])
        if st.router not in st.network:  # pasta: a route to the router, then the default via it
            opts += bytes([OPT_CLASSLESS_ROUTE, 14, 32]) + st.router.packed + b"\0" * 4 + b"\0" + st.router.packed
        return opts + bytes([OPT_END])

    def _reply(self, kind: int, xid: bytes, flags: int, chaddr: bytes, yiaddr, ciaddr, lease: bool = True,
               rapid: bool = False) -> bytes:
        server = self.settings.server
        bootp = struct.pack("!BBBB4sHH4s4s4s4s16s64s128s", BOOTREPLY, 1, 6, 0, xid, 0, flags, ciaddr.packed,
                            yiaddr.packed, server.packed, b"\0" * 4, chaddr, b"", b"") + MAGIC
        bootp = (bootp + self._options(kind, lease, rapid)).ljust(300, b"\0")  # BOOTP minimum, for old clients
        broadcast = flags & FLAG_BROADCAST or kind == NAK or (int(ciaddr) == 0 and int(yiaddr) == 0)
        dst_ip = ipaddress.IPv4Address("255.255.255.255") if broadcast else (ciaddr if int(ciaddr) else yiaddr)
        dst_mac = BROADCAST_MAC if broadcast else chaddr
        udp = struct.pack("!HHHH", SERVER_PORT, CLIENT_PORT, UDP_HLEN + len(bootp), 0) + bootp
        pseudo = server.packed + dst_ip.packed + struct.pack("!BBH", 0, 17, len(udp))
        udp = udp[:6] + struct.pack("!H", inet_checksum(pseudo + udp) or 0xFFFF) + udp[8:]
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0x10, IP_HLEN + len(udp), 0, 0, 64, 17, 0,
                         server.packed, dst_ip.packed)
        ip = ip[:10] + struct.pack("!H", inet_checksum(ip)) + ip[12:]
        self.replies += 1
        return dst_mac + self.settings.mac + b"\x08\x00" + ip + udp
