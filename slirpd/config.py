"""Config: the daemon's settings, validated, with addresses derived from --cidr.

Defaults follow slirp4netns 1.2: 10.0.2.0/24, gateway network+2 (the host),
DNS network+3, guest network+100 with --configure, MTU 1500; with -6 the
prefix fd00::/64, gateway fd00::2, DNS fd00::3.
"""

from __future__ import annotations

import collections
import ipaddress
import types

from slirpd.netmodel import GuestNetwork, slirp_network

DEFAULT_CIDR = "10.0.2.0/24"
DEFAULT_MTU = 1500
MIN_MTU = 68
MAX_MTU = 65521
GATEWAY_OFFSET = 2
DNS_OFFSET = 3
GUEST_OFFSET = 100
NET6 = ipaddress.IPv6Network("fd00::/64")
DHCP_START_OFFSET = 15
# slirpd's own MAC on the TAP link (the locally administered 52:55 prefix that
# libslirp uses for its virtual hosts, followed by the gateway address).
GATEWAY_MAC_PREFIX = b"\x52\x55"
# --pcap-max-size: the capture file is always bounded
DEFAULT_PCAP_MAX_SIZE = 100 << 20
MIN_PCAP_MAX_SIZE = 1024
# API socket clients served at once (api.py); fdlimit.py keeps a descriptor
# for each.  Here, so that the descriptor budget needs no import of the API
API_CLIENTS_MAX = 64


def interface_ipv4(ifname: str) -> ipaddress.IPv4Address:
    """The (primary) IPv4 address of a host interface; ValueError if it has
    none or does not exist."""
    import fcntl
    import socket
    import struct

    siocgifaddr = 0x8915
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            ifreq = fcntl.ioctl(s.fileno(), siocgifaddr, struct.pack("256s", ifname.encode()[:15]))
        except OSError as e:
            raise ValueError(f"interface {ifname!r} has no IPv4 address ({e.strerror})") from None
    return ipaddress.IPv4Address(ifreq[20:24])


def interface_ipv6(ifname: str) -> ipaddress.IPv6Address:
    """The first global IPv6 address of a host interface (from
    /proc/net/if_inet6); ValueError if it has none or does not exist."""
    scope_global = 0
    try:
        with open("/proc/net/if_inet6", encoding="ascii") as f:
            for line in f:
                words = line.split()
                if len(words) == 6 and words[5] == ifname and int(words[3], 16) == scope_global:
                    return ipaddress.IPv6Address(bytes.fromhex(words[0]))
    except OSError as e:
        raise ValueError(f"cannot read the host's IPv6 addresses ({e.strerror})") from None
    raise ValueError(f"interface {ifname!r} has no global IPv6 address")


def address_or_interface(value: str, version: int) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """--outbound-addr (version 4) or --outbound-addr6 (6): an address of that
    version, or an interface name standing for its address (read now);
    ValueError if it is neither."""
    cls, of_interface = (ipaddress.IPv4Address, interface_ipv4) if version == 4 else \
        (ipaddress.IPv6Address, interface_ipv6)
    try:
        return cls(value)
    except ValueError:
        return of_interface(value)


# Config's fields after target, with their defaults (and types), in order
_DEFAULTS = {
    "tapname": "tap0",
    "configure": False,
    "exit_fd": None,  # int
    "ready_fd": None,  # int
    "mtu": DEFAULT_MTU,
    "enable_ipv6": False,
    "api_socket": None,  # str
    "cidr": ipaddress.IPv4Network(DEFAULT_CIDR),
    "disable_host_loopback": False,
    "netns_type": "pid",
    "userns_path": None,  # str
    "enable_sandbox": False,
    "enable_seccomp": False,
    "outbound_addr": None,  # str
    "outbound_addr6": None,  # str
    "disable_dns": False,
    "macaddress": None,  # str
    "target_type": "netns",
    "publish": (),  # (proto, portspec.PortMap) each
    "auto_publish": None,  # --publish auto: a portspec.Spec of mode "auto", or None
    "command": None,  # `-- COMMAND [ARGS]` as a tuple: run it in new namespaces
    "create_netns": None,  # --create-netns=PATH
    "pcap": None,  # --pcap=FILE
    "pcap_max_size": DEFAULT_PCAP_MAX_SIZE,
    "debug": False,
    "model": None,  # pasta's network model, a GuestNetwork (slirpd/pasta/net.py); None: slirp4netns's
}


