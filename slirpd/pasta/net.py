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

Netlink, all of it here, spoken directly (rtnl.py, no pyroute2: this is on
the way to pasta's exit 0, issue 19): the host's routes and one interface's
addresses, read in the daemon before it joins any namespace; then inside the
namespace, in netns.py's helper: links set up (lo, the TAP: MTU, MAC,
flags), addresses added (IFA_F_NODAD), routes added.
"""

from __future__ import annotations

import collections
import errno
import ipaddress
import socket

from slirpd._linux import SetupError
from slirpd.netmodel import GuestNetwork, Rule
from slirpd.rtnl import Route, Rtnl, RtnlError

PASTA_MAC = "9a:55:9a:55:9a:55"  # pasta's own MAC address, as -M's default
DEFAULT_MTU = 65520  # pasta's: 65535 less the Ethernet header, 32-bit aligned
LOCAL4 = ipaddress.IPv4Interface("169.254.2.1/16")  # local mode
LOCAL_GW4 = ipaddress.IPv4Address("169.254.2.2")
IFA_F_DEPRECATED = 0x20
RT_TABLE_MAIN, RT_SCOPE_UNIVERSE, RT_SCOPE_LINK, RTPROT_BOOT, RTN_UNICAST = 254, 0, 253, 3, 1
ROUTE_PASSES = 4  # routes whose gateway is not reachable yet are tried again after the others
ROUTE_RETRIED = (errno.ENETUNREACH, errno.EINVAL, errno.EHOSTUNREACH)  # refusals of such a route
FAMILIES = ((4, socket.AF_INET), (6, socket.AF_INET6))

# The host interfaces pasta copies: per family its index (0: none), its
# addresses (ipaddress interfaces), default gateway and routes (rtnl.Route,
# in the main table)
Template = collections.namedtuple("Template", "ifname index4 index6 addrs4 addrs6 gateway4 gateway6 routes4 routes6",
                                  defaults=(None, 0, 0, (), (), None, None, (), ()))


def _default_route(routes: list[Route], index: int):
    """The first default route of a dump in the main table (through index,
    if not 0): (interface index, gateway) or (0, None)."""
    for route in routes:
        if route.dst is None and route.oif and (not index or route.oif == index) and route.table == RT_TABLE_MAIN:
            return route.oif, route.gateway
    return 0, None


def _addresses(nl: Rtnl, family: int, index: int) -> list:
    """The interface's addresses of a family pasta copies: not link-scoped,
    not deprecated."""
    return [ipaddress.ip_interface((a.address, a.prefixlen)) for a in nl.addresses(family, index)
            if a.scope != RT_SCOPE_LINK and not a.flags & IFA_F_DEPRECATED]


def _routes(routes: list[Route], index: int) -> list[Route]:
    """The interface's routes in the main table (without the host's
    preferred source: an address the namespace may not have)."""
    return [r for r in routes if r.oif == index and r.table == RT_TABLE_MAIN]


def read_template(interface: str | None, ipv4: bool, ipv6: bool) -> Template:
    """The host's template interface(s), read by netlink in the host's
    network namespace (before any namespace is joined).  Raises
    SetupError."""
    found = {}
    try:
        with Rtnl() as nl:
            wanted = nl.index(interface) if interface else 0
            for version, family in FAMILIES:
                if not (ipv4 if version == 4 else ipv6):
                    continue
                routes = nl.routes(family)
                index, gateway = _default_route(routes, wanted)
                index = index or wanted
                found.update({f"index{version}": index, f"gateway{version}": gateway})
                if index:
                    found.update({f"addrs{version}": _addresses(nl, family, index),
                                  f"routes{version}": _routes(routes, index)})
    except RtnlError as e:
        raise SetupError(f"cannot read the host's interfaces: {e}") from None
    index = found.get("index4") or found.get("index6")
    if index:
        try:
            found["ifname"] = socket.if_indextoname(index)
        except OSError as e:  # it went away since the dump
            raise SetupError(f"cannot read the host's interfaces: interface {index}: {e.strerror}") from None
    return Template(**found)


def _classful(addr: ipaddress.IPv4Address) -> int:
    """pasta's prefix length for an IPv4 address given without one."""
    first = addr.packed[0]
    return 8 if first < 128 else 16 if first < 192 else 24 if first < 224 else 32


