"""rtnetlink, spoken directly: the few requests start-up makes, and the
kernel's answers.

Start-up must not wait for a netlink library (pyroute2's import alone takes
longer than slirpd may take to be ready, issue 19), so the requests that
configure the guest are built here and sent over an AF_NETLINK socket of the
network namespace the caller is in: a link's state, ARP flag, MTU or MAC
address (RTM_NEWLINK), an address (RTM_NEWADDR), a route (RTM_NEWROUTE).
pasta's model (pasta/net.py) also reads the host's addresses and routes
(RTM_GETADDR, RTM_GETROUTE dumps: Address and Route, the fields it copies).

Each request asks for an acknowledgement and the next one goes out only once
it came, so a failure names the one step that failed and nothing after it is
tried; a dump is read to its NLMSG_DONE (and read again, DUMP_TRIES times,
when the kernel says the table changed under it, NLM_F_DUMP_INTR).  A refusal is reported in words: what could not be done, the errno's
text, and the kernel's own message where it gives one (extended acks,
NETLINK_EXT_ACK, Linux 4.12 and later), e.g. "cannot set the MTU of tap0 to
70000: Invalid argument (mtu greater than device maximum)".  A reply that
does not come within TIMEOUT, or that is cut short, is an error too.
RtnlError.errno keeps the errno, for callers that expect some refusals
(pasta copies routes whose gateway may not be reachable yet).

Python's socket module, not C through the data plane's cffi module: these
are a handful of small messages once per start, built with struct in
microseconds, in the forked helper (netns.py) before any data plane exists;
in Python they need nothing from the data plane's C API (csrc/dp_api.h stays
the data plane's), errors arrive as errno values like every other set-up
step's, and tests use this module in a guest as it is.

What the requests say is what pyroute2 sent before (slirpd 0.1.0): routes of
protocol "static" in the main table, an IPv4 address as both IFA_LOCAL and
IFA_ADDRESS with no broadcast, NLM_F_CREATE | NLM_F_REPLACE for addresses and
routes.  pyroute2 stays the project's netlink library off the start-up path
(tests, diagnostics).
"""

from __future__ import annotations

import collections
import ipaddress
import os
import socket
import struct

NETLINK_ROUTE = 0
SOL_NETLINK = 270
NETLINK_CAP_ACK = 10  # acks carry the request's header only, not all of it
NETLINK_EXT_ACK = 11  # acks may carry the kernel's message (NLMSGERR_ATTR_MSG)

NLMSG_ERROR = 2
NLMSG_DONE = 3
NLM_F_REQUEST = 0x1
NLM_F_ACK = 0x4
NLM_F_DUMP_INTR = 0x10  # in a dump: the table changed while it was read
NLM_F_DUMP = 0x300
NLM_F_REPLACE = 0x100
NLM_F_EXCL = 0x200
NLM_F_CREATE = 0x400
NLM_F_APPEND = 0x800
NLM_F_CAPPED = 0x100  # in an ack: the request was cut to its header
NLM_F_ACK_TLVS = 0x200  # in an ack: extended-ack attributes follow
NLMSGERR_ATTR_MSG = 1

RTM_NEWLINK = 16
RTM_NEWADDR = 20
RTM_GETADDR = 22
RTM_NEWROUTE = 24
RTM_GETROUTE = 26
IFF_UP = 0x1
IFF_NOARP = 0x80
IFLA_ADDRESS = 1
IFLA_MTU = 4
IFA_ADDRESS = 1
IFA_LOCAL = 2
IFA_FLAGS = 8  # the flags in full (ifa_flags holds only the low 8 bits)
IFA_F_NODAD = 0x02
RTA_DST = 1
RTA_OIF = 4
RTA_GATEWAY = 5
RTA_PRIORITY = 6
RTA_TABLE = 15  # the table in full (rtm_table holds only the low 8 bits)
RT_TABLE_MAIN = 254
RTPROT_STATIC = 4
RT_SCOPE_UNIVERSE = 0
RTN_UNICAST = 1

