"""The only door to the compiled data plane (slirpd._dp, built from csrc/).

No other module touches ``ffi`` or ``lib``.  A :class:`Dataplane` owns one C
``struct dp``: the TAP descriptor it was given, an epoll descriptor to wait on,
preallocated frame buffers and counters.

Ownership of the TAP descriptor: once the constructor returns, the Dataplane
owns ``tap_fd`` and :meth:`close` closes it (pass ``os.dup(fd)`` to keep your
own).  If the constructor raises, the caller still owns it.
"""

from __future__ import annotations

import ipaddress
import math
import os
import socket
import sys

from slirpd._dp import ffi, lib

__all__ = ["Dataplane", "TapGone", "counter_names", "NOTICE_PING_FORBIDDEN", "NOTICE_CTL_FRAMES",
           "NOTICE_PCAP_STOPPED", "NOTICE_SOCK_SHORT", "NOTICE_DNS_USED", "NOTICE_NS_LO_LOW", "PCAP_OFF", "PCAP_ON", "PCAP_FULL"]

NOTICE_PING_FORBIDDEN = lib.DP_NOTICE_PING_FORBIDDEN
NOTICE_CTL_FRAMES = lib.DP_NOTICE_CTL_FRAMES
NOTICE_PCAP_STOPPED = lib.DP_NOTICE_PCAP_STOPPED
NOTICE_SOCK_SHORT = lib.DP_NOTICE_SOCK_SHORT
NOTICE_DNS_USED = lib.DP_NOTICE_DNS_USED
NOTICE_NS_LO_LOW = lib.DP_NOTICE_NS_LO_LOW
PCAP_OFF = lib.DP_PCAP_OFF
PCAP_ON = lib.DP_PCAP_ON
PCAP_FULL = lib.DP_PCAP_FULL

_COUNTER_NAMES = tuple(ffi.string(lib.dp_counter_name(i)).decode("ascii")
                       for i in range(lib.dp_counter_count()))
_FLOW_STATE_NAMES = tuple(ffi.string(lib.dp_flow_state_name(i)).decode("ascii")
                          for i in range(lib.dp_flow_state_count()))
_CLOSE_REASON_NAMES = tuple(ffi.string(lib.dp_flow_close_reason_name(i)).decode("ascii")
                            for i in range(lib.dp_flow_close_reason_count()))


def counter_names() -> tuple[str, ...]:
    """Names of the data plane counters, in the C core's order."""
    return _COUNTER_NAMES


class TapGone(Exception):
    """The TAP device went away (its interface or network namespace was deleted)."""


def _addr16(value) -> bytes:
    """An address as the 16 bytes of C's union inany_addr: an IPv6 address
    as is, an IPv4 address in its IPv4-mapped form."""
    addr = ipaddress.ip_address(value)
    if addr.version == 4:
        addr = ipaddress.IPv6Address(b"\0" * 10 + b"\xff\xff" + addr.packed)
    return addr.packed


def _addr4(value) -> int:
    """An IPv4 address as the uint32_t the C side wants: network byte order,
    that is the four address bytes in memory order, whatever the host's
    endianness."""
    return int.from_bytes(ipaddress.IPv4Address(value).packed, sys.byteorder)


_RULE_KINDS = {"block": lib.DP_RULE_BLOCK, "dns": lib.DP_RULE_DNS, "redirect": lib.DP_RULE_REDIRECT}


def _network_config(c, net) -> None:
    """Fill the address fields and rules of a struct dp_config from a
    netmodel.GuestNetwork.  Raises OSError (EINVAL) for more rules than the
    data plane holds."""
    if net.guest4 is not None:
        c.net4 = _addr4(net.guest4.network.network_address)
        c.mask4 = _addr4(net.guest4.network.netmask)
        c.guest4 = _addr4(net.guest4.ip)
    if net.gateway4 is not None:
        c.gw4 = _addr4(net.gateway4)
    c.enable_ipv6 = int(net.ipv6)
    for name, value in (("net6", net.prefix6 and net.prefix6.network_address), ("gw6", net.gateway6),
                        ("guest6", net.guest6 and net.guest6.ip), ("rdnss6", net.rdnss6)):
        if value is not None:
            setattr(c, name, list(value.packed))
    c.neigh_all = int(net.neigh_all)
    c.no_ra = int(net.no_ra)
    c.no_ndp = int(net.no_ndp)
    c.no_icmp = int(net.no_icmp)
    c.dhcpv6 = int(net.dhcpv6)
    c.ra_managed = int(net.ra_managed)
    if len(net.rules) > lib.DP_RULES_MAX:
        raise OSError(22, f"at most {lib.DP_RULES_MAX} address rules, got {len(net.rules)}")
    for i, rule in enumerate(net.rules):
        r = c.rules[i]
        r.addr = list(_addr16(rule.net.network_address))
        r.prefix_len = rule.net.prefixlen + (96 if rule.net.version == 4 else 0)
        r.kind = _RULE_KINDS[rule.kind]
        r.flags = (lib.DP_RULE_F_LOCAL if rule.local else 0) | (lib.DP_RULE_F_DNS_ONLY if rule.dns_only else 0)
        if rule.to is not None:
            r.to = list(_addr16(rule.to))
    c.n_rules = len(net.rules)


