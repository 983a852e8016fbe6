"""pasta's `-T auto` / `-U auto`, its default: every port bound in the
host's namespace becomes reachable on the guest namespace's loopback.

As pasta does (fwd.c, tcp_port_rebind()/udp_port_rebind()): once a second
the ports listening (TCP) or bound and unconnected (UDP, and a UDP port per
TCP one) in the namespace slirpd runs in are read, on any address, both
families; each is then bound on the guest's 127.0.0.1 and, unless IPv4 only,
::1, and spliced to the host's 127.0.0.1 or ::1 at the same port, as fixed
-T/-U ports are (nsports.py, csrc/splice.c).  Ports the other direction uses
are left alone: -t/-u's host ports and those -t/-u auto has open (slirpd's
own listening sockets on the host), so nothing loops back.  UDP ports of the
ephemeral range are left alone too, unlike pasta: slirpd's sockets for the
guest's own UDP flows are bound there on the host.

The scanning is autofwd.py's (its AutoForwarder, with a sock_diag socket of
the host's namespace opened at setup); the binding inside is nsbinder.py's
helper, as the daemon may open no such socket once serving.  Bounded by
autofwd's AUTO_MAX ports; a helper gone stops it, logged once.
"""

from __future__ import annotations

from slirpd.autofwd import AutoForwarder, PortWatcher, open_diag_socket
from slirpd.nsbinder import NamespaceBinder
from slirpd.nsports import LOOPBACK


class SpliceForwards:
    """The forwards table AutoForwarder drives, for this direction: add()
    has the helper bind a socket in the guest's namespace and splices it to
    the host's loopback; ids are the data plane's, from forwards (the main
    table, forward.Forwards) so that none is shared."""

    def __init__(self, dp, forwards, binder: NamespaceBinder):
        self.dp = dp
        self.forwards = forwards
        self.binder = binder
        self.socks = {}  # data plane id -> the socket bound in the guest's namespace

    def add(self, proto: str, version: int, ports, host_addr, host_port: int, v6only: bool = True,
            auto: bool = True) -> int:
        """Bind ports.first of the guest's loopback of version, splice it to
        host_addr:host_port.  Return: its id.  Raises OSError
        (nsbinder.HelperGone, an autofwd.ForwardingStopped, when the helper
        is gone)."""
        sock = self.binder.bind(proto, version, ports.first)
        dp_id = self.forwards.reserve_ids(1)
        try:
            self.dp.add_splice(dp_id, sock.fileno(), proto, host_addr, host_port)
        except OSError:
            sock.close()
            raise
        self.socks[dp_id] = sock
        return dp_id

    def remove(self, dp_id: int) -> None:
        """Stop splicing a port and close its socket in the guest's namespace."""
        self.dp.remove_forward(dp_id)
        self.socks.pop(dp_id).close()


def reverse_auto(binder: NamespaceBinder, dp, forwards, protos, versions, excluded) -> AutoForwarder:
    """At setup: the host's port watcher and the AutoForwarder of protos
    ("tcp", "udp") on versions (4, 6), binding through binder, leaving the
    ports of excluded ({proto: ports}) alone.  Return: it, closed by the
    caller before the binder."""
    watcher = PortWatcher(open_diag_socket())
    targets = [(v, LOOPBACK[v], True) for v in versions]  # the host's, the same addresses
    auto = AutoForwarder(watcher, SpliceForwards(dp, forwards, binder), protos, targets, excluded,
                         sides=("host", "namespace"))
    return auto