NLMSGHDR = struct.Struct("=IHHII")  # length, type, flags, sequence, port id
IFINFOMSG = struct.Struct("=BxHiII")  # family, type, index, flags, change mask
IFADDRMSG = struct.Struct("=BBBBi")  # family, prefix length, flags, scope, index
RTMSG = struct.Struct("=BBBBBBBBI")  # family, dst/src length, tos, table, protocol, scope, type, flags
RTATTR = struct.Struct("=HH")  # length, type
NLMSGERR = struct.Struct("=i")  # -errno, 0 for an ack; the request's header follows
REPLY_MAX = 65536
TIMEOUT = 5.0  # seconds the kernel may take to answer one request
DUMP_TRIES = 3  # reads of a dump the kernel says changed while it was read
FAMILY_NAMES = {socket.AF_INET: "IPv4", socket.AF_INET6: "IPv6"}

# An address of a dump: ifa_* fields, flags from IFA_FLAGS where the kernel
# gives it, address: IFA_LOCAL or else IFA_ADDRESS, as an ipaddress address
Address = collections.namedtuple("Address", "family prefixlen flags scope index address")
# A route of a dump, or one to add: rtm_* fields (table from RTA_TABLE where
# given), the destination (None: the default route), the gateway (an
# ipaddress address or None), the output interface's index (0: none), the
# metric (None: the kernel's default)
Route = collections.namedtuple("Route", "family dst_len table protocol scope type dst gateway oif priority")


class RtnlError(Exception):
    """A request failed or got no proper answer; str() says which, and why;
    errno: the kernel's errno when it refused (else None)."""

    def __init__(self, text: str, errno: int | None = None):
        super().__init__(text)
        self.errno = errno


def _align(n: int) -> int:
    return (n + 3) & ~3


def attr(kind: int, payload: bytes) -> bytes:
    """One netlink attribute (struct rtattr and payload), padded to 4 bytes."""
    data = RTATTR.pack(RTATTR.size + len(payload), kind) + payload
    return data + b"\0" * (_align(len(data)) - len(data))


def messages(data: bytes):
    """The netlink messages of one datagram, as (type, flags, sequence,
    payload); ValueError when a length runs past the datagram."""
    offset = 0
    while offset + NLMSGHDR.size <= len(data):
        length, kind, flags, seq, _port = NLMSGHDR.unpack_from(data, offset)
        if length < NLMSGHDR.size or offset + length > len(data):
            raise ValueError(f"a reply of {length} bytes in a datagram of {len(data) - offset}")
        yield kind, flags, seq, data[offset + NLMSGHDR.size:offset + length]
        offset += _align(length)


def attributes(data: bytes, offset: int) -> dict[int, bytes]:
    """The netlink attributes in data from offset on, by type (the first of
    each); ValueError when a length runs past the data."""
    found: dict[int, bytes] = {}
    while offset + RTATTR.size <= len(data):
        length, kind = RTATTR.unpack_from(data, offset)
        if length < RTATTR.size or offset + length > len(data):
            raise ValueError(f"an attribute of {length} bytes in a message of {len(data) - offset}")
        found.setdefault(kind, data[offset + RTATTR.size:offset + length])
        offset += _align(length)
    return found


def _check_length(payload: bytes, header: struct.Struct) -> None:
    """ValueError if payload is shorter than the header it starts with."""
    if len(payload) < header.size:
        raise ValueError(f"a message of {len(payload)} bytes, shorter than its header of {header.size}")


