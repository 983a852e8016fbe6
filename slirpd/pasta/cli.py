"""pasta's command line -> PastaArgs: the options slirpd takes, as pasta
spells and checks them.

Only the options slirpd implements are in OPTIONS: any other, pasta's own
included, fails as getopt_long fails on an option it does not know
("unrecognized option '--X'", exit 1), never silently (README, "The pasta
interface", lists both).  Values are checked as pasta checks them, with
pasta's messages ("Invalid address: X", "Invalid port specifier X", ...),
in the order pasta checks them: options as they come, port specs after.

No dataclasses and no re: this runs on the way to pasta's exit 0 (issue
19), where their imports alone would be a quarter of the time allowed.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import sys

from slirpd import __version__
from slirpd.pasta.getopt import Getopt, GetoptError, Option
from slirpd.portspec import Spec, pasta_spec

MTU_MIN, MTU_MAX = 68, 65521  # the TAP driver's bounds (pasta's -m takes up to 65535)
NETNS_RUN_DIR = "/run/netns"
IFNAMSIZ = 16
HOSTNAME_MAX = 64  # pasta's buffer, as HOST_NAME_MAX + 1
HEX_DIGITS = frozenset("0123456789abcdefABCDEF")

OPTIONS = [Option(*o) for o in (
    ("debug", "d"), ("quiet", "q"), ("foreground", "f"), ("stderr", "e"), ("log-file", "l", True),
    ("help", "h"), ("ns-ifname", "I", True), ("pcap", "p", True), ("pid", "P", True), ("mtu", "m", True),
    ("address", "a", True), ("netmask", "n", True), ("mac-addr", "M", True), ("gateway", "g", True),
    ("interface", "i", True), ("outbound", "o", True), ("dns", "D", True), ("no-dhcp",), ("no-dhcpv6",),
    ("no-ra",), ("no-splice",), ("freebind",), ("no-map-gw",), ("ipv4-only", "4"), ("ipv6-only", "6"),
    ("tcp-ports", "t", True), ("udp-ports", "u", True), ("tcp-ns", "T", True), ("udp-ns", "U", True),
    ("userns", None, True), ("netns", None, True), ("ns-mac-addr", None, True), ("dns-forward", None, True),
    ("no-netns-quit",), ("trace",), ("version",), ("outbound-if4", None, True), ("outbound-if6", None, True),
    ("config-net",), ("map-host-loopback", None, True), ("map-guest-addr", None, True),
    ("dns-host", None, True), ("no-ndp",), ("search", "S", True), ("dhcp-dns",), ("no-dhcp-dns",),
    ("dhcp-search",), ("no-dhcp-search",), ("no-copy-routes",), ("no-copy-addrs",),
    ("hostname", "H", True), ("no-icmp",), ("host-lo-to-ns-lo",),
)]

HELP = f"""\
Usage: pasta [OPTION]... [COMMAND] [ARGS]...
       pasta [OPTION]... PID
       pasta [OPTION]... --netns [PATH|NAME]

