"""Automatic forwarding: every port a server binds in the guest's namespace
becomes reachable from the host, and stops being when it is closed.

pasta's `-t auto` / `-u auto` (rootlesskit's implicit port driver relies on
it) and the slirp4netns interface's `--publish auto[,~EXCLUDED...]`.

How the guest's ports are seen: a NETLINK_SOCK_DIAG socket created inside
the guest's network namespace at setup (netns.py's helper opens it there and
sends it back with the TAP, over SCM_RIGHTS) keeps answering for that
namespace from anywhere, also under --enable-seccomp (no socket is opened
once serving, only sendmsg and recvmsg on this one).  Once a second
(SCAN_INTERVAL) the watcher asks it for the listening TCP sockets and the
bound, unconnected UDP sockets, IPv4 and IPv6 (inet_diag dumps: four
requests, each answer read READS_MAX times at most, REPLY_MAX bytes at
a time, each read waiting RECV_TIMEOUT at most), and opens or closes host forwards to match: host port P to the
guest's port P, as pasta does.  As pasta does too, a UDP port is also
forwarded for each TCP port listening (iperf3 and others pair them), and a
port the other direction already uses is left alone (pasta's "don't loop
back our own ports": `excluded` ports, and those a `reverse` AutoForwarder
has open; a UDP port also when it is one of those TCP ports).  UDP ports in
the ephemeral range are ignored: those are clients' sockets (resolvers,
the daemon's own for the guest's flows, ...), not servers.

The same watcher serves the other direction (nsautofwd.py, pasta's -T/-U
auto): a sock_diag socket of the host's namespace, and forwards that bind
inside the guest's.  A forwards object that can open no more raises
ForwardingStopped: the watcher says so once and stops.

Bounds: AUTO_MAX automatic forwards at once; a port whose host side cannot be
bound (in use on the host) is logged once and tried again only after it was
closed and bound anew in the guest.  The forwards show in list_hostfwd with
"auto": true and in get_stats; get_stats also has this watcher's section.
"""

from __future__ import annotations

import errno
import socket
import struct
import time

from slirpd.log import log
from slirpd.portspec import PortRange, ephemeral_ports

NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
NLM_F_REQUEST, NLM_F_DUMP = 0x1, 0x300
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLMSG_HDR = struct.Struct("=IHHII")
INET_DIAG_REQ = struct.Struct("=BBBBI48s")  # family, protocol, ext, pad, states, sockid
INET_DIAG_MSG_SPORT = 4  # offset of the source port (big-endian) in struct inet_diag_msg
TCP_LISTEN, UDP_UNCONNECTED = 10, 7  # socket states (include/net/tcp_states.h: TCP_CLOSE for UDP)
SCAN_INTERVAL = 1.0  # seconds between scans
REPLY_MAX = 65536  # bytes read from the socket at once
READS_MAX = 256  # reads of one dump's answer at most
RECV_TIMEOUT = 0.2  # seconds a read may wait (SO_RCVTIMEO: no poll, no sleep under seccomp)
AUTO_MAX = 1024  # automatic forwards at once


class ForwardingStopped(OSError):
    """Raised by a forwards object's add() when no forward can be opened
    any more (nsbinder.py's helper is gone)."""


def open_diag_socket() -> int:
    """A NETLINK_SOCK_DIAG socket of the namespace we are in (the helper
    calls it inside the guest's, the daemon in the host's at setup).  Return: its fd, close-on-exec."""
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC, NETLINK_SOCK_DIAG)
    return sock.detach()


def _request(family: int, proto: int, state: int, seq: int) -> bytes:
    body = INET_DIAG_REQ.pack(family, proto, 0, 0, 1 << state, b"\0" * 48)
    return NLMSG_HDR.pack(NLMSG_HDR.size + len(body), SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST | NLM_F_DUMP, seq, 0) + body


def parse_dump(data: bytes, seq: int) -> tuple[set[int], bool]:
    """The source ports of the inet_diag messages in one read of a dump.
    Return: (ports, done: the dump ended, NLMSG_DONE or an error).  Raises
    ValueError for a message that runs past the data."""
    ports, off = set(), 0
    while off + NLMSG_HDR.size <= len(data):
        length, kind, _flags, msg_seq, _pid = NLMSG_HDR.unpack_from(data, off)
        if length < NLMSG_HDR.size or off + length > len(data):
            raise ValueError("truncated netlink message")
        if msg_seq == seq:
            if kind in (NLMSG_DONE, NLMSG_ERROR):
                return ports, True
            if kind == SOCK_DIAG_BY_FAMILY and length >= NLMSG_HDR.size + INET_DIAG_MSG_SPORT + 2:
                ports.add(struct.unpack_from("!H", data, off + NLMSG_HDR.size + INET_DIAG_MSG_SPORT)[0])
        off += (length + 3) & ~3
    return ports, False


