"""Command line: slirp4netns 1.2's options, spellings and defaults -> Config;
or the subcommand it names (subcommand(): pasta, ctl, install-unit, enter),
which parses the rest itself.

The --help text keeps slirp4netns's option strings verbatim, because podman and
rootlesskit detect features by grepping it.  Errors are one line on stderr and
exit status 1, as slirp4netns does.

The options are parsed as argparse parses them (abbreviations, clustered short
options and all).  Importing argparse and building its parser takes a good
part of the time slirpd may take to be ready (issue 19), so the command
lines clients really pass (every option spelled out, a value in the next
word or after "=", the positionals in one run) are read by _parse_common()
without it, to the same result; anything else goes to argparse, whose
errors are the ones reported.  Both are built from one table, OPTIONS.
"""

from __future__ import annotations

import ipaddress
import os
import sys
import types

from slirpd import __version__
from slirpd.config import DEFAULT_CIDR, DEFAULT_MTU, DEFAULT_PCAP_MAX_SIZE, MAX_MTU, MIN_MTU, MIN_PCAP_MAX_SIZE, Config

PROG = "slirpd"

HELP = f"""\
Usage: {PROG} [OPTION]... PID|PATH [TAPNAME]
       {PROG} [OPTION]... -- [COMMAND [ARG]...]
       {PROG} [OPTION]... --create-netns=PATH [TAPNAME]
       {PROG} ctl|install-unit|enter ...   (see: {PROG} COMMAND --help)
       {PROG} pasta [PASTA OPTION]...      (pasta's command line, as a link named pasta)
User-mode networking for unprivileged network namespaces.

-c, --configure          bring up the interface
-e, --exit-fd=FD         specify the FD for terminating {PROG}
-r, --ready-fd=FD        specify the FD to write to when the network is configured
-m, --mtu=MTU            specify MTU (default={DEFAULT_MTU}, max={MAX_MTU})
-6, --enable-ipv6        enable IPv6 (experimental)
-a, --api-socket=PATH    specify API socket path
--cidr=CIDR              specify network address CIDR (default={DEFAULT_CIDR})
--disable-host-loopback  prohibit connecting to 127.0.0.1:* on the host namespace
--netns-type=TYPE        specify network namespace type ([path|pid], default=pid)
--userns-path=PATH       specify user namespace path
--enable-sandbox         create a new mount namespace (and drop all caps except CAP_NET_BIND_SERVICE if running as the root)
--enable-seccomp         enable seccomp to limit syscalls (experimental)
--outbound-addr=IPv4     sets outbound ipv4 address to bound to (experimental)
--outbound-addr6=IPv6    sets outbound ipv6 address to bound to (experimental)
--disable-dns            disables 10.0.2.3 (or configured internal ip) to host dns redirect (experimental)
--macaddress=MAC         specify the MAC address of the TAP (only valid with -c)
--target-type=TYPE       specify the target type ([netns|bess], default=netns)
--create-netns=PATH      create a network namespace bound to PATH and serve it
--pcap=FILE              capture every frame on the TAP, both ways, into FILE (pcap format)
--pcap-max-size=SIZE     stop capturing before FILE grows past SIZE bytes (K, M, G suffixes; default=100M)
-p, --publish=[HOSTADDR:]HOSTPORT[-LAST]:GUESTPORT[-LAST][/udp]
                         forward a host port (or range) to the guest at start-up (repeatable)
-p, --publish=auto[,~PORT[-LAST]]...
                         forward every port a server binds in the guest, TCP and UDP,
                         while it is bound (but the ~excluded ones)
--debug                  log every event (also: SLIRPD_DEBUG=1)
-h, --help               show this help and exit
-v, --version            show version and exit
"""

MAC_RE = r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$"
MIN_MTU_IPV6 = 1280  # RFC 8200: no IPv6 link is smaller
MAX_PREFIXLEN = 25  # the guest's network+100 must fit in the network


class UsageError(Exception):
    """A bad command line: the message is printed as one line, exit 1."""


def _match(pattern: str, text: str):
    """re.match(pattern, text): re is imported only when an option that
    needs a pattern is given (with json gone from the daemon, nothing else
    on the way to ready imports it)."""
    import re

    return re.match(pattern, text)


