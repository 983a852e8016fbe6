"""Port ranges and forwarding specs: the one parser of ports and port ranges.

Three front ends share it:

- pasta's -t/-u/-T/-U (pasta/cli.py): `none`, `auto`, or
  `[ADDR[%IF]/]CHUNK[,CHUNK]...` where a chunk is `FIRST[-LAST][:TOFIRST[-TOLAST]]`
  or an exclusion `~FIRST[-LAST]`; exclusions alone mean every
  non-ephemeral port but those (pasta_spec());
- --publish `[HOSTADDR:]HOSTPORT[-LAST]:GUESTPORT[-LAST][/udp]` and `auto`
  (cli.py, publish_spec());
- the API's add_hostfwd, whose host_port and guest_port may be ranges,
  "8000-8010", as a slirpd extension (api.py, parse_mapping()).

A range maps onto one of the same length; a single port stands for a range
of one.  Ports are 1 to 65535 (pasta parses 0 as well and then fails to
bind it; here it is refused at once).  Errors are ValueError with pasta's
wording where pasta has one ("Invalid port specifier SPEC").
"""

from __future__ import annotations

import collections
import ipaddress

PORT_MIN, PORT_MAX = 1, 65535
EPHEMERAL_SYSCTL = "/proc/sys/net/ipv4/ip_local_port_range"
EPHEMERAL_DEFAULT = (49152, 65535)  # RFC 6335, when the sysctl cannot be read
IFNAMSIZ = 16


class PortRange:
    """Ports first to last, both included; iterating gives the ports.  (A
    plain class: no dataclasses, which cost start-up time, issue 19; not a
    named tuple, whose iteration would be its fields.)"""

    __slots__ = ("first", "last")

    def __init__(self, first: int, last: int):
        self.first, self.last = first, last

    def __eq__(self, other) -> bool:
        return isinstance(other, PortRange) and (self.first, self.last) == (other.first, other.last)

    def __hash__(self) -> int:
        return hash((self.first, self.last))

    def __repr__(self) -> str:
        return f"PortRange({self.first}, {self.last})"

    def __iter__(self):
        return iter(range(self.first, self.last + 1))

    def __len__(self) -> int:
        return self.last - self.first + 1

    def __str__(self) -> str:
        return str(self.first) if self.first == self.last else f"{self.first}-{self.last}"


def _number(text: str) -> int:
    """A port number's ASCII digits; ValueError for anything else."""
    if not (text.isascii() and text.isdigit()):
        raise ValueError(text)
    return int(text)


def parse_range(text: str) -> PortRange:
    """FIRST[-LAST] -> PortRange; ValueError unless 1 <= FIRST <= LAST <= 65535."""
    head, dash, tail = text.partition("-")
    try:
        first = _number(head)
        last = _number(tail) if dash else first
    except ValueError:
        raise ValueError(f"not a port or range of ports: {text!r}") from None
    if not PORT_MIN <= first <= last <= PORT_MAX:
        raise ValueError(f"ports must be {PORT_MIN}-{PORT_MAX}, the first not above the last: {text!r}")
    return PortRange(first, last)


class PortMap(collections.namedtuple("PortMap", ("ports", "to_first", "addr", "ifname", "spec"),
                                     defaults=(None, None, None))):
    """Host ports `ports` (a PortRange) forwarded to `to_first` onwards, on
    host address addr (None: any) and, if ifname, only through that
    interface; spec: the spec it came from, as given (for messages)."""

    __slots__ = ()

    def pairs(self):
        """(host port, guest port) for each port."""
        return [(p, self.to_first + p - self.ports.first) for p in self.ports]

    def without(self, exclude) -> list["PortMap"]:
        """This map less the host ports in exclude: the runs left."""
        runs, start = [], None
        for port in [*self.ports, None]:
            if port is not None and port not in exclude:
                start = port if start is None else start
                continue
            if start is not None:
                last = port - 1 if port is not None else self.ports.last
                runs.append(self._replace(ports=PortRange(start, last),
                                          to_first=self.to_first + start - self.ports.first))
                start = None
        return runs

    @property
    def to(self) -> PortRange:
        """The ports forwarded to."""
        return PortRange(self.to_first, self.to_first + len(self.ports) - 1)


def parse_mapping(host: str, guest: str | None = None) -> tuple[PortRange, int]:
    """HOSTPORTS and GUESTPORTS (ranges of the same length; guest None: the
    same ports) -> (host range, first guest port).  ValueError."""
    ports = parse_range(host)
    if guest is None:
        return ports, ports.first
    to = parse_range(guest)
    if len(to) != len(ports):
        raise ValueError(f"port ranges of different lengths: {host} and {guest}")
    return ports, to.first


class Spec(collections.namedtuple("Spec", ("mode", "maps", "exclude"), defaults=((), frozenset()))):
    """A parsed forwarding spec: mode "none", "auto" (every port bound in
    the guest but those in exclude, a frozenset) or "ports" (maps, a tuple
    of PortMap)."""

    __slots__ = ()