# What --config-net does inside the namespace (and what is done without it:
# loopback up, the MAC set).  routes4/routes6: the template's routes to copy,
# or one default route via the gateway given with -g (rtnl.Route)
Setup = collections.namedtuple("Setup", "ifname config_net mtu ns_mac addr4 addr6 routes4 routes6")


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
    addr = tpl.addrs6[0]
    if args.no_copy_addrs:  # pasta sets it as a /64
        addr = ipaddress.IPv6Interface(f"{addr.ip}/64")
    return addr, args.gateway6 or tpl.gateway6


def _rules(args, guest4, gateway4, guest6, gateway6, upstream: tuple) -> tuple[Rule, ...]:
    """The special addresses, pasta's order: DNS, host loopback, guest address."""
    loop4, loop6 = _loopback_maps(args, gateway4, gateway6)
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


def _guest_dns(args, version: int, upstream, loopback) -> tuple:
    """The DNS servers pasta hands the guest (by DHCP, router advertisements)
    for one IP version: those -D gave, else the host's nameserver, its
    loopback one as the address mapped to the host's loopback (none
    without).  None of them without --dhcp-dns, pasta's default."""
    if not args.dhcp_dns or args.dns_none:
        return ()
    given = tuple(a for a in args.dns if a.version == version)
    if given or upstream is None:
        return given
    if upstream.is_loopback:
        return (loopback,) if loopback is not None else ()
    return (upstream,)


def _loopback_maps(args, gateway4, gateway6) -> tuple:
    """The addresses standing for the host's loopback, IPv4 and IPv6 (None:
    not mapped)."""
    return (args.map_host_loopback4 or (None if args.no_map_gw else gateway4),
            args.map_host_loopback6 or (None if args.no_map_gw else gateway6))


def model(args, tpl: Template, upstream: tuple) -> tuple[GuestNetwork, Setup]:
    """The guest's network and the namespace's setup for pasta's args, the
    host's template and nameservers (resolver upstream: first IPv4, first
    IPv6).  Raises SetupError when there is nothing to configure."""
    guest4, gateway4, local = _guest4(args, tpl)
    guest6, gateway6 = _guest6(args, tpl)
    if guest4 is None and guest6 is None:
        raise SetupError("No usable external interface")  # pasta: "External interface not usable"
    ifname = args.ns_ifname or tpl.ifname or "tap0"
    rdnss6 = next(iter(_guest_dns(args, 6, upstream[1], _loopback_maps(args, gateway4, gateway6)[1])), None)
    net = GuestNetwork(guest4=guest4, gateway4=gateway4, guest6=guest6, gateway6=gateway6,
                       prefix6=guest6.network if guest6 is not None else None,
                       rdnss6=rdnss6,
                       rules=_rules(args, guest4, gateway4, guest6, gateway6, upstream),
                       neigh_all=True, no_ra=args.no_ra or args.config_net, no_ndp=args.no_ndp,
                       no_icmp=args.no_icmp, dhcpv6=guest6 is not None and not args.no_dhcpv6, ra_managed=True,
                       mac=bytes.fromhex((args.mac or PASTA_MAC).replace(":", "")))
    gw_route = [_default_via(socket.AF_INET, gateway4)] if gateway4 else []
    gw_route6 = [_default_via(socket.AF_INET6, gateway6)] if gateway6 else []
    setup = Setup(ifname=ifname, config_net=args.config_net, mtu=DEFAULT_MTU if args.mtu is None else args.mtu or None,
                  ns_mac=args.ns_mac, addr4=guest4, addr6=guest6,
                  routes4=gw_route if (args.gateway4 or local or args.no_copy_routes) else tpl.routes4 if guest4 else [],
                  routes6=gw_route6 if (args.gateway6 or args.no_copy_routes) else tpl.routes6 if guest6 else [])
    return net, setup