# What an option takes: nothing (store_true), one argument (the last given
# counts), or one argument each time it is given (collected in a list)
FLAG, VALUE, APPEND = "flag", "value", "append"
# The options, in the order argparse gets them (its errors list ambiguous
# matches in this order); the destination is the long option's name
OPTIONS = (
    (("-c", "--configure"), FLAG),
    (("-e", "--exit-fd"), VALUE),
    (("-r", "--ready-fd"), VALUE),
    (("-m", "--mtu"), VALUE),
    (("-6", "--enable-ipv6"), FLAG),
    (("-a", "--api-socket"), VALUE),
    (("--cidr",), VALUE),
    (("--disable-host-loopback",), FLAG),
    (("--netns-type",), VALUE),
    (("--userns-path",), VALUE),
    (("--enable-sandbox",), FLAG),
    (("--enable-seccomp",), FLAG),
    (("--outbound-addr",), VALUE),
    (("--outbound-addr6",), VALUE),
    (("--disable-dns",), FLAG),
    (("--macaddress",), VALUE),
    (("--target-type",), VALUE),
    (("-p", "--publish"), APPEND),
    (("--create-netns",), VALUE),
    (("--pcap",), VALUE),
    (("--pcap-max-size",), VALUE),
    (("--debug",), FLAG),
    (("-h", "--help"), FLAG),
    (("-v", "--version"), FLAG),
)
VALUE_DEFAULTS = {"target_type": "netns"}  # other values default to None


def _dest(strings: tuple[str, ...]) -> str:
    """An option's destination, as argparse names it: its long name."""
    return strings[-1].lstrip("-").replace("-", "_")


_BY_STRING = {string: (_dest(strings), kind) for strings, kind in OPTIONS for string in strings}


def _defaults() -> dict:
    """What the parsed namespace holds for an option not given."""
    return {_dest(strings): {FLAG: False, VALUE: VALUE_DEFAULTS.get(_dest(strings)), APPEND: []}[kind]
            for strings, kind in OPTIONS}


def _build_parser():
    """The argparse parser for OPTIONS (the positionals in "positional")."""
    import argparse

    class Parser(argparse.ArgumentParser):
        def error(self, message):
            raise UsageError(message)

    p = Parser(prog=PROG, add_help=False)
    defaults = _defaults()
    for strings, kind in OPTIONS:
        dest = _dest(strings)
        action = {FLAG: "store_true", VALUE: "store", APPEND: "append"}[kind]
        p.add_argument(*strings, dest=dest, action=action, **({} if kind == FLAG else {"default": defaults[dest]}))
    p.add_argument("positional", nargs="*")
    return p


def _parse_common(argv: list[str]) -> types.SimpleNamespace | None:
    """argv (without "--" and what follows) parsed as _build_parser()'s
    parser parses it, if it is a common command line: each option an exact
    option string; a flag alone; a value in the next word (not starting
    with "-") or after "=" (a long option's, not empty); the positionals in
    one run, before the options or after them.  None for anything else."""
    parsed = _defaults()
    positional: list[str] = []
    closed = False  # an option came after the positionals: no more of them
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if not arg.startswith("-"):
            if closed:
                return None
            positional.append(arg)
            continue
        closed = bool(positional)
        string, eq, value = arg.partition("=") if arg.startswith("--") else (arg, "", "")
        if string not in _BY_STRING:
            return None
        dest, kind = _BY_STRING[string]
        if kind == FLAG:
            if eq:
                return None
            parsed[dest] = True
            continue
        if not eq:
            if i == len(argv) or argv[i].startswith("-"):
                return None
            value = argv[i]
            i += 1
        elif not value:
            return None
        parsed[dest] = parsed[dest] + [value] if kind == APPEND else value
    return types.SimpleNamespace(**parsed, positional=positional)


def _fd(value: str | None, name: str) -> int | None:
    if value is None:
        return None
    if not value.isdigit():
        raise UsageError(f"{name} must be a non-negative integer")
    return int(value)


def _mtu(value: str | None) -> int:
    if value is None:
        return DEFAULT_MTU
    if not value.isdigit() or not MIN_MTU <= int(value) <= MAX_MTU:
        raise UsageError(f"MTU must be an integer between {MIN_MTU} and {MAX_MTU}")
    return int(value)


