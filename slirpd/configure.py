"""--configure: bring up lo and the TAP with address, MTU, MAC and default route.

With -6 the TAP also gets a random address in fd00::/64 (as slirp4netns) and a
default route via fd00::2.  The address skips duplicate address detection: its
64 random bits cannot collide on a link whose only other node is slirpd, and
it is usable at once, before the ready fd fires.  Router advertisements
(answers to the guest's solicitations, ndp.c) add a SLAAC address beside it.

Runs inside the guest's network namespace, in netns.py's forked helper, while
the daemon goes on setting up; the requests go straight to the kernel
(rtnl.py): the daemon never shells out to `ip`, and no netlink library is
imported on the way to ready.
"""

from __future__ import annotations

import ipaddress
import os

from slirpd._linux import SetupError
from slirpd.config import Config
from slirpd.rtnl import Rtnl, RtnlError


def configure_guest(cfg: Config) -> None:
    """Configure the namespace we are in for cfg (called after setns), in
    this order: lo up; the TAP's MTU, MAC, IPv4 address; the TAP up; its
    IPv4 default route; with -6 its IPv6 address and default route.
    Raises SetupError, which says which step failed and why."""
    tap = cfg.tapname
    try:
        with Rtnl() as nl:
            nl.set_link("lo", up=True)
            nl.set_link(tap, mtu=cfg.mtu)
            if cfg.macaddress:
                nl.set_link(tap, mac=cfg.macaddress)
            nl.replace_address(tap, cfg.guest_interface)
            nl.set_link(tap, up=True)
            nl.replace_default_route(tap, cfg.gateway)
            if cfg.enable_ipv6:
                guest6 = ipaddress.IPv6Interface((random_guest6(cfg), cfg.net6.prefixlen))
                nl.replace_address(tap, guest6, nodad=True)
                nl.replace_default_route(tap, cfg.gateway6)
    except RtnlError as e:
        raise SetupError(str(e)) from None


def random_guest6(cfg: Config) -> ipaddress.IPv6Address:
    """A random guest address in the IPv6 prefix (never ours)."""
    while True:
        addr = cfg.net6.network_address + int.from_bytes(os.urandom(8), "big")
        if cfg.is_guest_address6(addr):
            return addr
