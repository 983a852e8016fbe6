"""Sockets made inside the guest's network namespace at setup.

pasta's -T and -U forward ports of the namespace's own loopback to the
host's.  That loopback never crosses the TAP, so the ports are listened on
from inside: netns.py's helper, which joins the namespace to open the TAP,
also binds a socket there per port and family (127.0.0.1 and, unless IPv4
only, ::1) and sends them back with the TAP over SCM_RIGHTS.  The data plane
then serves them like forwards (dp_fwd_add_splice(): TCP is spliced,
csrc/splice.c; UDP relayed, csrc/udp.c) to the host's 127.0.0.1 or ::1, at
the port the spec maps to.  Automatic forwarding's sock_diag socket
(autofwd.py) is made there the same way.  Nothing here runs once serving:
the daemon never joins the namespace again, and no socket of another family
than AF_INET and AF_INET6 is opened after seccomp's filter.

Bounded: NS_SOCKETS_MAX descriptors at most (one SCM_RIGHTS message), so a
-T/-U spec of more ports than that is refused at start-up.
"""

from __future__ import annotations

import ipaddress
import socket

from slirpd._linux import SetupError
from slirpd.autofwd import open_diag_socket
from slirpd.nsbinder import bind_loopback
from slirpd.portspec import Spec

NS_SOCKETS_MAX = 250  # below SCM_MAX_FD (253), with the TAP
LOOPBACK = {4: ipaddress.IPv4Address("127.0.0.1"), 6: ipaddress.IPv6Address("::1")}


class NamespaceSockets:
    """The plan: for each -T/-U port and family, (proto, version, namespace
    port, host port); diag: also a sock_diag socket, last."""

    def __init__(self, tcp_ns: Spec, udp_ns: Spec, ipv6: bool, diag: bool):
        versions = (4, 6) if ipv6 else (4,)
        self.plan = [(proto, v, ns_port, host_port)
                     for proto, spec in (("tcp", tcp_ns), ("udp", udp_ns)) if spec.mode == "ports"
                     for m in spec.maps for ns_port, host_port in m.pairs() for v in versions]
        self.diag = diag
        self.socks: list[socket.socket] = []
        if self.count > NS_SOCKETS_MAX:
            raise SetupError(f"Can't open enough sockets for -T/-U: {len(self.plan)} ports and families, "
                             f"at most {NS_SOCKETS_MAX}")

    @property
    def count(self) -> int:
        """Descriptors open() returns."""
        return len(self.plan) + self.diag

    def ports(self, proto: str) -> set[int]:
        """The namespace ports of a protocol that are ours (automatic
        forwarding leaves them alone)."""
        return {p for pr, _v, p, _h in self.plan if pr == proto}

    def open(self) -> list[int]:
        """In the namespace (the helper): bind every socket of the plan.
        Return: their fds, in plan order, then the diag socket's."""
        fds = []
        for proto, version, ns_port, _host in self.plan:
            try:
                sock = bind_loopback(proto, version, ns_port)
            except OSError as e:
                letter = "T" if proto == "tcp" else "U"
                raise SetupError(f"Failed to bind port {ns_port} ({e.strerror}) for option '-{letter}' "
                                 "in the namespace, exiting") from None
            fds.append(sock.detach())
        if self.diag:
            fds.append(open_diag_socket())
        return fds

    def attach(self, dp, fds: list[int], first_id: int) -> int | None:
        """Register the plan's sockets (fds from open(), taken over) with the
        data plane, under ids from first_id on.  Return: the diag socket's
        fd, or None.  Raises OSError."""
        for i, (proto, version, _ns_port, host_port) in enumerate(self.plan):
            family = socket.AF_INET if version == 4 else socket.AF_INET6
            kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
            self.socks.append(socket.socket(family, kind, fileno=fds[i]))
            dp.add_splice(first_id + i, fds[i], proto, LOOPBACK[version], host_port)
        return fds[len(self.plan)] if self.diag else None

    def close(self) -> None:
        """Close the namespace's sockets (after the data plane let go of them)."""
        for sock in self.socks:
            sock.close()