# Offloads the data plane can be told not to use (dp_config.offloads_off)
OFFLOAD_NAMES = {
    "uso": lib.DP_OFFLOAD_NO_USO,  # UDP segmentation on the TAP (TUN_F_USO4/6)
    "udp_gso": lib.DP_OFFLOAD_NO_UDP_GSO,  # UDP_SEGMENT on host sockets
    "udp_gro": lib.DP_OFFLOAD_NO_UDP_GRO,  # UDP_GRO on host sockets
}


def offloads_off(names) -> int:
    """DP_OFFLOAD_* bits for names, plus those in $SLIRPD_OFFLOADS_OFF.

    Raises OSError (EINVAL) for a name not in OFFLOAD_NAMES.
    """
    env = os.environ.get("SLIRPD_OFFLOADS_OFF", "")
    bits = 0
    for name in [*names, *(n.strip() for n in env.split(",") if n.strip())]:
        if name not in OFFLOAD_NAMES:
            raise OSError(22, f"unknown offload {name!r} (known: {', '.join(OFFLOAD_NAMES)})")
        bits |= OFFLOAD_NAMES[name]
    return bits


class Dataplane:
    """One data plane on a TAP descriptor.

    cfg is any object with the attributes gw_mac (6 bytes), network (a
    netmodel.GuestNetwork: our addresses and the guest's, the address
    rules), dns_upstream4 and outbound4 (IPv4 address or None), mtu (int),
    vnet_hdr (bool), and optionally udp_idle_ms (int, 0 for the data plane's
    default), dns_upstream6 and outbound6 (IPv6 address or None),
    ra_interval_ms (int, 0 for the default), and sock_budget (int: host
    sockets flows and forwards may hold together, 0 or absent for no bound
    but the kernel's; see slirpd/fdlimit.py), and offloads_off (a set of
    names from OFFLOAD_NAMES: offloads not to use even where the kernel has
    them, to test or diagnose the fallbacks; the environment variable
    SLIRPD_OFFLOADS_OFF, comma-separated names, adds to it).
    With vnet_hdr, tap_fd must have been opened with IFF_VNET_HDR; the data plane sets its header size.

    Raises OSError (EINVAL for a bad configuration) on failure.
    """

    def __init__(self, cfg, tap_fd: int):
        gw_mac = bytes(cfg.gw_mac)
        if len(gw_mac) != lib.DP_MAC_LEN:
            raise OSError(22, f"gw_mac must be {lib.DP_MAC_LEN} bytes, got {len(gw_mac)}")

        c = ffi.new("struct dp_config *")
        c.gw_mac = list(gw_mac)
        _network_config(c, cfg.network)
        c.mtu = int(cfg.mtu)
        c.vnet_hdr = int(bool(cfg.vnet_hdr))
        c.dns_upstream4 = _addr4(cfg.dns_upstream4) if cfg.dns_upstream4 is not None else 0
        c.udp_idle_ms = int(getattr(cfg, "udp_idle_ms", 0) or 0)  # tests shorten it
        c.outbound4 = _addr4(cfg.outbound4) if cfg.outbound4 is not None else 0
        c.ra_interval_ms = int(getattr(cfg, "ra_interval_ms", 0) or 0)  # tests shorten it
        c.sock_budget = int(getattr(cfg, "sock_budget", 0) or 0)
        c.offloads_off = offloads_off(getattr(cfg, "offloads_off", ()) or ())
        for name in ("dns_upstream6", "outbound6"):
            value = getattr(cfg, name, None)
            if value is not None:
                setattr(c, name, list(ipaddress.IPv6Address(value).packed))

        dp = lib.dp_new(c, int(tap_fd))
        if dp == ffi.NULL:
            err = ffi.errno
            raise OSError(err, os.strerror(err))
        self._dp = ffi.gc(dp, lib.dp_free)
        self._epoll_fd = lib.dp_epoll_fd(dp)
        self._counters = ffi.new("uint64_t[]", len(_COUNTER_NAMES))
        self._flow_states = ffi.new("uint64_t[]", len(_FLOW_STATE_NAMES))
        self._flows_closed = ffi.new("uint64_t[]", len(_CLOSE_REASON_NAMES))
        self._sock_stats = ffi.new("struct dp_sock_stats *")
        self._ctl_buf = ffi.new("uint8_t[]", lib.DP_CTL_FRAME_MAX)

    def _handle(self):
        if self._dp is None:
            raise ValueError("operation on a closed Dataplane")
        return self._dp

    def fileno(self) -> int:
        """The epoll descriptor: readable when the TAP has frames to poll()."""
        self._handle()
        return self._epoll_fd

    def timeout(self) -> float | None:
        """Seconds until poll() must run again for the flows' timers, None if
        no timer is pending (wait() keeps to it by itself)."""
        ms = lib.dp_timeout_ms(self._handle())
        return None if ms < 0 else ms / 1000.0

    def poll(self, budget: int = 256) -> int:
        """Handle up to budget frames from the guest, and every ready host
        socket and due timer, without blocking.

        Returns the number of frames read plus socket events handled (0 if
        nothing was waiting).  Raises
        TapGone once the TAP has gone away, OSError on an unexpected error.
        """
        return self._check(lib.dp_poll(self._handle(), int(budget)))

    @staticmethod
    def _check(rc: int) -> int:
        """A DP_POLL_* return code as a count, TapGone or OSError."""
        if rc >= 0:
            return rc
        if rc == lib.DP_POLL_TAP_GONE:
            raise TapGone("the TAP device went away")
        err = ffi.errno
        raise OSError(err, os.strerror(err))

    @staticmethod
    def _api(rc: int) -> int:
        """A data plane call's return: rc, or OSError with errno if it is -1."""
        if rc >= 0:
            return rc
        err = ffi.errno
        raise OSError(err, os.strerror(err))

    def watch(self, fd: int) -> None:
        """Make wait() return when fd (an epoll selector's own fd, say) is
        readable; fd must stay open as long as this data plane."""
        if lib.dp_watch_fd(self._handle(), int(fd)) != 0:
            err = ffi.errno
            raise OSError(err, os.strerror(err))

    def wait(self, budget: int = 256, max_wait: float | None = None) -> int:
        """Serve the guest, host sockets and timers, blocking, until a watched
        fd is readable, a signal arrives, a notice is raised, or max_wait
        seconds passed (None: no limit).  Returns and raises as poll()."""
        ms = -1 if max_wait is None else max(0, math.ceil(max_wait * 1000))
        return self._check(lib.dp_wait(self._handle(), int(budget), ms))

    def notices(self) -> int:
        """Notices raised since the last call, as a bit mask of NOTICE_*
        (NOTICE_PING_FORBIDDEN at most once per data plane; NOTICE_CTL_FRAMES
        whenever control frames wait for ctl_frames(); NOTICE_DNS_USED when a
        flow to the DNS address opened, at most once a second;
        NOTICE_NS_LO_LOW whenever a --host-lo-to-ns-lo pool fell to half)."""
        return int(lib.dp_notices(self._handle()))

    def ctl_frames(self) -> list[bytes]:
        """Take every frame queued for the control plane (DHCP requests)."""
        frames = []
        while (n := lib.dp_ctl_recv(self._handle(), self._ctl_buf, lib.DP_CTL_FRAME_MAX)) > 0:
            frames.append(bytes(ffi.buffer(self._ctl_buf, n)))
        return frames

    def ctl_send(self, frame: bytes) -> None:
        """Write a frame built by the control plane to the guest. Raises OSError."""
        if lib.dp_ctl_send(self._handle(), frame, len(frame)) != 0:
            err = ffi.errno
            raise OSError(err, os.strerror(err))

    def set_dns_upstream(self, upstream4, upstream6) -> None:
        """The host's nameserver changed: new DNS flows (and the next query of
        each open UDP one) go to upstream4 (IPv4 address or None), else to
        upstream6 (IPv6 address or None)."""
        addr6 = ipaddress.IPv6Address(upstream6).packed if upstream6 is not None else ffi.NULL
        lib.dp_dns_upstream(self._handle(), _addr4(upstream4) if upstream4 is not None else 0, addr6)

    def add_forward(self, fwd_id: int, sock_fd: int, proto: str, guest_addr, guest_port: int) -> None:
        """Forward a bound host socket (listening, for TCP) into the guest's
        guest_addr (IPv4, or IPv6 with enable_ipv6).
        The caller keeps owning sock_fd and closes it after remove_forward().
        Raises OSError."""
        proto_num = {"tcp": socket.IPPROTO_TCP, "udp": socket.IPPROTO_UDP}[proto]
        if lib.dp_fwd_add(self._handle(), fwd_id, sock_fd, proto_num, _addr16(guest_addr), guest_port) != 0:
            err = ffi.errno
            raise OSError(err, os.strerror(err))

    def add_splice(self, fwd_id: int, sock_fd: int, proto: str, host_addr, host_port: int) -> None:
        """Splice a socket bound in the guest's namespace (listening, for
        TCP) to host_addr:host_port on the host (pasta's -T and -U: its
        loopback).  Ownership and removal as for add_forward().  Raises
        OSError."""
        proto_num = {"tcp": socket.IPPROTO_TCP, "udp": socket.IPPROTO_UDP}[proto]
        if lib.dp_fwd_add_splice(self._handle(), fwd_id, sock_fd, proto_num, _addr16(host_addr), host_port) != 0:
            err = ffi.errno
            raise OSError(err, os.strerror(err))

    def ns_lo_enable(self) -> None:
        """pasta's --host-lo-to-ns-lo: -t connections from the host's
        loopback go to the namespace's loopback, by sockets of the pool
        (ns_lo_add())."""
        self._api(lib.dp_ns_lo_enable(self._handle()))

    def ns_lo_add(self, sock: socket.socket) -> None:
        """Give the --host-lo-to-ns-lo pool an unconnected TCP socket made in
        the guest's namespace; the data plane owns it from now on (detached
        from sock, closed by it even on failure).  Raises OSError."""
        self._api(lib.dp_ns_lo_add(self._handle(), sock.detach()))

    def ns_lo_wanted(self, version: int) -> int:
        """How many sockets the pool of IP version takes now (0 while it is
        more than half full)."""
        return self._api(lib.dp_ns_lo_wanted(self._handle(), version))

    def remove_forward(self, fwd_id: int) -> None:
        """Stop forwarding (connections already open stay). Raises OSError."""
        if lib.dp_fwd_remove(self._handle(), fwd_id) != 0:
            err = ffi.errno
            raise OSError(err, os.strerror(err))

    def forward_connections(self, fwd_id: int) -> int:
        """Connections (TCP) or flows (UDP) a forward has opened into the guest."""
        n = lib.dp_fwd_connections(self._handle(), fwd_id)
        if n < 0:
            raise KeyError(fwd_id)
        return n

    def pcap_start(self, fd: int, max_size: int) -> None:
        """Capture every frame the TAP carries into fd (a file open for
        writing, empty), which the data plane then owns, until the file
        would grow past max_size bytes.  Raises OSError (the caller keeps fd)."""
        if lib.dp_pcap_start(self._handle(), int(fd), int(max_size)) != 0:
            err = ffi.errno
            raise OSError(err, os.strerror(err))

    def pcap_state(self) -> int:
        """PCAP_OFF, PCAP_ON, PCAP_FULL, or -errno once a write error stopped
        the capture."""
        return int(lib.dp_pcap_state(self._handle()))

    def counters(self) -> dict[str, int]:
        """Every counter by name (see csrc/dp_counters.h)."""
        n = lib.dp_counters(self._handle(), self._counters, len(_COUNTER_NAMES))
        return {_COUNTER_NAMES[i]: int(self._counters[i]) for i in range(n)}

    def flow_states(self) -> dict[str, int]:
        """Open flows by state, every state of flow.h's enum flow_state:
        TCP_ST_*, UDP_ST_*, PING_ST_*, SPLICE_ST_* (FLOW_ST_FREE and
        FLOW_ST_CLOSED, no open flow's, stay 0)."""
        n = lib.dp_flow_states(self._handle(), self._flow_states, len(_FLOW_STATE_NAMES))
        return {_FLOW_STATE_NAMES[i]: int(self._flow_states[i]) for i in range(n)}

    def flows_closed(self) -> dict[str, int]:
        """Flows closed so far by reason (FLOW_CLOSE_IDLE...; see csrc/flow.h)."""
        n = lib.dp_flows_closed(self._handle(), self._flows_closed, len(_CLOSE_REASON_NAMES))
        return {_CLOSE_REASON_NAMES[i]: int(self._flows_closed[i]) for i in range(n)}

    def sockets(self) -> dict:
        """The host sockets of flows and forwards against their budget:
        budget (0: none), guest_max (what the guest's own flows may hold),
        guest and forwards (held now), paused_listeners, and degraded (bool:
        sockets are short now, or were in the last few seconds; see
        csrc/flow.c, Host sockets)."""
        s = self._sock_stats
        lib.dp_sock_stats(self._handle(), s)
        return {"budget": int(s.budget), "guest_max": int(s.guest_max), "guest": int(s.guest),
                "forwards": int(s.fwd), "paused_listeners": int(s.paused), "degraded": bool(s.degraded)}

    def close(self) -> None:
        """Free the data plane, closing the TAP and epoll descriptors; idempotent."""
        if self._dp is not None:
            dp, self._dp = self._dp, None
            ffi.release(dp)

    def __enter__(self) -> "Dataplane":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