def ephemeral_ports() -> PortRange:
    """The ports the kernel hands out for outgoing connections (the
    sysctl), which "every port" leaves alone."""
    try:
        with open(EPHEMERAL_SYSCTL) as f:
            low, high = (int(w) for w in f.read().split())
        return PortRange(low, high)
    except (OSError, ValueError):
        return PortRange(*EPHEMERAL_DEFAULT)


def _split_address(spec: str) -> tuple[str, ipaddress.IPv4Address | ipaddress.IPv6Address | None, str | None]:
    """pasta's `[ADDR[%IF]/]PORTS` -> (PORTS, ADDR or None, IF or None).  An
    IPv6 ADDR comes unbracketed (brackets are allowed, for IPv4 too)."""
    if "/" not in spec:
        return spec, None, None
    head, ports = spec.split("/", 1)
    addr_text, _, ifname = head.partition("%")
    if "%" in head and not 1 <= len(ifname) < IFNAMSIZ:
        raise ValueError("interface name")
    if addr_text.startswith("[") and addr_text.endswith("]"):
        addr_text = addr_text[1:-1]
    addr = ipaddress.ip_address(addr_text) if addr_text else None
    if addr is None and not ifname:
        raise ValueError("no address")
    return ports, addr, ifname or None


def pasta_spec(spec: str, with_address: bool = True) -> Spec:
    """pasta's -t/-u (with_address) or -T/-U (no address part) spec.
    Raises ValueError with pasta's message; "all" is refused as pasta
    refuses it (passt only)."""
    if spec in ("none", "auto"):
        return Spec(spec)
    if spec == "all":
        raise ValueError("'all' port forwarding is only allowed for passt")
    try:
        chunks, addr, ifname = _split_address(spec)
        if (addr is not None or ifname is not None) and not with_address:
            raise ValueError("address")
        exclude, maps = set(), []
        for chunk in chunks.split(","):
            if chunk.startswith("~"):
                excluded = parse_range(chunk[1:])
                if exclude & set(excluded):
                    raise ValueError(f"Overlapping excluded ranges {spec}")
                exclude.update(excluded)
            else:
                host, _, guest = chunk.partition(":")
                ports, to_first = parse_mapping(host, guest if ":" in chunk else None)
                maps.append(PortMap(ports, to_first, addr, ifname, spec))
    except ValueError as e:
        if str(e).startswith("Overlapping"):
            raise
        raise ValueError(f"Invalid port specifier {spec}") from None
    if not maps:  # exclusions only: every other non-ephemeral port
        ephemeral = ephemeral_ports()
        maps = [PortMap(r, r.first, addr, ifname, spec) for r in _complement(ephemeral)]
    return Spec("ports", tuple(run for m in maps for run in m.without(exclude)))


def _complement(ephemeral: PortRange) -> list[PortRange]:
    """The ports 1..65535 outside the ephemeral range."""
    ranges = []
    if ephemeral.first > PORT_MIN:
        ranges.append(PortRange(PORT_MIN, ephemeral.first - 1))
    if ephemeral.last < PORT_MAX:
        ranges.append(PortRange(ephemeral.last + 1, PORT_MAX))
    return ranges


PUBLISH_RE = r"^(?:(?:\[(?P<v6>[^\]]+)\]|(?P<v4>[^:\[\]]+)):)?(?P<host>[\d-]+):(?P<guest>[\d-]+)" \
             r"(?:/(?P<proto>tcp|udp))?$"
AUTO_RE = r"^auto(?P<exclude>(?:,~[\d-]+)*)$"


def publish_spec(spec: str) -> tuple[str, Spec]:
    """--publish: `[HOSTADDR:]HOSTPORT[-LAST]:GUESTPORT[-LAST][/udp]` (an
    IPv6 HOSTADDR in brackets) -> (proto, Spec of one map), or `auto` with
    exclusions `auto,~PORT[-LAST]...` -> ("auto", Spec("auto")).  ValueError.
    (re is imported here: only --publish needs it.)"""
    import re

    m = re.match(AUTO_RE, spec)
    if m:
        exclude = set()
        for chunk in filter(None, m["exclude"].split(",")):
            exclude.update(parse_range(chunk[1:]))
        return "auto", Spec("auto", exclude=frozenset(exclude))
    m = re.match(PUBLISH_RE, spec)
    if not m:
        raise ValueError(f"expected [HOSTADDR:]HOSTPORT[-LAST]:GUESTPORT[-LAST][/udp] or auto, got {spec!r}")
    addr = ipaddress.ip_address(m["v6"] or m["v4"] or "0.0.0.0")
    ports, to_first = parse_mapping(m["host"], m["guest"])
    return m["proto"] or "tcp", Spec("ports", (PortMap(ports, to_first, addr),))