slirpd {__version__} standing in for pasta: connect a network namespace (a new one
running COMMAND, the one of PID, or --netns) through a TAP device, with pasta's
network model: the host's addresses and routes copied in (--config-net).

  -d, --debug, --trace	Be verbose
  -q, --quiet		Don't print informational messages
  -f, --foreground	Don't run in background
  -e, --stderr		Log to stderr (the default; kept for compatibility)
  -l, --log-file PATH	Log (only) to given file
  -h, --help		Display this help message and exit
  --version		Show version and exit
  -I, --ns-ifname NAME	namespace interface name
    default: same interface name as external one
  -p, --pcap FILE	Log tap-facing traffic to pcap file
  -P, --pid FILE	Write own PID to the given file
  -m, --mtu MTU	MTU of the namespace interface, 0: leave it
    default: 65520
  -a, --address ADDR	Assign IPv4 or IPv6 address ADDR
  -n, --netmask MASK	Assign IPv4 MASK, dot-decimal or bits
  -M, --mac-addr ADDR	Use source MAC address ADDR
    default: 9a:55:9a:55:9a:55 (locally administered)
  -g, --gateway ADDR	Pass IPv4 or IPv6 address as gateway
  -i, --interface NAME	Interface for addresses and routes
    default: interface with first default route
  -o, --outbound ADDR	Bind to address as outbound source
  --outbound-if4 NAME	Bind outbound IPv4 to the address of NAME
  --outbound-if6 NAME	Bind outbound IPv6 to the address of NAME
  -D, --dns ADDR	DNS address handed out with --dhcp-dns, none:
			no DNS at all
  --dns-forward ADDR	Forward DNS queries sent to ADDR to the host's resolver
  --dns-host ADDR	Host nameserver to direct queries to
    default: the first nameserver of /etc/resolv.conf, followed
  --map-host-loopback ADDR	Translate ADDR to refer to host
    default: gateway address, none: no mapping
  --map-guest-addr ADDR	Translate ADDR to the guest's address on the host
  --no-map-gw		Don't map gateway address to host
  -S, --search DOMAIN	A search domain (repeatable), none: none
    default: the host's (handed out with --dhcp-search only)
  -H, --hostname NAME	Hostname to configure client with
  --dhcp-dns		Pass DNS list via DHCP/NDP
  --dhcp-search		Pass list via DHCP/NDP
  --no-dhcp		Disable DHCP server
  --no-ndp		Disable NDP responses
  --no-icmp		Disable ICMP/ICMPv6 protocol handler
  --no-dhcpv6		Disable DHCPv6 server
  --no-ra		Disable router advertisements
  --no-splice		Inbound connections go through the tap (as they do
			anyway, but with --host-lo-to-ns-lo)
  --freebind		Bind to any address for forwarding
  -4, --ipv4-only	Enable IPv4 operation only
  -6, --ipv6-only	Enable IPv6 operation only
  -t, --tcp-ports SPEC	TCP port forwarding to namespace
  -u, --udp-ports SPEC	UDP port forwarding to namespace
    SPEC: none, auto, or [ADDR[%IF]/]PORTS[,PORTS]... where PORTS is
    FIRST[-LAST][:TOFIRST[-TOLAST]] or ~FIRST[-LAST] (excluded)
    default: auto
  -T, --tcp-ns SPEC	TCP forwarding from namespace loopback to host's
  -U, --udp-ns SPEC	UDP forwarding from namespace loopback to host's
    SPEC: none, auto (ports bound on the host), or PORTS as above
    default: auto
  --host-lo-to-ns-lo	-t connections from the host's loopback go to the
			namespace's loopback (TCP only), not through the tap
  --userns NSPATH	Target user namespace to join
  --netns PATH|NAME	Target network namespace to join
  --no-netns-quit	Don't quit if filesystem-bound target is gone
  --config-net		Configure tap interface in namespace
  --ns-mac-addr ADDR	Set MAC address on tap interface
  --no-copy-routes	DEPRECATED:
			Don't copy all routes to namespace
  --no-copy-addrs	DEPRECATED:
			Don't copy all addresses to namespace
