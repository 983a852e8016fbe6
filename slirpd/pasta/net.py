"""pasta's network model: the host's interface copied into the namespace.

The template is the host interface of the first default route (per family,
as pasta picks it; -i names one for both): its addresses (global ones, not
deprecated), its default gateway and, for --config-net, its routes.  The
guest gets those addresses (or -a/-n), that gateway (or -g) and the
template's name (or -I), MTU 65520 (or -m), and the data plane answers for
every other address on the link (netmodel.GuestNetwork.neigh_all).  With no
default route at all, pasta's "local mode": 169.254.2.1/16 via 169.254.2.2,
IPv4 only here.

The special addresses (netmodel.Rule), in pasta's order of precedence:
--dns-forward ADDR (port 53 to the host's nameserver; with none given and a
resolver on the host's loopback, the mapped gateway plays that part, as in
pasta), --map-host-loopback (default: the gateway, unless --no-map-gw) to
the host's 127.0.0.1 or ::1, --map-guest-addr to the guest's address as the
host has it (host.containers.internal).

Netlink, all of it here (pyroute2): the host's default routes, one
interface's addresses and routes, then inside the namespace: links set up
(lo, the TAP: name, MTU, MAC, flags), addresses added (IFA_F_NODAD), routes
added.
"""

from __future__ import annotations

import dataclasses
import errno
import ipaddress
import os
import pickle
import socket

from slirpd._linux import SetupError
from slirpd.netmodel import GuestNetwork, Rule

PASTA_MAC = "9a:55:9a:55:9a:55"  # pasta's own MAC address, as -M's default
DEFAULT_MTU = 65520  # pasta's: 65535 less the Ethernet header, 32-bit aligned
LOCAL4 = ipaddress.IPv4Interface("169.254.2.1/16")  # local mode
LOCAL_GW4 = ipaddress.IPv4Address("169.254.2.2")
IFA_F_NODAD, IFA_F_DEPRECATED = 0x02, 0x20
IFF_UP, IFF_NOARP = 0x1, 0x80
RT_TABLE_MAIN, RT_SCOPE_LINK, RTPROT_BOOT = 254, 253, 3
TEMPLATE_MAX = 1 << 20  # bytes of a pickled Template, at most
ROUTE_PASSES = 4  # routes whose gateway is not reachable yet are tried again after the others
ROUTE_FIELDS = ("dst_len", "proto", "scope", "type")
ROUTE_ATTRS = {"RTA_DST": "dst", "RTA_GATEWAY": "gateway", "RTA_PRIORITY": "priority"}


@dataclasses.dataclass
class Template:
    """The host interfaces pasta copies: per family its index (0: none),
    addresses, default gateway and routes (dicts for IPRoute.route())."""

    ifname: str | None = None
    index4: int = 0
    index6: int = 0
    addrs4: list = dataclasses.field(default_factory=list)
    addrs6: list = dataclasses.field(default_factory=list)
    gateway4: ipaddress.IPv4Address | None = None
    gateway6: ipaddress.IPv6Address | None = None
    routes4: list = dataclasses.field(default_factory=list)
    routes6: list = dataclasses.field(default_factory=list)


def _default_route(ipr, family: int, index: int):
    """The first default route of a family (through index, if not 0):
    (interface index, gateway) or (0, None)."""
    for route in ipr.get_default_routes(family=family):
        oif = route.get_attr("RTA_OIF")
        if oif and (not index or oif == index) and route.get_attr("RTA_TABLE") in (None, RT_TABLE_MAIN):
            gateway = route.get_attr("RTA_GATEWAY")
            return oif, ipaddress.ip_address(gateway) if gateway else None
    return 0, None


def _addresses(ipr, family: int, index: int) -> list:
    """The interface's addresses of a family pasta copies: not link-scoped,
    not deprecated."""
    found = []
    for msg in ipr.get_addr(family=family, index=index):
        flags = msg.get_attr("IFA_FLAGS") or msg["flags"]
        if msg["scope"] == RT_SCOPE_LINK or flags & IFA_F_DEPRECATED:
            continue
        addr = msg.get_attr("IFA_LOCAL") or msg.get_attr("IFA_ADDRESS")
        found.append(ipaddress.ip_interface(f"{addr}/{msg['prefixlen']}"))
    return found


def _routes(ipr, family: int, index: int) -> list[dict]:
    """The interface's routes in the main table, without the host's
    preferred source (an address the namespace may not have)."""
    routes = []
    for msg in ipr.get_routes(family=family, table=RT_TABLE_MAIN):
        if msg.get_attr("RTA_OIF") != index:
            continue
        route = {k: msg[k] for k in ROUTE_FIELDS}
        route.update({key: msg.get_attr(attr) for attr, key in ROUTE_ATTRS.items() if msg.get_attr(attr) is not None})
        route.setdefault("dst", "0.0.0.0" if family == socket.AF_INET else "::")
        routes.append(route)
    return routes