def _cidr(value: str | None) -> ipaddress.IPv4Network:
    """--cidr, checked as slirp4netns 1.2 checks it: a network address with a
    prefix length of 1 to 25, since the guest's address (network+100) must
    fit; so /26 to /32 are refused, as slirp4netns refuses them."""
    if value is None:
        return ipaddress.IPv4Network(DEFAULT_CIDR)
    try:
        iface = ipaddress.IPv4Interface(value)
    except ValueError:
        iface = None
    if iface is None or "/" not in value:
        raise UsageError(f"invalid CIDR: {value} (expected a network address like {DEFAULT_CIDR})")
    if not 1 <= iface.network.prefixlen <= MAX_PREFIXLEN:
        raise UsageError(f"CIDR prefix length needs to be 1-{MAX_PREFIXLEN} (the guest's address, network+100, "
                         f"must fit): {value}")
    if iface.ip != iface.network.network_address:
        raise UsageError(f"CIDR needs to be a network address like {iface.network}, not like {value}")
    return iface.network


def _publish(specs: list[str]) -> tuple[tuple, object]:
    """--publish, each [HOSTADDR:]HOSTPORT[-LAST]:GUESTPORT[-LAST][/udp] (an
    IPv6 HOSTADDR in brackets) or auto[,~EXCLUDED...] (portspec.py) ->
    ((proto, PortMap) for each, the auto portspec.Spec or None)."""
    if not specs:
        return (), None
    from slirpd.portspec import publish_spec

    maps, auto = [], None
    for spec in specs:
        try:
            proto, parsed = publish_spec(spec)
        except ValueError as e:
            raise UsageError(f"--publish: {e}") from None
        if proto != "auto":
            maps.append((proto, parsed.maps[0]))
        elif auto is not None:
            raise UsageError("--publish auto given twice")
        else:
            auto = parsed
    return tuple(maps), auto


def _standalone(ns, command: list[str] | None):
    """`-- COMMAND` and --create-netns make the namespace themselves: check
    what they conflict with and fill in the target.  ns: the parsed options
    (changed and returned)."""
    mode = "-- COMMAND" if command is not None else "--create-netns"
    if command is not None and ns.create_netns:
        raise UsageError("--create-netns conflicts with -- COMMAND")
    for given, option in ((ns.netns_type, "--netns-type"), (ns.userns_path, "--userns-path"),
                          (ns.target_type != "netns", "--target-type")):
        if given:
            raise UsageError(f"{option} conflicts with {mode}")
    if command is not None:
        if ns.positional:
            raise UsageError("no PID|PATH with -- COMMAND: slirpd creates the namespaces")
        ns.positional = ["0"]  # replaced by the command's pid once it exists
        ns.configure = True
    else:
        if len(ns.positional) > 1:
            raise UsageError("expected --create-netns=PATH [TAPNAME]")
        ns.positional = [ns.create_netns, *ns.positional]
    return ns


SIZE_RE = r"(?i)^(\d+)([KMG]?)i?B?$"


def _pcap_max_size(value: str | None, pcap: str | None) -> int:
    """--pcap-max-size: bytes, with an optional K, M or G (powers of 1024)."""
    if value is None:
        return DEFAULT_PCAP_MAX_SIZE
    if pcap is None:
        raise UsageError("--pcap-max-size needs --pcap")
    m = _match(SIZE_RE, value)
    if not m:
        raise UsageError(f"--pcap-max-size: expected bytes with an optional K, M or G suffix, got {value!r}")
    size = int(m[1]) << {"": 0, "K": 10, "M": 20, "G": 30}[m[2].upper()]
    if size < MIN_PCAP_MAX_SIZE:
        raise UsageError(f"--pcap-max-size must be at least {MIN_PCAP_MAX_SIZE} bytes")
    return size


def _outbound(option: str, value: str | None, version: int) -> str | None:
    """--outbound-addr (version 4) or --outbound-addr6 (6): an address of that
    version or the name of an interface that has one."""
    if value is None:
        return None
    from slirpd.config import address_or_interface

    try:
        address_or_interface(value, version)
    except ValueError as e:
        raise UsageError(f"{option}: {value!r} is neither an IPv{version} address nor an interface: {e}") from None
    return value


def version_text() -> str:
    """What --version prints: our version, then one line per component."""
    import cffi

    import pyroute2

    from slirpd import seccomp

    return (
        f"{PROG} version {__version__}\n"
        f"python: {sys.version.split()[0]}\n"
        f"cffi: {cffi.__version__}\n"
        f"pyroute2: {pyroute2.__version__}\n"
        f"libseccomp: {seccomp.library_version()}\n"
    )