class Config(collections.namedtuple("Config", ("target", *_DEFAULTS), defaults=tuple(_DEFAULTS.values()))):
    """Everything the daemon was asked to do; built by cli.parse_args().

    Immutable; _replace() gives a changed copy.  A named tuple rather than a
    dataclass: the dataclasses module (and inspect, which it imports) would
    add a third of the time slirpd may take to be ready (issue 19)."""

    __slots__ = ()

    @property
    def gateway(self) -> ipaddress.IPv4Address:
        """The host as the guest sees it (network+2)."""
        return self.cidr.network_address + GATEWAY_OFFSET

    @property
    def dns(self) -> ipaddress.IPv4Address:
        """The built-in DNS forwarder (network+3)."""
        return self.cidr.network_address + DNS_OFFSET

    @property
    def guest(self) -> ipaddress.IPv4Address:
        """The guest's address with --configure (network+100)."""
        return self.cidr.network_address + GUEST_OFFSET

    @property
    def guest_interface(self) -> ipaddress.IPv4Interface:
        """The guest's address with its prefix, as configured on the TAP."""
        return ipaddress.IPv4Interface(f"{self.guest}/{self.cidr.prefixlen}")

    @property
    def net6(self) -> ipaddress.IPv6Network:
        """The guest's IPv6 prefix with -6 (fd00::/64, as slirp4netns)."""
        return NET6

    @property
    def gateway6(self) -> ipaddress.IPv6Address:
        """The host as the guest sees it over IPv6 (fd00::2)."""
        return NET6.network_address + GATEWAY_OFFSET

    @property
    def dns6(self) -> ipaddress.IPv6Address:
        """The built-in DNS forwarder's IPv6 address (fd00::3)."""
        return NET6.network_address + DNS_OFFSET

    def is_guest_address6(self, addr: ipaddress.IPv6Address) -> bool:
        """Whether addr can be the guest's IPv6 address: inside the prefix,
        not the prefix's own address, the gateway's or the DNS forwarder's."""
        return addr in NET6 and addr not in (NET6.network_address, self.gateway6, self.dns6)

    @property
    def gateway_mac(self) -> bytes:
        """slirpd's MAC address on the TAP link."""
        if self.model is not None and self.model.mac is not None:
            return self.model.mac
        return GATEWAY_MAC_PREFIX + self.gateway.packed

    @property
    def outbound6(self) -> ipaddress.IPv6Address | None:
        """--outbound-addr6 as an address: an interface name stands for that
        interface's first global IPv6 address (read now, at start-up)."""
        return None if self.outbound_addr6 is None else address_or_interface(self.outbound_addr6, 6)

    @property
    def outbound4(self) -> ipaddress.IPv4Address | None:
        """--outbound-addr as an address: an interface name stands for that
        interface's IPv4 address (read now, at start-up)."""
        return None if self.outbound_addr is None else address_or_interface(self.outbound_addr, 4)

    @property
    def network(self) -> GuestNetwork:
        """The guest's network as the data plane serves it: pasta's model
        when set, else slirp4netns's, from --cidr, -6 and the flags."""
        if self.model is not None:
            return self.model
        return slirp_network(self.gateway, self.dns, self.cidr, self.guest, not self.disable_host_loopback,
                             not self.disable_dns, *((self.net6, self.gateway6, self.dns6) if self.enable_ipv6 else ()))

    def dataplane_params(self, vnet_hdr: bool = False, dns_upstream: tuple = (None, None)) -> types.SimpleNamespace:
        """The subset of the settings the data plane (dataplane.Dataplane)
        reads; vnet_hdr: the TAP carries virtio-net headers (offloads);
        dns_upstream: the host's first IPv4 and IPv6 nameservers
        (resolver.HostResolver.upstream), either None."""
        return types.SimpleNamespace(
            gw_mac=self.gateway_mac,
            network=self.network,
            mtu=self.mtu,
            vnet_hdr=vnet_hdr,
            dns_upstream4=None if self.disable_dns else dns_upstream[0],
            outbound4=self.outbound4,
            dns_upstream6=None if self.disable_dns else dns_upstream[1],
            outbound6=self.outbound6,
        )