class PortWatcher:
    """The guest's listening TCP and bound UDP ports, through a sock_diag
    socket of its namespace (which this object then owns)."""

    def __init__(self, fd: int):
        self.sock = socket.socket(fileno=fd)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO,
                             struct.pack("=qq", 0, int(RECV_TIMEOUT * 1e6)))
        self.seq = 0

    def _dump(self, family: int, proto: int, state: int) -> set[int]:
        """One dump: the source ports of the sockets of family and proto in
        state.  Raises ValueError if the answer is cut short."""
        self.seq += 1
        self.sock.send(_request(family, proto, state, self.seq))
        ports = set()
        for _ in range(READS_MAX):
            try:
                data = self.sock.recv(REPLY_MAX)
            except BlockingIOError:
                break
            got, done = parse_dump(data, self.seq)
            ports |= got
            if done:
                return ports
        self._drain()
        raise ValueError("the answer to a socket dump was cut short")

    def _drain(self) -> None:
        """Drop what is left of an answer cut short, so the next one starts clean."""
        try:
            for _ in range(READS_MAX):
                self.sock.recv(REPLY_MAX, socket.MSG_DONTWAIT)
        except BlockingIOError:
            pass

    def scan(self) -> dict[str, set[int]]:
        """{"tcp": listening ports, "udp": bound unconnected ports}, both families."""
        found = {"tcp": set(), "udp": set()}
        for family in (socket.AF_INET, socket.AF_INET6):
            found["tcp"] |= self._dump(family, socket.IPPROTO_TCP, TCP_LISTEN)
            found["udp"] |= self._dump(family, socket.IPPROTO_UDP, UDP_UNCONNECTED)
        return found

    def close(self) -> None:
        self.sock.close()


class AutoForwarder:
    """Keeps host forwards matching the guest's bound ports.

    protos: the protocols forwarded automatically ("tcp", "udp");
    forwards: forward.Forwards; targets: [(host address, guest address,
    v6only)] each port is forwarded on (pasta: both families); excluded:
    {proto: ports} never forwarded (the other direction's); reverse: the
    AutoForwarder of the other direction, whose open ports are excluded too
    (set once both exist); sides: where the ports are watched and where
    they are bound, as log lines name them."""

    def __init__(self, watcher: PortWatcher, forwards, protos, targets, excluded=None, sides=("guest", "host")):
        self.watcher = watcher
        self.sides = sides
        self.forwards = forwards
        self.protos = tuple(protos)
        self.targets = list(targets)
        self.excluded = {p: set((excluded or {}).get(p, ())) for p in ("tcp", "udp")}
        self.ephemeral = ephemeral_ports()
        self.active: dict[tuple[str, int], list[int]] = {}  # (proto, port) -> forward ids
        self.failed: set[tuple[str, int]] = set()  # could not be bound, until the guest drops the port
        self.next_scan = time.monotonic()
        self.scans = 0
        self.errors = 0
        self.capped = False
        self.stopped = False
        self.reverse: AutoForwarder | None = None

    def wanted(self, found: dict[str, set[int]]) -> set[tuple[str, int]]:
        """The (proto, port) pairs to forward for a scan's result."""
        udp = {p for p in found["udp"] if p not in range(self.ephemeral.first, self.ephemeral.last + 1)}
        ports = {"tcp": found["tcp"], "udp": udp | found["tcp"]}
        ours = {p: self.excluded[p] | (self.reverse.ports(p) if self.reverse else set()) for p in ("tcp", "udp")}
        ours["udp"] = ours["udp"] | ours["tcp"]
        return {(proto, port) for proto in self.protos for port in ports[proto] if port not in ours[proto]}

    def ports(self, proto: str) -> set[int]:
        """The ports of proto forwarded now."""
        return {port for p, port in self.active if p == proto}

    def timeout(self) -> float | None:
        """Seconds until the next scan is due (None once stopped)."""
        return None if self.stopped else max(0.0, self.next_scan - time.monotonic())

    def expire(self) -> None:
        """Scan if due, and open and close forwards to match."""
        if self.stopped or time.monotonic() < self.next_scan:
            return
        self.next_scan = time.monotonic() + SCAN_INTERVAL
        try:
            want = self.wanted(self.watcher.scan())
        except (OSError, ValueError) as e:
            self.errors += 1
            if self.errors == 1:
                log.warning("automatic forwarding: cannot read the %s's ports: %s", self.sides[0], e)
            return
        self.scans += 1
        for key in [k for k in self.active if k not in want]:
            self._close(key)
        self.failed &= want
        for key in sorted(want - set(self.active) - self.failed):
            if len(self.active) >= AUTO_MAX:
                if not self.capped:
                    log.warning("automatic forwarding: %d ports forwarded, no more", AUTO_MAX)
                self.capped = True
                break
            try:
                self._open(key)
            except ForwardingStopped as e:
                log.warning("automatic forwarding stopped: %s", e.strerror)
                self.stopped = True
                break

    def _open(self, key: tuple[str, int]) -> None:
        proto, port = key
        ids = []
        for host_addr, guest_addr, v6only in self.targets:
            try:
                ids.append(self.forwards.add(proto, host_addr, PortRange(port, port), guest_addr, port,
                                             v6only=v6only, auto=True))
            except ForwardingStopped:
                for fwd_id in ids:
                    self.forwards.remove(fwd_id)
                raise
            except OSError as e:
                if e.errno != errno.EAFNOSUPPORT:
                    log.warning("automatic forwarding: %s port %d bound in the %s, not in the %s: %s",
                                proto, port, *self.sides, e.strerror)
        if ids:
            self.active[key] = ids
            log.debug("automatic forwarding: %s port %d", proto, port)
        else:
            self.failed.add(key)

    def _close(self, key: tuple[str, int]) -> None:
        for fwd_id in self.active.pop(key):
            self.forwards.remove(fwd_id)
        log.debug("automatic forwarding: %s port %d closed", *key)

    def stats(self) -> dict:
        """The get_stats section."""
        return {"ports": sorted(f"{p}/{n}" for p, n in self.active), "scans": self.scans,
                "not_bound_on_host": sorted(f"{p}/{n}" for p, n in self.failed), "scan_errors": self.errors,
                "at_limit": self.capped, "stopped": self.stopped}

    def close(self) -> None:
        for key in list(self.active):
            self._close(key)
        self.watcher.close()