def read_template(interface: str | None, ipv4: bool, ipv6: bool) -> Template:
    """The host's template interface(s), read by netlink in the host's
    network namespace (before any namespace is joined), in a forked child:
    the daemon never loads pyroute2, whose asyncio state would outlive the
    call (and trip the seccomp filter when the daemon exits).  Raises
    SetupError."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            data = pickle.dumps(_read_template(interface, ipv4, ipv6))
        except BaseException as e:  # anything becomes the parent's one line
            data = pickle.dumps(f"cannot read the host's interfaces: {type(e).__name__}: {e}")
        os.write(w, data)
        os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        data = f.read(TEMPLATE_MAX)
    os.waitpid(pid, 0)
    try:
        tpl = pickle.loads(data)
    except (pickle.UnpicklingError, EOFError, ValueError):
        tpl = "cannot read the host's interfaces: the helper died"
    if isinstance(tpl, str):
        raise SetupError(tpl)
    return tpl


def _read_template(interface: str | None, ipv4: bool, ipv6: bool) -> Template:
    """read_template()'s work, in the child."""
    from pyroute2 import IPRoute

    tpl = Template()
    with IPRoute() as ipr:
        wanted = socket.if_nametoindex(interface) if interface else 0
        for version, family, on in ((4, socket.AF_INET, ipv4), (6, socket.AF_INET6, ipv6)):
            if not on:
                continue
            index, gateway = _default_route(ipr, family, wanted)
            index = index or wanted
            setattr(tpl, f"index{version}", index)
            setattr(tpl, f"gateway{version}", gateway)
            if index:
                setattr(tpl, f"addrs{version}", _addresses(ipr, family, index))
                setattr(tpl, f"routes{version}", _routes(ipr, family, index))
    if tpl.index4 or tpl.index6:
        tpl.ifname = socket.if_indextoname(tpl.index4 or tpl.index6)
    return tpl


def _classful(addr: ipaddress.IPv4Address) -> int:
    """pasta's prefix length for an IPv4 address given without one."""
    first = addr.packed[0]
    return 8 if first < 128 else 16 if first < 192 else 24 if first < 224 else 32


@dataclasses.dataclass
class Setup:
    """What --config-net does inside the namespace (and what is done
    without it: loopback up, the MAC set).  routes4/routes6: the template's
    routes to copy, or one default route via the gateway given with -g."""

    ifname: str
    config_net: bool
    mtu: int | None
    ns_mac: str | None
    addr4: ipaddress.IPv4Interface | None
    addr6: ipaddress.IPv6Interface | None
    routes4: list
    routes6: list


def _guest4(args, tpl: Template) -> tuple[ipaddress.IPv4Interface | None, ipaddress.IPv4Address | None, bool]:
    """(the guest's IPv4 address, its gateway, whether from local mode)."""
    if not args.ipv4:
        return None, None, False
    if not tpl.index4 and not tpl.index6 and args.address4 is None:
        return LOCAL4, args.gateway4 or LOCAL_GW4, True
    if args.address4 is not None:
        prefix = args.prefix4 if args.prefix4 is not None else next(
            (a.network.prefixlen for a in tpl.addrs4 if a.ip == args.address4), _classful(args.address4))
        return ipaddress.IPv4Interface(f"{args.address4}/{prefix}"), args.gateway4 or tpl.gateway4, False
    if not tpl.addrs4:
        return None, None, False
    addr = tpl.addrs4[0]
    if args.prefix4 is not None:
        addr = ipaddress.IPv4Interface(f"{addr.ip}/{args.prefix4}")
    return addr, args.gateway4 or tpl.gateway4, False


def _guest6(args, tpl: Template) -> tuple[ipaddress.IPv6Interface | None, ipaddress.IPv6Address | None]:
    if not args.ipv6:
        return None, None
    if args.address6 is not None:
        return ipaddress.IPv6Interface(f"{args.address6}/64"), args.gateway6 or tpl.gateway6
    if not tpl.addrs6 or not (args.gateway6 or tpl.gateway6):
        return None, None
    return tpl.addrs6[0], args.gateway6 or tpl.gateway6


def _rules(args, guest4, gateway4, guest6, gateway6, upstream: tuple) -> tuple[Rule, ...]:
    """The special addresses, pasta's order: DNS, host loopback, guest address."""
    loop4 = args.map_host_loopback4 or (None if args.no_map_gw else gateway4)
    loop6 = args.map_host_loopback6 or (None if args.no_map_gw else gateway6)
    dns4, dns6 = args.dns_forward4, args.dns_forward6
    if not args.dns_none:  # pasta: a loopback resolver is reached through the mapped gateway
        dns4 = dns4 or (loop4 if upstream[0] is not None and upstream[0].is_loopback else None)
        dns6 = dns6 or (loop6 if upstream[1] is not None and upstream[1].is_loopback else None)
    rules = [Rule.host(a, "dns") for a in (dns4, dns6) if a is not None and not args.dns_none]
    rules += [Rule.loopback(a, True) for a in (loop4, loop6) if a is not None]
    for addr, guest in ((args.map_guest_addr4, guest4), (args.map_guest_addr6, guest6)):
        if addr is not None and guest is not None:
            rules.append(Rule.host(addr, "redirect", to=guest.ip))
    return tuple(rules)


