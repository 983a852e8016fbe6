"""--configure: bring up lo and the TAP with address, MTU, MAC and default route.

With -6 the TAP also gets a random address in fd00::/64 (as slirp4netns) and a
default route via fd00::2.  The address skips duplicate address detection: its
64 random bits cannot collide on a link whose only other node is slirpd, and
it is usable at once, before the ready fd fires.  Router advertisements
(answers to the guest's solicitations, ndp.c) add a SLAAC address beside it.

Runs inside the guest's network namespace (in netns.py's forked helper), through
pyroute2's netlink objects: the daemon never shells out to `ip`.
"""

from __future__ import annotations

import ipaddress
import secrets
import socket

from pyroute2 import IPRoute

from slirpd.config import Config


def configure_guest(cfg: Config) -> None:
    """Configure the namespace we are in for cfg (called after setns)."""
    with IPRoute() as ipr:
        (lo,) = ipr.link_lookup(ifname="lo")
        ipr.link("set", index=lo, state="up")
        (tap,) = ipr.link_lookup(ifname=cfg.tapname)
        ipr.link("set", index=tap, mtu=cfg.mtu)
        if cfg.macaddress:
            ipr.link("set", index=tap, address=cfg.macaddress)
        ipr.addr("replace", index=tap, address=str(cfg.guest), prefixlen=cfg.cidr.prefixlen)
        ipr.link("set", index=tap, state="up")
        ipr.route("replace", dst="0.0.0.0/0", gateway=str(cfg.gateway), oif=tap)
        if cfg.enable_ipv6:
            ipr.addr("replace", index=tap, address=str(random_guest6(cfg)), prefixlen=cfg.net6.prefixlen,
                     family=socket.AF_INET6, flags=IFA_F_NODAD)
            ipr.route("replace", dst="::/0", gateway=str(cfg.gateway6), oif=tap, family=socket.AF_INET6)


IFA_F_NODAD = 0x02  # linux/if_addr.h


def random_guest6(cfg: Config) -> ipaddress.IPv6Address:
    """A random guest address in the IPv6 prefix (never ours)."""
    while True:
        addr = cfg.net6.network_address + secrets.randbits(64)
        if cfg.is_guest_address6(addr):
            return addr