def subcommand(argv: list[str], prog: str = PROG):
    """The subcommand a command line asks for: pasta's command line when
    slirpd runs under that name (prog, the program's argv[0]: a link named
    pasta), or a first argument naming one (`slirpd pasta|ctl|install-unit|
    enter ARGS...`).  Its module is imported now, not before (issue 19).
    Return: a function of no arguments that runs it and returns its exit
    status; None when argv is slirpd's own options (parse_args())."""
    if os.path.basename(prog) == "pasta":
        name, args = "pasta", argv
    else:
        name, args, prog = (argv[0] if argv else ""), argv[1:], "pasta"  # pasta's messages name it pasta
    if name == "pasta":
        from slirpd.pasta.main import main as pasta_main

        return lambda: pasta_main(args, prog)
    if name == "ctl":
        from slirpd import ctl

        return lambda: ctl.main(args)
    if name in ("install-unit", "enter"):
        from slirpd import unit

        run = unit.install_unit if name == "install-unit" else unit.enter
        return lambda: run(args)
    return None


def parse_args(argv: list[str]) -> Config | str:
    """Parse argv (without the program name).

    Return: a Config to run, or a text to print before exiting 0 (--help,
    --version).  Raises UsageError for a bad command line.
    """
    command = None
    if "--" in argv:
        split = argv.index("--")
        argv, command = argv[:split], argv[split + 1:] or [os.environ.get("SHELL") or "/bin/sh"]
    ns = _parse_common(argv) or _build_parser().parse_args(argv)
    if ns.help:
        return HELP
    if ns.version:
        return version_text()
    if ns.netns_type not in (None, "pid", "path"):
        raise UsageError('--netns-type must be either "path" or "pid"')
    if ns.target_type not in ("netns", "bess"):
        raise UsageError('--target-type must be either "netns" or "bess"')
    if ns.target_type == "bess":
        for given, option in ((ns.configure, "--configure"), (ns.netns_type, "--netns-type"),
                              (ns.userns_path, "--userns-path")):
            if given:
                raise UsageError(f"{option} conflicts with --target-type=bess")
    netns_type = ns.netns_type or ("path" if ns.create_netns else "pid")
    if ns.macaddress is not None:
        if not ns.configure:
            raise UsageError("--macaddress cannot be specified when --configure or -c is not specified")
        if not _match(MAC_RE, ns.macaddress) or int(ns.macaddress[:2], 16) & 1:
            raise UsageError(f"invalid --macaddress: {ns.macaddress!r} (expected a unicast xx:xx:xx:xx:xx:xx)")
    if ns.enable_ipv6 and _mtu(ns.mtu) < MIN_MTU_IPV6:
        raise UsageError(f"--enable-ipv6 needs an MTU of at least {MIN_MTU_IPV6}")
    publish, auto_publish = _publish(ns.publish)
    if command is not None or ns.create_netns:
        ns = _standalone(ns, command)
    if not 1 <= len(ns.positional) <= 2:
        raise UsageError("expected PID|PATH [TAPNAME]")
    target = ns.positional[0]
    if ns.target_type == "netns" and netns_type == "pid" and command is None and (
            not target.isdigit() or int(target) == 0):
        raise UsageError(f"PID must be a positive integer: {target!r}")
    tapname = ns.positional[1] if len(ns.positional) == 2 else "tap0"
    if not 1 <= len(tapname.encode()) <= 15 or "/" in tapname or tapname.strip() != tapname:
        raise UsageError(f"invalid TAPNAME: {tapname!r}")
    return Config(
        target=target,
        tapname=tapname,
        configure=ns.configure,
        exit_fd=_fd(ns.exit_fd, "exit-fd"),
        ready_fd=_fd(ns.ready_fd, "ready-fd"),
        mtu=_mtu(ns.mtu),
        cidr=_cidr(ns.cidr),
        disable_host_loopback=ns.disable_host_loopback,
        netns_type=netns_type,
        userns_path=ns.userns_path,
        disable_dns=ns.disable_dns,
        enable_sandbox=ns.enable_sandbox,
        enable_seccomp=ns.enable_seccomp,
        api_socket=ns.api_socket,
        outbound_addr=_outbound("--outbound-addr", ns.outbound_addr, 4),
        outbound_addr6=_outbound("--outbound-addr6", ns.outbound_addr6, 6),
        enable_ipv6=ns.enable_ipv6,
        command=tuple(command) if command is not None else None,
        create_netns=ns.create_netns,
        publish=publish,
        auto_publish=auto_publish,
        macaddress=ns.macaddress.lower() if ns.macaddress else None,
        target_type=ns.target_type,
        pcap=ns.pcap or None,
        pcap_max_size=_pcap_max_size(ns.pcap_max_size, ns.pcap),
        debug=ns.debug,
    )