def model(args, tpl: Template, upstream: tuple) -> tuple[GuestNetwork, Setup]:
    """The guest's network and the namespace's setup for pasta's args, the
    host's template and nameservers (resolver upstream: first IPv4, first
    IPv6).  Raises SetupError when there is nothing to configure."""
    guest4, gateway4, local = _guest4(args, tpl)
    guest6, gateway6 = _guest6(args, tpl)
    if guest4 is None and guest6 is None:
        raise SetupError("No usable external interface")  # pasta: "External interface not usable"
    ifname = args.ns_ifname or tpl.ifname or "tap0"
    rdnss6 = next((a for a in args.dns if a.version == 6), args.dns_forward6)
    net = GuestNetwork(guest4=guest4, gateway4=gateway4, guest6=guest6, gateway6=gateway6,
                       prefix6=guest6.network if guest6 is not None else None,
                       rdnss6=None if args.dns_none else rdnss6,
                       rules=_rules(args, guest4, gateway4, guest6, gateway6, upstream),
                       neigh_all=True, no_ra=args.no_ra or args.config_net,
                       mac=bytes.fromhex((args.mac or PASTA_MAC).replace(":", "")))
    gw_route = [{"dst": "0.0.0.0", "dst_len": 0, "gateway": str(gateway4), "proto": RTPROT_BOOT}] if gateway4 else []
    gw_route6 = [{"dst": "::", "dst_len": 0, "gateway": str(gateway6), "proto": RTPROT_BOOT}] if gateway6 else []
    setup = Setup(ifname=ifname, config_net=args.config_net, mtu=DEFAULT_MTU if args.mtu is None else args.mtu or None,
                  ns_mac=args.ns_mac, addr4=guest4, addr6=guest6,
                  routes4=gw_route if (args.gateway4 or local) else tpl.routes4 if guest4 else [],
                  routes6=gw_route6 if args.gateway6 else tpl.routes6 if guest6 else [])
    return net, setup


def _add_routes(ipr, index: int, routes: list[dict], family: int) -> None:
    """Add routes through index; a route whose gateway is not reachable yet
    (its link route comes later) is tried again, ROUTE_PASSES times."""
    left = [dict(r, oif=index, family=family, table=RT_TABLE_MAIN) for r in routes]
    for _ in range(ROUTE_PASSES):
        failed = []
        for route in left:
            try:
                ipr.route("append" if family == socket.AF_INET else "add", **route)
            except Exception as e:  # pyroute2's NetlinkError carries the errno as .code
                code = getattr(e, "code", None)
                if code == errno.EEXIST:
                    continue
                if code not in (errno.ENETUNREACH, errno.EINVAL, errno.EHOSTUNREACH):
                    raise SetupError(f"Couldn't set route {route.get('dst')}/{route.get('dst_len')} in namespace: "
                                     f"{e}") from None
                failed.append((route, e))
        left = [r for r, _ in failed]
        if not left:
            return
    route, e = failed[0]
    raise SetupError(f"Couldn't set route {route.get('dst')}/{route.get('dst_len')} in namespace: {e}")


def configure(setup: Setup) -> None:
    """Inside the namespace (netns.py's helper, after the TAP exists): what
    pasta does there.  Raises SetupError."""
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        (lo,) = ipr.link_lookup(ifname="lo")
        ipr.link("set", index=lo, state="up")
        (tap,) = ipr.link_lookup(ifname=setup.ifname)
        if setup.ns_mac:
            ipr.link("set", index=tap, address=setup.ns_mac)
        if not setup.config_net:
            return
        if setup.mtu:
            ipr.link("set", index=tap, mtu=setup.mtu)
        # up with NOARP, so the link-local address starts without duplicate
        # address detection, and is marked so; then neighbours as usual
        ipr.link("set", index=tap, flags=IFF_UP | IFF_NOARP, change=IFF_UP | IFF_NOARP)
        for msg in ipr.get_addr(family=socket.AF_INET6, index=tap):
            ipr.addr("replace", index=tap, address=msg.get_attr("IFA_ADDRESS"), prefixlen=msg["prefixlen"],
                     family=socket.AF_INET6, flags=IFA_F_NODAD)
        ipr.link("set", index=tap, flags=0, change=IFF_NOARP)
        if setup.addr4 is not None:
            ipr.addr("add", index=tap, address=str(setup.addr4.ip), prefixlen=setup.addr4.network.prefixlen)
            _add_routes(ipr, tap, setup.routes4, socket.AF_INET)
        if setup.addr6 is not None:
            ipr.addr("add", index=tap, address=str(setup.addr6.ip), prefixlen=setup.addr6.network.prefixlen,
                     family=socket.AF_INET6, flags=IFA_F_NODAD)
            _add_routes(ipr, tap, setup.routes6, socket.AF_INET6)
