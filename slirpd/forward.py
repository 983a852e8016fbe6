"""Port forwarding: host sockets bound for add_hostfwd / --publish, plugged
into the data plane.

Python binds the host socket (so "port already in use" is an error reply, not
a data plane failure) and hands its fd to the data plane, which accepts TCP
connections and opens them into the guest (a SYN from the host's address as
the guest sees it), or relays UDP datagrams.  A client on the host's loopback
appears to the guest as the gateway; any other client keeps its own address.
"""

from __future__ import annotations

import ipaddress
import socket

from slirpd.config import Config


class Forward:
    """One forwarded host port: its id, "tcp" or "udp", the host address
    and port, the guest address and port (addresses as ipaddress objects),
    and the bound host socket."""

    __slots__ = ("fwd_id", "proto", "host_addr", "host_port", "guest_addr", "guest_port", "sock")

    def __init__(self, fwd_id: int, proto: str, host_addr, host_port: int, guest_addr, guest_port: int,
                 sock: socket.socket):
        self.fwd_id, self.proto, self.sock = fwd_id, proto, sock
        self.host_addr, self.host_port = host_addr, host_port
        self.guest_addr, self.guest_port = guest_addr, guest_port

    def entry(self) -> dict:
        """The list_hostfwd entry, keys in slirp4netns's order."""
        return {"id": self.fwd_id, "proto": self.proto, "host_addr": str(self.host_addr),
                "host_port": self.host_port, "guest_addr": str(self.guest_addr), "guest_port": self.guest_port}


def bind_host_socket(proto: str, addr, port: int) -> socket.socket:
    """A bound (and, for TCP, listening) non-blocking host socket; raises OSError."""
    family = socket.AF_INET6 if addr.version == 6 else socket.AF_INET
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    sock = socket.socket(family, kind | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC)
    try:
        if proto == "tcp":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind((str(addr), port))
        if proto == "tcp":
            sock.listen(socket.SOMAXCONN)
    except OSError:
        sock.close()
        raise
    return sock


class Forwards:
    """The table of forwards, ids counting up from 1 and never reused."""

    def __init__(self, cfg: Config, dataplane):
        self.cfg = cfg
        self.dp = dataplane
        self.table: dict[int, Forward] = {}
        self.next_id = 1

    def guest_address(self, text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
        """The guest address a forward goes to: "" means the configured guest
        address; otherwise a host address of the virtual network that is not
        the gateway's or the DNS forwarder's, or with -6 an address of the
        IPv6 prefix other than those.  Raises ValueError."""
        if not text:
            return self.cfg.guest
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

    def add(self, proto: str, host_addr, host_port: int, guest_addr, guest_port: int) -> int:
        """Bind and plug in a forward. Return: its id. Raises OSError."""
        sock = bind_host_socket(proto, host_addr, host_port)
        fwd = Forward(self.next_id, proto, host_addr, host_port, guest_addr, guest_port, sock)
        try:
            self.dp.add_forward(fwd.fwd_id, sock.fileno(), proto, guest_addr, guest_port)
        except OSError:
            sock.close()
            raise
        self.table[fwd.fwd_id] = fwd
        self.next_id += 1
        return fwd.fwd_id

    def remove(self, fwd_id: int) -> bool:
        """Unplug and close a forward. Return: False if there is no such id."""
        fwd = self.table.pop(fwd_id, None)
        if fwd is None:
            return False
        self.dp.remove_forward(fwd_id)
        fwd.sock.close()
        return True

    def entries(self) -> list[dict]:
        return [f.entry() for f in self.table.values()]

    def stats(self) -> list[dict]:
        """Each forward's list entry with its connection count."""
        return [{**f.entry(), "connections": self.dp.forward_connections(f.fwd_id)} for f in self.table.values()]

    def close(self) -> None:
        for fwd_id in list(self.table):
            self.remove(fwd_id)