def parse_address(payload: bytes) -> Address:
    """An RTM_NEWADDR message of a dump; ValueError if it is malformed."""
    _check_length(payload, IFADDRMSG)
    family, prefixlen, flags, scope, index = IFADDRMSG.unpack_from(payload)
    attrs = attributes(payload, IFADDRMSG.size)
    if IFA_FLAGS in attrs:
        if len(attrs[IFA_FLAGS]) != 4:
            raise ValueError(f"IFA_FLAGS of {len(attrs[IFA_FLAGS])} bytes, not 4")
        (flags,) = struct.unpack("=I", attrs[IFA_FLAGS])
    packed = attrs.get(IFA_LOCAL, attrs.get(IFA_ADDRESS))
    if packed is None:
        raise ValueError("an address without IFA_ADDRESS")
    return Address(family, prefixlen, flags, scope, index, ipaddress.ip_address(packed))


def parse_route(payload: bytes) -> Route:
    """An RTM_NEWROUTE message of a dump; ValueError if it is malformed."""
    _check_length(payload, RTMSG)
    family, dst_len, _src_len, _tos, table, protocol, scope, kind, _flags = RTMSG.unpack_from(payload)
    attrs = attributes(payload, RTMSG.size)

    def number(key: int, default):
        if key not in attrs:
            return default
        if len(attrs[key]) != 4:
            raise ValueError(f"a route attribute {key} of {len(attrs[key])} bytes, not 4")
        return struct.unpack("=I", attrs[key])[0]

    def address(key: int):
        return ipaddress.ip_address(attrs[key]) if key in attrs else None

    return Route(family, dst_len, number(RTA_TABLE, table), protocol, scope, kind, address(RTA_DST),
                 address(RTA_GATEWAY), number(RTA_OIF, 0), number(RTA_PRIORITY, None))


def ack_error(flags: int, payload: bytes) -> tuple[int, str | None]:
    """An NLMSG_ERROR message's errno (0: an acknowledgement) and the
    kernel's message in it, if any; ValueError if it is too short."""
    if len(payload) < NLMSGERR.size + NLMSGHDR.size:
        raise ValueError(f"an acknowledgement of {len(payload)} bytes")
    (error,) = NLMSGERR.unpack_from(payload)
    offset = NLMSGERR.size + NLMSGHDR.size
    if not flags & NLM_F_CAPPED:  # the whole request came back, padded
        offset = NLMSGERR.size + _align(NLMSGHDR.unpack_from(payload, NLMSGERR.size)[0])
    text = None
    if flags & NLM_F_ACK_TLVS:
        try:
            message = attributes(payload, offset).get(NLMSGERR_ATTR_MSG)
        except ValueError:
            message = None  # the errno is what counts: a cut message is left out
        if message:
            text = message.split(b"\0")[0].decode(errors="replace") or None
    return -error, text


