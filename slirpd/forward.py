"""Port forwarding: host sockets bound for add_hostfwd, --publish and pasta's
-t/-u, plugged into the data plane.

Python binds the host socket (so "port already in use" is an error reply, not
a data plane failure) and hands its fd to the data plane, which accepts TCP
connections and opens them into the guest (a SYN from the host's address as
the guest sees it), or relays UDP datagrams.  A client on the host's loopback
appears to the guest as the gateway; any other client keeps its own address
(csrc/fwd.c, fwd_guest_view()).

One forward, one id, may hold a range of ports (portspec.py): a socket per
port, each registered with the data plane under an id of its own (the data
plane's ids count up separately and are never reused either).  A forward
can be bound to one interface (SO_BINDTODEVICE: pasta's ADDR%IF).
"""

from __future__ import annotations

import ipaddress
import socket

from slirpd.portspec import PortRange

SO_BINDTODEVICE = getattr(socket, "SO_BINDTODEVICE", 25)


class Forward:
    """One forward: host ports host_ports on host_addr (through ifname, if
    given) to guest ports from guest_first on guest_addr (addresses as
    ipaddress objects), the bound host sockets and the data plane's ids of
    them.  auto: opened by the automatic forwarding (autofwd.py).  A plain
    class, not a dataclass (issue 19: the dataclasses module costs start-up
    time)."""

    __slots__ = ("fwd_id", "proto", "host_addr", "host_ports", "guest_addr", "guest_first", "socks", "dp_ids",
                 "ifname", "auto")

    def __init__(self, fwd_id: int, proto: str, host_addr, host_ports: PortRange, guest_addr, guest_first: int,
                 socks: list, dp_ids: list, ifname: str | None = None, auto: bool = False):
        self.fwd_id, self.proto, self.socks, self.dp_ids = fwd_id, proto, socks, dp_ids
        self.host_addr, self.host_ports = host_addr, host_ports
        self.guest_addr, self.guest_first = guest_addr, guest_first
        self.ifname, self.auto = ifname, auto

    @property
    def guest_ports(self) -> PortRange:
        return PortRange(self.guest_first, self.guest_first + len(self.host_ports) - 1)

    def entry(self) -> dict:
        """The list_hostfwd entry, keys in slirp4netns's order.  A single
        port is a number, as slirp4netns shows it; a range "FIRST-LAST", and
        "interface" and "auto" appear only when set (slirpd extensions)."""
        def port(r: PortRange):
            return r.first if len(r) == 1 else str(r)

        entry = {"id": self.fwd_id, "proto": self.proto, "host_addr": str(self.host_addr),
                 "host_port": port(self.host_ports), "guest_addr": str(self.guest_addr),
                 "guest_port": port(self.guest_ports)}
        if self.ifname:
            entry["interface"] = self.ifname
        if self.auto:
            entry["auto"] = True
        return entry


def bind_host_socket(proto: str, addr, port: int, ifname: str | None = None, v6only: bool = False,
                     freebind: bool = False) -> socket.socket:
    """A bound (and, for TCP, listening) non-blocking host socket; an IPv6
    one takes IPv4 clients too unless v6only; ifname: only through that
    interface; freebind: addr need not be the host's (yet).  Raises OSError."""
    family = socket.AF_INET6 if addr.version == 6 else socket.AF_INET
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    sock = socket.socket(family, kind | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC)
    try:
        if proto == "tcp":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, int(v6only))
        if ifname:
            sock.setsockopt(socket.SOL_SOCKET, SO_BINDTODEVICE, ifname.encode())
        if freebind:
            sock.setsockopt(socket.SOL_IP, socket.IP_FREEBIND, 1)
        sock.bind((str(addr), port))
        if proto == "tcp":
            sock.listen(socket.SOMAXCONN)
    except OSError:
        sock.close()
        raise
    return sock


class Forwards:
    """The table of forwards, ids counting up from 1 and never reused.
    freebind: host sockets bind with IP_FREEBIND (pasta's --freebind)."""

    def __init__(self, cfg, dataplane, freebind: bool = False):
        self.cfg = cfg
        self.dp = dataplane
        self.freebind = freebind
        self.table: dict[int, Forward] = {}
        self.next_id = 1
        self.next_dp_id = 1

    def guest_address(self, text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
        """The guest address a forward goes to: "" means the configured guest
        address; otherwise a host address of the virtual network that is not
        the gateway's or the DNS forwarder's, or with -6 an address of the
        IPv6 prefix other than those.  Raises ValueError."""
        if not text:
            return self.cfg.network.guest_for(4)
        if ":" in text:
            addr6 = ipaddress.IPv6Address(text)
            if not self.cfg.enable_ipv6 or not self.cfg.is_guest_address6(addr6):
                raise ValueError(f"{addr6} is not a guest address of {self.cfg.net6}")
            return addr6
        addr = ipaddress.IPv4Address(text)
        net = self.cfg.cidr
        if addr not in net or addr in (net.network_address, net.broadcast_address, self.cfg.gateway, self.cfg.dns):
            raise ValueError(f"{addr} is not a guest address of {net}")
        return addr

    def add(self, proto: str, host_addr, host_ports: PortRange | int, guest_addr, guest_first: int,
            ifname: str | None = None, v6only: bool = False, auto: bool = False) -> int:
        """Bind and plug in a forward of every port of host_ports (a
        PortRange, or one port).  Return: its id.  Raises OSError (none of
        it is left bound), with the port that failed in its filename."""
        if isinstance(host_ports, int):
            host_ports = PortRange(host_ports, host_ports)
        fwd = Forward(self.next_id, proto, host_addr, host_ports, guest_addr, guest_first, [], [], ifname, auto)
        try:
            for port in host_ports:
                try:
                    fwd.socks.append(bind_host_socket(proto, host_addr, port, ifname, v6only, self.freebind))
                except OSError as e:
                    raise OSError(e.errno, e.strerror, str(port)) from None
                self.dp.add_forward(self.next_dp_id, fwd.socks[-1].fileno(), proto, guest_addr,
                                    guest_first + port - host_ports.first)
                fwd.dp_ids.append(self.next_dp_id)
                self.next_dp_id += 1
        except OSError:
            self._unplug(fwd)
            raise
        self.table[fwd.fwd_id] = fwd
        self.next_id += 1
        return fwd.fwd_id

    def reserve_ids(self, n: int) -> int:
        """n data plane ids for sockets registered elsewhere (nsports.py).
        Return: the first."""
        first = self.next_dp_id
        self.next_dp_id += n
        return first

    def _unplug(self, fwd: Forward) -> None:
        for dp_id in fwd.dp_ids:
            self.dp.remove_forward(dp_id)
        for sock in fwd.socks:
            sock.close()

    def remove(self, fwd_id: int) -> bool:
        """Unplug and close a forward. Return: False if there is no such id."""
        fwd = self.table.pop(fwd_id, None)
        if fwd is None:
            return False
        self._unplug(fwd)
        return True

    def entries(self) -> list[dict]:
        return [f.entry() for f in self.table.values()]

    def stats(self) -> list[dict]:
        """Each forward's list entry with its connection count."""
        return [{**f.entry(), "connections": sum(self.dp.forward_connections(i) for i in f.dp_ids)}
                for f in self.table.values()]

    def close(self) -> None:
        for fwd_id in list(self.table):
            self.remove(fwd_id)