def dhcp_settings(args, network: GuestNetwork, setup: Setup, upstream: tuple):
    """pasta's DHCP (its dhcp.c) for the guest's network: the guest's one
    address and prefix to every client, for ever; its gateway as router,
    and as our address; the MTU (none with -m 0); the DNS servers and search
    domains only with --dhcp-dns and --dhcp-search; -H's hostname; rapid
    commit.  None when no DHCP is
    served: --no-dhcp, no IPv4, or no gateway (pasta's conf.c)."""
    from slirpd.dhcp import LEASE_INFINITE, Settings

    if args.no_dhcp or network.guest4 is None or network.gateway4 is None:
        return None
    return Settings(server=network.gateway4, mac=network.mac, network=network.guest4.network,
                    router=network.gateway4, mtu=setup.mtu,
                    dns=_guest_dns(args, 4, upstream[0], _loopback_maps(args, network.gateway4, None)[0]),
                    search=_search(args), address=network.guest4.ip, lease_seconds=LEASE_INFINITE, hostname=args.hostname,
                    rapid_commit=True)


def dhcpv6_settings(args, network: GuestNetwork, upstream: tuple):
    """pasta's DHCPv6 (its dhcpv6.c): the guest's one IPv6 address; the DNS
    servers and search domains only with --dhcp-dns and --dhcp-search, as
    for DHCP.  None when no DHCPv6 is served: --no-dhcpv6 or no IPv6
    (network.dhcpv6 is off)."""
    from slirpd.dhcpv6 import Settings

    if not network.dhcpv6:
        return None
    return Settings(mac=network.mac, address=network.guest6.ip,
                    dns=_guest_dns(args, 6, upstream[1], _loopback_maps(args, None, network.gateway6)[1]),
                    search=_search(args))


def _search(args) -> tuple:
    """The search domains pasta hands out (DHCP, DHCPv6): -S's, or the
    host's, with --dhcp-search only."""
    if not args.dhcp_search:
        return ()
    return args.search if args.search is not None else host_search_domains()


def host_search_domains(path: str = "/etc/resolv.conf") -> tuple:
    """The search domains of the host's resolv.conf (its first "search"
    line, as pasta reads it), () if it has none or cannot be read."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("search "):
                    return tuple(line.split()[1:])
    except OSError:
        pass
    return ()


def _default_via(family: int, gateway) -> Route:
    """A default route via gateway, as -g gives it (the interface's index
    is set when it is added)."""
    return Route(family, 0, RT_TABLE_MAIN, RTPROT_BOOT, RT_SCOPE_UNIVERSE, RTN_UNICAST, None, gateway, 0, None)


def _add_routes(nl: Rtnl, ifname: str, routes: list[Route]) -> None:
    """Add routes through ifname (IPv4's appended beside one of the same
    destination, as pasta does); a route whose gateway is not reachable yet
    (its link route comes later) is tried again, ROUTE_PASSES times; one
    that is there already is left as it is."""
    left = [r._replace(oif=nl.index(ifname), table=RT_TABLE_MAIN) for r in routes]
    for _ in range(ROUTE_PASSES):
        failed = []
        for route in left:
            try:
                nl.add_route(route, append=route.family == socket.AF_INET)
            except RtnlError as e:
                if e.errno == errno.EEXIST:
                    continue
                if e.errno not in ROUTE_RETRIED:
                    raise SetupError(f"Couldn't set route in namespace: {e}") from None
                failed.append((route, e))
        if not failed:
            return
        left = [route for route, _e in failed]
    raise SetupError(f"Couldn't set route in namespace: {failed[0][1]}")


def configure(setup: Setup) -> None:
    """Inside the namespace (netns.py's helper, after the TAP exists): what
    pasta does there.  Raises SetupError."""
    tap = setup.ifname
    try:
        with Rtnl() as nl:
            nl.set_link("lo", up=True)
            if setup.ns_mac:
                nl.set_link(tap, mac=setup.ns_mac)
            if not setup.config_net:
                return
            if setup.mtu:
                nl.set_link(tap, mtu=setup.mtu)
            # up with NOARP, so the link-local address starts without
            # duplicate address detection, and is marked so; then neighbours
            # as usual
            nl.set_link(tap, up=True, noarp=True)
            for addr in nl.addresses(socket.AF_INET6, nl.index(tap)):
                nl.replace_address(tap, ipaddress.ip_interface((addr.address, addr.prefixlen)), nodad=True)
            nl.set_link(tap, noarp=False)
            if setup.addr4 is not None:
                nl.add_address(tap, setup.addr4)
                _add_routes(nl, tap, setup.routes4)
            if setup.addr6 is not None:
                nl.add_address(tap, setup.addr6, nodad=True)
                _add_routes(nl, tap, setup.routes6)
    except RtnlError as e:
        raise SetupError(str(e)) from None
