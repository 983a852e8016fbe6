"""Config: the daemon's settings, validated, with addresses derived from --cidr.

Defaults follow slirp4netns 1.2: 10.0.2.0/24, gateway network+2 (the host),
DNS network+3, guest network+100 with --configure, MTU 1500.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import types

DEFAULT_CIDR = "10.0.2.0/24"
DEFAULT_MTU = 1500
MIN_MTU = 68
MAX_MTU = 65521
GATEWAY_OFFSET = 2
DNS_OFFSET = 3
GUEST_OFFSET = 100
DHCP_START_OFFSET = 15
# slirpd's own MAC on the TAP link (the locally administered 52:55 prefix that
# libslirp uses for its virtual hosts, followed by the gateway address).
GATEWAY_MAC_PREFIX = b"\x52\x55"
RESOLV_CONF = "/etc/resolv.conf"


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


def first_ipv4_nameserver(path: str) -> ipaddress.IPv4Address | None:
    """The first `nameserver` line of a resolv.conf that holds an IPv4
    address, None if the file has none or cannot be read."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                words = line.split()
                if len(words) >= 2 and words[0] == "nameserver":
                    try:
                        return ipaddress.IPv4Address(words[1])
                    except ValueError:
                        continue
    except OSError:
        return None
    return None


@dataclasses.dataclass(frozen=True)
class Config:
    """Everything the daemon was asked to do; built by cli.parse_args()."""

    target: str
    tapname: str = "tap0"
    configure: bool = False
    exit_fd: int | None = None
    ready_fd: int | None = None
    mtu: int = DEFAULT_MTU
    enable_ipv6: bool = False
    api_socket: str | None = None
    cidr: ipaddress.IPv4Network = ipaddress.IPv4Network(DEFAULT_CIDR)
    disable_host_loopback: bool = False
    netns_type: str = "pid"
    userns_path: str | None = None
    enable_sandbox: bool = False
    enable_seccomp: bool = False
    outbound_addr: str | None = None
    outbound_addr6: str | None = None
    disable_dns: bool = False
    macaddress: str | None = None
    target_type: str = "netns"
    publish: tuple = ()  # (proto, host_addr, host_port, guest_port) each
    command: tuple | None = None  # `-- COMMAND [ARGS]`: run it in new namespaces
    create_netns: str | None = None  # --create-netns=PATH
    debug: bool = False

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
    def gateway_mac(self) -> bytes:
        """slirpd's MAC address on the TAP link."""
        return GATEWAY_MAC_PREFIX + self.gateway.packed

    @property
    def dns_upstream4(self) -> ipaddress.IPv4Address | None:
        """The nameserver the DNS address forwards to: the first IPv4
        nameserver of the host's /etc/resolv.conf, None if there is none."""
        return first_ipv4_nameserver(RESOLV_CONF)

    @property
    def outbound4(self) -> ipaddress.IPv4Address | None:
        """--outbound-addr as an address: an interface name stands for that
        interface's IPv4 address (read now, at start-up)."""
        if self.outbound_addr is None:
            return None
        try:
            return ipaddress.IPv4Address(self.outbound_addr)
        except ValueError:
            return interface_ipv4(self.outbound_addr)

    def dataplane_params(self, vnet_hdr: bool = False) -> types.SimpleNamespace:
        """The subset of the settings the data plane (dataplane.Dataplane)
        reads; vnet_hdr: the TAP carries virtio-net headers (offloads)."""
        return types.SimpleNamespace(
            gw_mac=self.gateway_mac,
            net4=self.cidr.network_address,
            mask4=self.cidr.netmask,
            gw4=self.gateway,
            dns4=self.dns,
            guest4=self.guest,
            mtu=self.mtu,
            vnet_hdr=vnet_hdr,
            disable_host_loopback=self.disable_host_loopback,
            disable_dns=self.disable_dns,
            dns_upstream4=None if self.disable_dns else self.dns_upstream4,
            outbound4=self.outbound4,
        )
