"""The guest's network as the data plane serves it, in either model.

slirp4netns's model is a private network (10.0.2.0/24) where the gateway
stands for the host's loopback and network+3 for its nameserver, and nothing
else of the network exists.  pasta's copies the host's own addresses and
routes into the namespace: the gateway is the host's gateway, every other
address is itself, and a few addresses given on the command line stand for
something on the host (--map-host-loopback, --map-guest-addr,
--dns-forward).  Both come down to the same few things for the data plane:
its own address on the link per family, the guest's, and a small table of
special addresses (Rule), the first of which that holds a destination
decides where it leads (csrc/fwd.c).  slirp_network() builds slirp4netns's;
slirpd/pasta/net.py builds pasta's.
"""

from __future__ import annotations

import collections
import ipaddress

LOOPBACK4 = ipaddress.IPv4Address("127.0.0.1")
LOOPBACK6 = ipaddress.IPv6Address("::1")


class Rule(collections.namedtuple("Rule", ("net", "kind", "to", "local", "dns_only"), defaults=(None, False, False))):
    """A special address (or prefix) of the guest's network.

    net: an IPv4Network or IPv6Network; kind: "block" (reaches nothing),
    "dns" (port 53 reaches the host's nameserver; for other ports the rules
    after it decide, or with dns_only they reach nothing) or "redirect"
    (every port reaches the host address `to`; a loopback one is the host's
    loopback).  local: the address is ours on the link (ARP, NDP and echo
    requests answered, never a source the guest may use).  A named tuple,
    as Config is (issue 19: no dataclasses on the way to ready)."""

    __slots__ = ()

    @classmethod
    def host(cls, addr, kind: str, **kw) -> "Rule":
        """A rule for one address."""
        return cls(ipaddress.ip_network(addr), kind, **kw)

    @classmethod
    def loopback(cls, addr, open_: bool, **kw) -> "Rule":
        """addr stands for the host's loopback of its own family, or, if not
        open_, reaches nothing."""
        if not open_:
            return cls.host(addr, "block", **kw)
        return cls.host(addr, "redirect", to=LOOPBACK4 if addr.version == 4 else LOOPBACK6, **kw)


class GuestNetwork(collections.namedtuple(
        "GuestNetwork", ("guest4", "gateway4", "guest6", "gateway6", "prefix6", "rdnss6", "rules", "neigh_all",
                         "no_ra", "mac", "no_ndp", "no_icmp", "dhcpv6", "ra_managed"),
        defaults=(None, None, None, None, (), False, False, None, False, False, False, False))):
    """What the data plane needs to know of the guest's link.

    guest4/guest6: the guest's address with its prefix (None: that family is
    not served, or for slirp4netns's random IPv6 address, not known);
    gateway4/gateway6: ours on the link, the guest's gateway, source of the
    errors we send; prefix6: the prefix router advertisements announce
    (None: no IPv6); rdnss6: the DNS address they announce; neigh_all: ARP
    and NDP answer for every address but the guest's (pasta) instead of for
    the local rules only (slirp4netns); no_ra: router solicitations go
    unanswered; no_ndp: no solicitation is answered, neighbour ones
    included; no_icmp: the guest's ICMP is dropped, but neighbour
    discovery; dhcpv6: DHCPv6 requests go to the control plane
    (dhcpv6.py; pasta) instead of being UDP like any other (slirp4netns);
    ra_managed: router advertisements set the Managed flag (pasta's);
    mac: ours on the link (None: slirp4netns's, made from the
    gateway's address); rules: a tuple of Rule."""

    __slots__ = ()

    @property
    def ipv6(self) -> bool:
        """Whether IPv6 is served."""
        return self.prefix6 is not None

    def guest_for(self, version: int):
        """The guest's address of an IP version, None if it has none."""
        iface = self.guest4 if version == 4 else self.guest6
        return iface.ip if iface is not None else None


def slirp_network(gateway4: ipaddress.IPv4Address, dns4: ipaddress.IPv4Address, cidr: ipaddress.IPv4Network,
                  guest4: ipaddress.IPv4Address, host_loopback: bool, dns: bool,
                  net6: ipaddress.IPv6Network | None = None, gateway6: ipaddress.IPv6Address | None = None,
                  dns6: ipaddress.IPv6Address | None = None) -> GuestNetwork:
    """slirp4netns's model: the gateway is the host's loopback (unless not
    host_loopback), the DNS address's port 53 the host's nameserver (unless
    not dns), both ours on the link, and the rest of the network, IPv4 and
    with -6 (net6 given) IPv6, reaches nothing."""
    rules = [Rule.loopback(gateway4, host_loopback, local=True),
             Rule.host(dns4, "dns" if dns else "block", local=True, dns_only=True),
             Rule(cidr, "block")]
    if net6 is not None:
        rules += [Rule.loopback(gateway6, host_loopback, local=True),
                  Rule.host(dns6, "dns" if dns else "block", local=True, dns_only=True),
                  Rule(net6, "block")]
    return GuestNetwork(guest4=ipaddress.IPv4Interface(f"{guest4}/{cidr.prefixlen}"), gateway4=gateway4,
                        gateway6=gateway6, prefix6=net6, rdnss6=dns6 if (net6 is not None and dns) else None,
                        rules=tuple(rules))
