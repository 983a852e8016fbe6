"""--configure: bring up lo and the TAP with address, MTU, MAC and default route.

Runs inside the guest's network namespace (in netns.py's forked helper), through
pyroute2's netlink objects: the daemon never shells out to `ip`.
"""

from __future__ import annotations

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