class Rtnl:
    """An rtnetlink socket of the network namespace the caller is in; close
    it with close() or use it as a context manager.  Every method sends one
    request and returns once the kernel acknowledged it (a dump: once it
    was read to its end); RtnlError if not."""

    def __init__(self):
        try:
            self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_ROUTE)
        except OSError as e:
            raise RtnlError(f"cannot open a netlink socket: {e.strerror}") from None
        try:
            for option in (NETLINK_CAP_ACK, NETLINK_EXT_ACK):
                try:
                    self.sock.setsockopt(SOL_NETLINK, option, 1)
                except OSError:
                    pass  # an older kernel: plain acknowledgements, the errno alone
            self.sock.settimeout(TIMEOUT)
            self.sock.bind((0, 0))
        except OSError as e:
            self.sock.close()
            raise RtnlError(f"cannot bind a netlink socket: {e.strerror}") from None
        self.seq = 0
        self.indexes: dict[str, int] = {}

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> "Rtnl":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def index(self, ifname: str) -> int:
        """The interface index of ifname; RtnlError if there is none."""
        if ifname not in self.indexes:
            try:
                self.indexes[ifname] = socket.if_nametoindex(ifname)
            except OSError:  # it sets no errno: there is no such interface
                raise RtnlError(f"no network interface {ifname!r} in this network namespace") from None
        return self.indexes[ifname]

    def set_link(self, ifname: str, up: bool = False, mtu: int | None = None, mac: str | None = None,
                 noarp: bool | None = None) -> None:
        """Change ifname: bring it up, set its MTU, set its MAC address
        ("02:00:00:00:00:01"), turn ARP (and IPv6 duplicate address
        detection of the addresses it makes) off or on again; one request
        for what is asked."""
        words = []
        attrs = b""
        flags = change = 0
        if up:
            flags, change = IFF_UP, IFF_UP
            words.append(f"bring {ifname} up")
        if noarp is not None:
            flags, change = flags | (IFF_NOARP if noarp else 0), change | IFF_NOARP
            words.append(f"turn ARP {'off' if noarp else 'on'} on {ifname}")
        if mtu is not None:
            attrs += attr(IFLA_MTU, struct.pack("=I", mtu))
            words.append(f"set the MTU of {ifname} to {mtu}")
        if mac is not None:
            attrs += attr(IFLA_ADDRESS, bytes.fromhex(mac.replace(":", "")))
            words.append(f"set the MAC address of {ifname} to {mac}")
        body = IFINFOMSG.pack(socket.AF_UNSPEC, 0, self.index(ifname), flags, change) + attrs
        self.request(" and ".join(words), RTM_NEWLINK, 0, body)

    def replace_address(self, ifname: str, interface, nodad: bool = False) -> None:
        """Give ifname the address interface (an ipaddress.IPv4Interface or
        IPv6Interface), replacing it if it is there; nodad: usable at once,
        without IPv6 duplicate address detection."""
        self._new_address(ifname, interface, nodad, NLM_F_REPLACE)

    def add_address(self, ifname: str, interface, nodad: bool = False) -> None:
        """Give ifname the address interface, which it must not have yet
        (errno EEXIST); nodad as for replace_address()."""
        self._new_address(ifname, interface, nodad, NLM_F_EXCL)

    def _new_address(self, ifname: str, interface, nodad: bool, flags: int) -> None:
        family = socket.AF_INET6 if interface.version == 6 else socket.AF_INET
        packed = interface.ip.packed
        body = IFADDRMSG.pack(family, interface.network.prefixlen, IFA_F_NODAD if nodad else 0, RT_SCOPE_UNIVERSE,
                              self.index(ifname))
        self.request(f"add the address {interface} to {ifname}", RTM_NEWADDR, NLM_F_CREATE | flags,
                     body + attr(IFA_LOCAL, packed) + attr(IFA_ADDRESS, packed))

    def replace_default_route(self, ifname: str, gateway) -> None:
        """The default route of gateway's family (an ipaddress address) via
        gateway on ifname, replacing the one there."""
        family = socket.AF_INET6 if gateway.version == 6 else socket.AF_INET
        body = RTMSG.pack(family, 0, 0, 0, RT_TABLE_MAIN, RTPROT_STATIC, RT_SCOPE_UNIVERSE, RTN_UNICAST, 0)
        body += attr(RTA_GATEWAY, gateway.packed) + attr(RTA_OIF, struct.pack("=i", self.index(ifname)))
        self.request(f"add the default route via {gateway} on {ifname}", RTM_NEWROUTE,
                     NLM_F_CREATE | NLM_F_REPLACE, body)

    def add_route(self, route: Route, append: bool = False) -> None:
        """Add route (its oif an interface index, its table one of the 255
        that rtm_table names); one that is there already fails with errno EEXIST,
        unless append: then IPv4 takes it as one more of the same
        destination (NLM_F_APPEND; IPv6 refuses that)."""
        attrs = b"".join(attr(kind, value) for kind, value in (
            (RTA_DST, route.dst.packed if route.dst is not None else None),
            (RTA_GATEWAY, route.gateway.packed if route.gateway is not None else None),
            (RTA_OIF, struct.pack("=i", route.oif) if route.oif else None),
            (RTA_PRIORITY, struct.pack("=I", route.priority) if route.priority is not None else None),
        ) if value is not None)
        body = RTMSG.pack(route.family, route.dst_len, 0, 0, route.table, route.protocol, route.scope, route.type,
                          0) + attrs
        dst = "default" if route.dst is None and not route.dst_len else f"{route.dst}/{route.dst_len}"
        via = f" via {route.gateway}" if route.gateway is not None else ""
        self.request(f"add the route {dst}{via} on interface {route.oif}", RTM_NEWROUTE,
                     NLM_F_CREATE | (NLM_F_APPEND if append else NLM_F_EXCL), body)

    def addresses(self, family: int, index: int = 0) -> list[Address]:
        """The addresses of family (AF_INET, AF_INET6) in this namespace, of
        interface index only unless 0."""
        what = f"read the {FAMILY_NAMES[family]} addresses"
        found = self._parsed(what, parse_address, self.dump(what, RTM_GETADDR, IFADDRMSG.pack(family, 0, 0, 0, index)))
        return [a for a in found if a.family == family and (not index or a.index == index)]

    def routes(self, family: int) -> list[Route]:
        """The routes of family in this namespace, of every table."""
        what = f"read the {FAMILY_NAMES[family]} routes"
        body = RTMSG.pack(family, 0, 0, 0, 0, 0, 0, 0, 0)
        found = self._parsed(what, parse_route, self.dump(what, RTM_GETROUTE, body))
        return [r for r in found if r.family == family]

    @staticmethod
    def _parsed(what: str, parse, payloads: list[bytes]) -> list:
        """parse() of each payload of a dump; RtnlError, in words, for one
        that is malformed."""
        try:
            return [parse(p) for p in payloads]
        except ValueError as e:
            raise RtnlError(f"cannot {what}: malformed netlink reply ({e})") from None

    def dump(self, what: str, kind: int, body: bytes) -> list[bytes]:
        """Send one dump request (what: in words, after "cannot") and read
        its answer to the end. Return: the payloads of its messages."""
        for _ in range(DUMP_TRIES):
            payloads, interrupted = self._exchange(what, kind, NLM_F_DUMP, body)
            if not interrupted:
                return payloads
        raise RtnlError(f"cannot {what}: the table kept changing while it was read ({DUMP_TRIES} tries)")

    def request(self, what: str, kind: int, flags: int, body: bytes) -> None:
        """Send one request (what: the step in words, after "cannot") and
        wait for its acknowledgement."""
        self._exchange(what, kind, NLM_F_ACK | flags, body)

    def _exchange(self, what: str, kind: int, flags: int, body: bytes) -> tuple[list[bytes], bool]:
        """Send one message and read the answers to it: up to the
        acknowledgement, or for a dump up to NLMSG_DONE.  Return: (the
        payloads of the other answers, whether a dump said it was
        interrupted).  Raises RtnlError."""
        self.seq += 1
        header = NLMSGHDR.pack(NLMSGHDR.size + len(body), kind, NLM_F_REQUEST | flags, self.seq, 0)
        payloads = []
        interrupted = False
        try:
            self.sock.sendto(header + body, (0, 0))
            while True:
                for reply_kind, reply_flags, seq, payload in messages(self.sock.recv(REPLY_MAX)):
                    if seq != self.seq:
                        continue  # not an answer to this request
                    interrupted = interrupted or bool(reply_flags & NLM_F_DUMP_INTR)
                    if reply_kind == NLMSG_DONE:
                        return payloads, interrupted
                    if reply_kind != NLMSG_ERROR:
                        payloads.append(payload)
                        continue
                    error, text = ack_error(reply_flags, payload)
                    if error:
                        raise RtnlError(f"cannot {what}: {os.strerror(error)}" + (f" ({text})" if text else ""),
                                        error)
                    return payloads, interrupted
        except socket.timeout:
            raise RtnlError(f"cannot {what}: the kernel did not answer within {TIMEOUT:g} s") from None
        except ValueError as e:
            raise RtnlError(f"cannot {what}: malformed netlink reply ({e})") from None
        except OSError as e:
            raise RtnlError(f"cannot {what}: {e.strerror}") from None
