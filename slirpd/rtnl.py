"""rtnetlink, spoken directly: the few requests --configure makes, and the
kernel's answers.

Start-up must not wait for a netlink library (pyroute2's import alone takes
longer than slirpd may take to be ready, issue 19), so the requests that
configure the guest are built here and sent over an AF_NETLINK socket of the
network namespace the caller is in: a link's state, MTU or MAC address
(RTM_NEWLINK), an address (RTM_NEWADDR), a default route (RTM_NEWROUTE).

Each request asks for an acknowledgement and the next one goes out only once
it came, so a failure names the one step that failed and nothing after it is
tried.  A refusal is reported in words: what could not be done, the errno's
text, and the kernel's own message where it gives one (extended acks,
NETLINK_EXT_ACK, Linux 4.12 and later), e.g. "cannot set the MTU of tap0 to
70000: Invalid argument (mtu greater than device maximum)".  A reply that
does not come within TIMEOUT, or that is cut short, is an error too.

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

import os
import socket
import struct

NETLINK_ROUTE = 0
SOL_NETLINK = 270
NETLINK_CAP_ACK = 10  # acks carry the request's header only, not all of it
NETLINK_EXT_ACK = 11  # acks may carry the kernel's message (NLMSGERR_ATTR_MSG)

NLMSG_ERROR = 2
NLM_F_REQUEST = 0x1
NLM_F_ACK = 0x4
NLM_F_REPLACE = 0x100
NLM_F_CREATE = 0x400
NLM_F_CAPPED = 0x100  # in an ack: the request was cut to its header
NLM_F_ACK_TLVS = 0x200  # in an ack: extended-ack attributes follow
NLMSGERR_ATTR_MSG = 1

RTM_NEWLINK = 16
RTM_NEWADDR = 20
RTM_NEWROUTE = 24
IFF_UP = 0x1
IFLA_ADDRESS = 1
IFLA_MTU = 4
IFA_ADDRESS = 1
IFA_LOCAL = 2
IFA_F_NODAD = 0x02
RTA_DST = 1
RTA_OIF = 4
RTA_GATEWAY = 5
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


class RtnlError(Exception):
    """A request failed or got no proper answer; str() says which, and why."""


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
    while flags & NLM_F_ACK_TLVS and offset + RTATTR.size <= len(payload):
        length, kind = RTATTR.unpack_from(payload, offset)
        if length < RTATTR.size or offset + length > len(payload):
            break
        if kind == NLMSGERR_ATTR_MSG:
            text = payload[offset + RTATTR.size:offset + length].split(b"\0")[0].decode(errors="replace") or None
        offset += _align(length)
    return -error, text


class Rtnl:
    """An rtnetlink socket of the network namespace the caller is in; close
    it with close() or use it as a context manager.  Every method sends one
    request and returns once the kernel acknowledged it; RtnlError if not."""

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

    def set_link(self, ifname: str, up: bool = False, mtu: int | None = None, mac: str | None = None) -> None:
        """Change ifname: bring it up, set its MTU, set its MAC address
        ("02:00:00:00:00:01"); one request for what is asked."""
        words = []
        attrs = b""
        if up:
            words.append(f"bring {ifname} up")
        if mtu is not None:
            attrs += attr(IFLA_MTU, struct.pack("=I", mtu))
            words.append(f"set the MTU of {ifname} to {mtu}")
        if mac is not None:
            attrs += attr(IFLA_ADDRESS, bytes.fromhex(mac.replace(":", "")))
            words.append(f"set the MAC address of {ifname} to {mac}")
        flags = IFF_UP if up else 0
        body = IFINFOMSG.pack(socket.AF_UNSPEC, 0, self.index(ifname), flags, flags) + attrs
        self.request(" and ".join(words), RTM_NEWLINK, 0, body)

    def replace_address(self, ifname: str, interface, nodad: bool = False) -> None:
        """Give ifname the address interface (an ipaddress.IPv4Interface or
        IPv6Interface), replacing it if it is there; nodad: usable at once,
        without IPv6 duplicate address detection."""
        family = socket.AF_INET6 if interface.version == 6 else socket.AF_INET
        packed = interface.ip.packed
        body = IFADDRMSG.pack(family, interface.network.prefixlen, IFA_F_NODAD if nodad else 0, RT_SCOPE_UNIVERSE,
                              self.index(ifname))
        self.request(f"add the address {interface} to {ifname}", RTM_NEWADDR, NLM_F_CREATE | NLM_F_REPLACE,
                     body + attr(IFA_LOCAL, packed) + attr(IFA_ADDRESS, packed))

    def replace_default_route(self, ifname: str, gateway) -> None:
        """The default route of gateway's family (an ipaddress address) via
        gateway on ifname, replacing the one there."""
        family = socket.AF_INET6 if gateway.version == 6 else socket.AF_INET
        body = RTMSG.pack(family, 0, 0, 0, RT_TABLE_MAIN, RTPROT_STATIC, RT_SCOPE_UNIVERSE, RTN_UNICAST, 0)
        body += attr(RTA_GATEWAY, gateway.packed) + attr(RTA_OIF, struct.pack("=i", self.index(ifname)))
        self.request(f"add the default route via {gateway} on {ifname}", RTM_NEWROUTE,
                     NLM_F_CREATE | NLM_F_REPLACE, body)

    def request(self, what: str, kind: int, flags: int, body: bytes) -> None:
        """Send one request (what: the step in words, after "cannot") and
        wait for its acknowledgement."""
        self.seq += 1
        header = NLMSGHDR.pack(NLMSGHDR.size + len(body), kind, NLM_F_REQUEST | NLM_F_ACK | flags, self.seq, 0)
        try:
            self.sock.sendto(header + body, (0, 0))
            while True:
                for reply_kind, reply_flags, seq, payload in messages(self.sock.recv(REPLY_MAX)):
                    if seq != self.seq or reply_kind != NLMSG_ERROR:
                        continue  # not the answer to this request
                    error, text = ack_error(reply_flags, payload)
                    if error:
                        raise RtnlError(f"cannot {what}: {os.strerror(error)}" + (f" ({text})" if text else ""))
                    return
        except socket.timeout:
            raise RtnlError(f"cannot {what}: the kernel did not answer within {TIMEOUT:g} s") from None
        except ValueError as e:
            raise RtnlError(f"cannot {what}: malformed netlink reply ({e})") from None
        except OSError as e:
            raise RtnlError(f"cannot {what}: {e.strerror}") from None