"""


class UsageError(Exception):
    """A command line pasta would refuse; str() is the one line to print."""


class PastaArgs:
    """What a pasta command line asks for (the defaults are pasta's, class
    attributes that an option given replaces on the instance)."""

    debug: bool = False
    quiet: bool = False
    foreground: bool = False
    log_file: str | None = None
    pcap: str | None = None
    pid_file: str | None = None
    ns_ifname: str | None = None
    mtu: int | None = None  # None: 65520; 0: leave the TAP's
    address4: ipaddress.IPv4Address | None = None
    address6: ipaddress.IPv6Address | None = None
    prefix4: int | None = None
    mac: str | None = None
    gateway4: ipaddress.IPv4Address | None = None
    gateway6: ipaddress.IPv6Address | None = None
    interface: str | None = None
    outbound4: str | None = None  # an address, or an interface's name (its address)
    outbound6: str | None = None
    dns_none: bool = False
    dns_forward4: ipaddress.IPv4Address | None = None
    dns_forward6: ipaddress.IPv6Address | None = None
    dns_host4: ipaddress.IPv4Address | None = None
    dns_host6: ipaddress.IPv6Address | None = None
    map_host_loopback4: ipaddress.IPv4Address | None = None
    map_host_loopback6: ipaddress.IPv6Address | None = None
    no_map_gw: bool = False
    map_guest_addr4: ipaddress.IPv4Address | None = None
    map_guest_addr6: ipaddress.IPv6Address | None = None
    no_ra: bool = False
    no_ndp: bool = False
    no_icmp: bool = False
    host_lo_to_ns_lo: bool = False  # -t from the host's loopback to the namespace's (TCP)
    no_splice: bool = False  # --host-lo-to-ns-lo does nothing then, as in pasta
    no_dhcp: bool = False
    no_dhcpv6: bool = False
    dhcp_dns: bool = False  # pasta hands out no DNS by DHCP or NDP unless --dhcp-dns
    dhcp_search: bool = False
    search: tuple | None = None  # -S: the domains; None: the host's resolv.conf's
    hostname: str | None = None  # -H: DHCP's option 12
    freebind: bool = False
    ipv4: bool = True
    ipv6: bool = True
    tcp: Spec = Spec("auto")
    udp: Spec = Spec("auto")
    tcp_ns: Spec = Spec("auto")
    udp_ns: Spec = Spec("auto")
    userns: str | None = None
    netns: str | None = None
    pid: int | None = None
    command: list | None = None
    netns_quit: bool = True
    config_net: bool = False
    no_copy_routes: bool = False  # --config-net sets a default route via the gateway only
    no_copy_addrs: bool = False  # --config-net sets the guest's one address only (IPv6: /64)
    ns_mac: str | None = None

    def __init__(self):
        self.dns: list = []
        self.ns_specs: list = []  # -T, -U: (option, SPEC) until ns_ports()


def _addr(text: str, what: str, allow_loopback: bool = False):
    """An IPv4 or IPv6 address pasta accepts for what: never unspecified,
    multicast, broadcast, IPv4-mapped or -compatible, loopback unless
    allowed.  Raises UsageError("Invalid {what}: text")."""
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        addr = None
    bad = addr is None or addr.is_unspecified or addr.is_multicast or (addr.is_loopback and not allow_loopback)
    if addr is not None and addr.version == 4:
        bad = bad or addr == ipaddress.IPv4Address("255.255.255.255")
    elif addr is not None:
        bad = bad or addr.ipv4_mapped is not None or (int(addr) >> 32 == 0 and int(addr) > 1)
    if bad:
        raise UsageError(f"Invalid {what}: {text}")
    return addr


def _mac(text: str) -> str:
    """A MAC address as six pairs of hex digits and colons, lowercased."""
    pairs = text.split(":")
    if len(pairs) != 6 or any(len(p) != 2 or not HEX_DIGITS.issuperset(p) for p in pairs):
        raise UsageError(f"Invalid MAC address: {text}")
    return text.lower()


def _prefix4(text: str) -> int:
    """-n: dotted mask or a number of bits (as strtoul reads it)."""
    try:
        mask = int(ipaddress.IPv4Address(text))
        bits = bin(mask).count("1")
        if (mask << bits) & 0xFFFFFFFF:
            raise ValueError
        return bits
    except ValueError:
        pass
    try:
        bits = int(text, 0)
    except ValueError:
        bits = -1
    if not 0 <= bits <= 32:
        raise UsageError(f"Invalid netmask: {text}")
    return bits


def _mtu(text: str) -> int:
    try:
        mtu = int(text, 0)
    except ValueError:
        mtu = -1
    if mtu and not MTU_MIN <= mtu <= MTU_MAX:
        raise UsageError(f"Invalid MTU: {text}")
    return mtu


def _ifname(text: str) -> str:
    if not 1 <= len(text.encode()) < IFNAMSIZ or "/" in text or text.strip() != text:
        raise UsageError(f"Invalid interface name: {text}")
    return text


def _ports(args: PastaArgs, field: str, letter: str, text: str) -> None:
    """Merge a -t/-u/-T/-U spec into args.field, as pasta combines them."""
    try:
        spec = pasta_spec(text, with_address=letter in "tu")
    except ValueError as e:
        raise UsageError(str(e)) from None
    if spec.mode == "ports" and not spec.maps:
        raise UsageError(f"Failed to bind any port for '-{letter} {text}'")
    old = getattr(args, field)
    if old is _UNSET[field] and spec.mode != "ports":
        setattr(args, field, spec)
    elif old is not _UNSET[field] and (spec.mode != "ports" or old.mode != "ports"):
        if spec.mode != "ports":
            raise UsageError(f"Port forwarding mode '{text}' conflicts with previous mode")
        raise UsageError("Specific ports cannot be specified together with all/none/auto")
    else:  # each spec's exclusions are its own, as in pasta
        setattr(args, field, Spec("ports", (old.maps if old is not _UNSET[field] else ()) + spec.maps))


# The defaults of the port options, told apart from the same value given
_UNSET = {"tcp": PastaArgs.tcp, "udp": PastaArgs.udp, "tcp_ns": PastaArgs.tcp_ns, "udp_ns": PastaArgs.udp_ns}
PORT_OPTIONS = {"tcp-ports": ("tcp", "t"), "udp-ports": ("udp", "u"), "tcp-ns": ("tcp_ns", "T"),
                "udp-ns": ("udp_ns", "U")}


def _nat(args: PastaArgs, name: str, text: str) -> None:
    """--map-host-loopback, --map-guest-addr: an address of either family,
    or none."""
    field = name.replace("-", "_")
    if text == "none":
        setattr(args, field + "4", None)
        setattr(args, field + "6", None)
        if name == "map-host-loopback":
            args.no_map_gw = True
        return
    addr = _addr(text, "address to remap to host")
    setattr(args, f"{field}{addr.version}", addr)


def _option(args: PastaArgs, name: str, value: str | None) -> str | None:
    """Apply one option. Return: a text to print and exit 0 with (--help,
    --version), else None.  Raises UsageError."""
    flags = {"debug": ("debug", True), "trace": ("debug", True), "quiet": ("quiet", True),
             "foreground": ("foreground", True), "no-ra": ("no_ra", True), "freebind": ("freebind", True),
             "no-map-gw": ("no_map_gw", True), "no-netns-quit": ("netns_quit", False),
             "config-net": ("config_net", True), "no-ndp": ("no_ndp", True), "no-icmp": ("no_icmp", True), "no-dhcp": ("no_dhcp", True),
             "no-dhcpv6": ("no_dhcpv6", True),
             "host-lo-to-ns-lo": ("host_lo_to_ns_lo", True), "no-splice": ("no_splice", True),
             "dhcp-dns": ("dhcp_dns", True), "dhcp-search": ("dhcp_search", True)}
    if name in flags:
        setattr(args, *flags[name])
        if name in ("debug", "trace"):
            args.quiet = False
    elif name in ("help", "version"):
        return HELP if name == "help" else f"pasta (slirpd {__version__})\n"
    elif name == "stderr":
        pass  # what slirpd does anyway (see HELP)
    elif name in ("no-dhcp-dns", "no-dhcp-search"):
        raise UsageError(f"--{name} is for passt mode only")  # pasta's own refusal
    elif name == "search":
        _search(args, value)
    elif name == "hostname":
        if not 0 < len(value.encode()) < HOSTNAME_MAX:
            raise UsageError(f"Invalid hostname: {value}")
        args.hostname = value
    elif name in ("no-copy-routes", "no-copy-addrs"):
        print(f"--{name} will be dropped soon", file=sys.stderr)  # pasta warns as it reads it
        setattr(args, name.replace("-", "_"), True)
    elif name == "log-file":
        args.log_file = value
    elif name == "pcap":
        args.pcap = value
    elif name == "pid":
        args.pid_file = value
    elif name == "ns-ifname":
        args.ns_ifname = _ifname(value)
    elif name == "mtu":
        args.mtu = _mtu(value)
    elif name == "address":
        addr = _addr(value, "address")
        setattr(args, f"address{addr.version}", addr)
    elif name == "netmask":
        args.prefix4 = _prefix4(value)
    elif name in ("mac-addr", "ns-mac-addr"):
        setattr(args, "mac" if name == "mac-addr" else "ns_mac", _mac(value))
    elif name == "gateway":
        addr = _addr(value, "gateway address")
        setattr(args, f"gateway{addr.version}", addr)
    elif name == "interface":
        try:
            socket.if_nametoindex(value)
        except OSError as e:
            raise UsageError(f"Invalid interface name {value}: {e.strerror}") from None
        args.interface = value
    elif name == "outbound":
        addr = _addr(value, "or redundant outbound address", allow_loopback=True)
        setattr(args, f"outbound{addr.version}", str(addr))
    elif name in ("outbound-if4", "outbound-if6"):
        setattr(args, "outbound" + name[-1], _ifname(value))
    elif name == "dns":
        _dns(args, value)
    elif name in ("dns-forward", "dns-host"):
        what = "DNS forwarding address" if name == "dns-forward" else "host nameserver address"
        addr = _addr(value, what, allow_loopback=name == "dns-host")
        setattr(args, f"{name.replace('-', '_')}{addr.version}", addr)
    elif name in ("map-host-loopback", "map-guest-addr"):
        _nat(args, name, value)
    elif name in ("ipv4-only", "ipv6-only"):
        args.ipv4, args.ipv6 = name == "ipv4-only", name == "ipv6-only"
    elif name == "userns":
        args.userns = value
    elif name == "netns":
        args.netns = value if "/" in value else f"{NETNS_RUN_DIR}/{value}"
    return None


def _search(args: PastaArgs, value: str) -> None:
    """-S DOMAIN (one more search domain; pasta takes each -S as one name)
    or -S none (no search list)."""
    from slirpd.dhcp import encode_search

    if value == "none":
        args.search = ()
        return
    try:
        encode_search([value])
    except (ValueError, UnicodeError):
        raise UsageError(f"Cannot use DNS search domain {value}") from None
    args.search = (args.search or ()) + (value,)


def _dns(args: PastaArgs, value: str) -> None:
    """-D ADDR (announced to the guest) or -D none (no DNS at all)."""
    if value == "none":
        args.dns, args.dns_none = [], True
        args.dns_forward4 = args.dns_forward6 = None
        return
    try:
        args.dns.append(ipaddress.ip_address(value))
    except ValueError:
        raise UsageError(f"Cannot use DNS address {value}") from None
    args.dns_none = False


def parse(argv: list[str], prog: str = "pasta") -> PastaArgs | str:
    """Parse pasta's argv (without the program name); prog is argv[0], as
    getopt's messages show it.  Return: PastaArgs, or a text to print before
    exiting 0 (--help, --version).  Raises UsageError."""
    args, ports = PastaArgs(), []
    options = Getopt(argv, OPTIONS, prog)
    try:
        for name, value in options:
            if name in PORT_OPTIONS:
                ports.append((name, value))
                continue
            text = _option(args, name, value)
            if text is not None:
                return text
    except GetoptError as e:
        raise UsageError(str(e)) from None
    for name, value in ports:  # after the addresses, as pasta does; -T and -U
        if name in ("tcp-ports", "udp-ports"):  # once the target is known (ns_ports())
            _ports(args, *PORT_OPTIONS[name], value)
        else:
            args.ns_specs.append((name, value))
    for flag, name in ((args.no_copy_routes, "no-copy-routes"), (args.no_copy_addrs, "no-copy-addrs")):
        if flag and not args.config_net:
            raise UsageError(f"--{name} needs --config-net")
    _target(args, options.rest)
    return args


def ns_ports(args: PastaArgs) -> None:
    """-T and -U, parsed where pasta parses them: after the target's
    namespaces were opened (their errors come first).  Raises UsageError."""
    for name, value in args.ns_specs:
        _ports(args, *PORT_OPTIONS[name], value)


def _is_integer(word: str) -> bool:
    """Whether word is an integer in decimal, with a sign or not (what pasta
    takes for a PID rather than a command)."""
    return word[1:].isdecimal() if word[:1] in ("+", "-") else word.isdecimal()


def _target(args: PastaArgs, rest: list[str]) -> None:
    """The words after the options: a PID, or a command (none: the user's
    shell), unless --netns."""
    if args.netns and rest:
        raise UsageError("Both --netns and PID or command given")
    if len(rest) == 1 and _is_integer(rest[0]):
        pid = int(rest[0])
        if not 0 <= pid <= 0x7FFFFFFF:
            raise UsageError(f"Invalid PID {rest[0]}")
        args.pid = pid
    elif not args.netns:
        args.command = rest or [os.environ.get("SHELL") or "/bin/sh"]
