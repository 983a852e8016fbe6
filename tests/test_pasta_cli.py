"""pasta's command line and --config-net, side by side: slirpd as pasta and
Debian 13's pasta (passt 2025-05-03) in the root of tests/lib/clients.py, as
the plain user podu, with the same argv.

- Refusals: the same exit status and the same message, for getopt's errors
  (unknown, ambiguous, missing or unwanted arguments) and for the values
  pasta checks (addresses, port specs, modes, targets).  Both tools'
  messages are read from a run, never written down here.
- --config-net: `pasta --config-net OPTS -- CMD`, CMD printing `ip -json`
  addresses and routes of the namespace, gives the same addresses, routes,
  interface names and MTU with either (less what the kernel makes up: MAC
  and link-local addresses, and their routes' order).
"""

from __future__ import annotations

import ipaddress
import json
import shlex

import pytest

pytestmark = pytest.mark.timeout(300)

IMPLS = {"slirpd": "/mnt/pasta-bin/slirpd", "pasta": "/mnt/pasta-bin/debian"}  # each dir holds a `pasta`

REFUSED = [
    "--bogus", "--bogus=1", "--map-gw", "-Z", "-m", "--quiet=1", "--map-guest-addr", "--no --netns /x",
    "-t all --netns /x", "-t 99999 --netns /x", "-t 80-70 --netns /x", "-t foo --netns /x", "-t 1-2:3 --netns /x",
    "-t 5,~5 --netns /x", "-t none -t 18080 --netns /x", "-t 18080 -t none --netns /x", "-t auto -t none --netns /x",
    "-t auto -t 18080 --netns /x", "-t 18080 -t auto --netns /x", "-T 8080 -T none --netns /x",
    "-T 127.0.0.1/80 --netns /x", "-a 300.1.1.1 --netns /x", "-a 224.0.0.1 --netns /x", "-g 0.0.0.0 --netns /x",
    "-n 33 --netns /x", "-M 01:02 --netns /x", "--map-guest-addr 127.0.0.1 --netns /x",
    "--dns-forward 127.0.0.1 --netns /x", "--netns /x 1234", "--netns /nonexistent", "--mt 1500 --netns /x",
    "99999999", "--bogus --version", "--no-copy-routes --netns /x", "--no-copy-addrs --netns /x",
    "--no-dhcp-dns --netns /x", "--no-dhcp-search --netns /x", "-S '' --netns /x", "--no-nd --netns /x",
]
ACCEPTED = ["--version", "--version --bogus", "--host-lo-to-ns-lo --version"]


@pytest.fixture(scope="module")
def both(clients_root):
    """Two directories in the root, each with a `pasta`: slirpd's link and
    Debian's binary (so both run as `pasta`, and say so)."""
    for impl, target in (("slirpd", "/mnt/slirpd/bin/slirpd"), ("debian", "/usr/bin/pasta")):
        link = clients_root.mnt / "pasta-bin" / impl / "pasta"
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.is_symlink():
            link.symlink_to(target)
    return clients_root


def run_both(root, argv: str, timeout: float = 60):
    """argv through each pasta: {impl: (status, first line of stderr, stdout)}.

    getopt's messages start with argv[0].  Both are run as `pasta` from
    $PATH, but a Python program sees the path of its script instead (the
    kernel gives the interpreter that), so slirpd says
    "/mnt/pasta-bin/slirpd/pasta:" where pasta says "pasta:".  podman runs
    pasta by its full path, where both say the same; the path is taken off
    here."""
    out = {}
    for impl, directory in IMPLS.items():
        res = root.run(f"PATH={directory}:$PATH pasta {argv} </dev/null", timeout=timeout)
        first = (res.stderr.splitlines() or [""])[0].replace(f"{directory}/pasta:", "pasta:", 1)
        out[impl] = (res.returncode, first, res.stdout)
    return out


@pytest.mark.parametrize("argv", REFUSED)
def test_refused_alike(both, argv):
    """The same status and message (an ambiguous abbreviation lists the
    options each knows: compared up to the list)."""
    got = run_both(both, argv)
    (rc, msg, _), (real_rc, real_msg, _) = got["slirpd"], got["pasta"]
    assert real_rc != 0 and rc == real_rc, got
    if "is ambiguous" in real_msg:
        real_msg, msg = real_msg.split(";")[0], msg.split(";")[0]
    assert msg == real_msg, got


@pytest.mark.parametrize("argv", ACCEPTED)
def test_accepted_alike(both, argv):
    """What rootlesskit probes (by exit status): --version, and
    --host-lo-to-ns-lo --version (rootlesskit 3 then passes the option)."""
    got = run_both(both, argv)
    assert got["slirpd"][0] == got["pasta"][0] == 0, got


SHOW = ("ping -c 1 -W 1 192.0.2.77 >/dev/null 2>&1; ip -j addr show; echo; ip -j -4 route show; echo;"
        " ip -j -6 route show; echo; ip -j -4 neigh show")


def namespace(stdout: str) -> dict:
    """`SHOW`'s output, less what the kernel makes up (the guest's MAC
    address, link-local addresses and their route, lifetimes); the
    neighbours: the gateway, resolved by a ping through it, and its MAC
    address (pasta's)."""
    addrs, routes4, routes6, neigh = (json.loads(part) for part in stdout.strip().split("\n\n"))
    links = {a["ifname"]: {"mtu": a["mtu"], "up": "UP" in a["flags"],
                           "addrs": sorted(f"{i['local']}/{i['prefixlen']}" for i in a["addr_info"]
                                           if i.get("scope") != "link")} for a in addrs}
    keep = ("dst", "gateway", "dev", "protocol", "scope", "metric", "prefsrc")
    route = lambda r: json.dumps({k: r[k] for k in keep if k in r}, sort_keys=True)  # noqa: E731
    return {"links": links, "routes4": sorted(map(route, routes4)),
            "routes6": sorted(route(r) for r in routes6 if not r["dst"].startswith("fe80:")),
            "neighbours": sorted((n["dst"], n.get("lladdr")) for n in neigh)}


@pytest.mark.parametrize("options", ["", "-a 192.0.2.1", "-a 192.0.2.2 -g 192.0.2.1", "-a 192.0.2.2 -n 16",
                                     "-a 2001:db8::2 -g 2001:db8::1", "-4", "-6", "-m 1280 -I eth9",
                                     "--no-copy-routes", "--no-copy-addrs", "-6 --no-copy-routes --no-copy-addrs"])
def test_config_net_alike(both, options):
    """--config-net makes the same namespace (505-networking-pasta.bats:
    addresses, routes, -a, -g, -m, -4, -6, the MTU, loopback up)."""
    got = run_both(both, f"--config-net -q {options} -t none -u none -- sh -c {shlex.quote(SHOW)}")
    assert got["slirpd"][0] == got["pasta"][0] == 0, got
    mine, real = namespace(got["slirpd"][2]), namespace(got["pasta"][2])
    assert mine == real
    assert real["links"]["lo"]["up"]


# udhcpc's script: the link up on deconfig, and on bound one line of what the
# lease says (udhcpc's names for the options)
UDHCPC_SCRIPT = """#!/bin/sh
case "$1" in
  deconfig) ip link set "$interface" up ;;
  bound) echo "ip=$ip mask=$mask router=$router serverid=$serverid dns=$dns mtu=$mtu lease=$lease\
 search=$search staticroutes=$staticroutes hostname=$hostname" ;;
esac
"""


@pytest.mark.parametrize("options", [
    "--config-net", "", "--dhcp-dns", "--config-net --dhcp-dns -D 192.0.2.53 -D 192.0.2.54",
    "--dhcp-search -S example.org -S corp.example.org -S lab.internal", "--dhcp-search -S none", "-a 192.0.2.2 -g 192.0.2.1 -n 16",
    "-a 192.0.2.2", "-g 203.0.113.1", "-m 1280", "--no-dhcp", "-4 --no-ndp", "-H guest1.example"])
def test_dhcp_alike(both, options):
    """A real DHCP client (busybox udhcpc) in the namespace gets the same
    lease from either, with or without --config-net: the guest's address and
    prefix, the gateway as router and server, the MTU, an infinite lease,
    DNS only with --dhcp-dns (the host's loopback resolver as the mapped
    gateway, or -D's), a search list only with --dhcp-search, a static route
    to a gateway off the subnet; nothing with --no-dhcp (udhcpc gives up).
    (pasta compresses a search name by its first label's suffix alone, so
    "-S example.org -S corp.example" reaches the guest as corp.example.org
    from it: a bug not copied, and not asked here.)"""
    script = both.mnt / "udhcpc.sh"
    script.write_text(UDHCPC_SCRIPT)
    script.chmod(0o755)
    dhcp = "busybox udhcpc -f -q -n -t 3 -T 1 -i eth9 -s /mnt/udhcpc.sh 2>/dev/null; echo udhcpc=$?"
    got = run_both(both, f"-q {options} -I eth9 -t none -u none -T none -U none -- sh -c {shlex.quote(dhcp)}")
    assert got["slirpd"][0] == got["pasta"][0] == 0, got
    assert got["slirpd"][2] == got["pasta"][2], got
    assert ("udhcpc=1" if "--no-dhcp" in options else "udhcpc=0") in got["pasta"][2]
    assert DHCP_SEEN.get(options, "lease=4294967295") in got["pasta"][2]  # what the case is about


# What a case of test_dhcp_alike must show (the others: an infinite lease)
DHCP_SEEN = {"--dhcp-dns": "dns=198.51.100.254 ", "--config-net --dhcp-dns -D 192.0.2.53 -D 192.0.2.54":
             "dns=192.0.2.53 192.0.2.54 ", "--dhcp-search -S example.org -S corp.example.org -S lab.internal":
             "search=example.org corp.example.org lab.internal ", "-a 192.0.2.2 -g 192.0.2.1 -n 16":
             "ip=192.0.2.2 mask=16 router=192.0.2.1 ", "-g 203.0.113.1": "staticroutes=203.0.113.1/32 0.0.0.0 0.0.0.0/0",
             "-m 1280": "mtu=1280 ", "--no-dhcp": "udhcpc=1", "-H guest1.example": "hostname=guest1.example"}


# The link up, then (at most 10 s) until a router advertisement made a default
# route: the IPv6 default routes and the global addresses' prefixes
RA_SHOW = ("ip link set eth9 up; i=0; while [ $i -lt 100 ] && ! ip -6 route show default | grep -q .; do"
           " sleep 0.1; i=$((i+1)); done; ip -j -6 route show default; echo; ip -j -6 addr show dev eth9 scope global")


def slaac(stdout: str) -> dict:
    """RA_SHOW's output, less what differs by design (README, "Not like
    pasta": the router's link-local address, the lifetimes) or by the
    kernel (the address's interface identifier)."""
    routes, links = (json.loads(part) for part in stdout.strip().split("\n\n"))
    return {"routes": sorted((r["dst"], r["dev"], r.get("protocol"), r.get("gateway", "").startswith("fe80:"))
                              for r in routes),
            "prefixes": sorted((str(ipaddress.ip_interface(f"{a['local']}/{a['prefixlen']}").network), a.get("protocol"))
                               for link in links for a in link["addr_info"] if "local" in a)}


@pytest.mark.parametrize("options", ["", "--no-ra", "--config-net"])
def test_router_advertisement_alike(both, options):
    """Without --config-net the guest's kernel configures IPv6 from the
    router advertisement: a default route through a link-local router and
    a SLAAC address in the host's prefix, with either; none with --no-ra or
    --config-net (which sets pasta's no_ra, and copies the host's routes).
    (The link-local address of the router and the lifetimes differ: README,
    "Not like pasta".)"""
    got = run_both(both, f"-q -6 {options} -I eth9 -t none -u none -T none -U none -- sh -c {shlex.quote(RA_SHOW)}")
    assert got["slirpd"][0] == got["pasta"][0] == 0, got
    mine, real = slaac(got["slirpd"][2]), slaac(got["pasta"][2])
    assert mine == real, got
    expected = {"": [("default", "eth9", "ra", True)], "--no-ra": [], "--config-net": [("default", "eth9", None, False)]}
    assert real["routes"] == expected[options]  # --config-net's: the host's, copied
    if not options:
        assert real["prefixes"] == [("2001:db8::/64", "kernel_ra")]



# udhcpc6's script: one line of what each event says (udhcpc6's names for
# the options)
UDHCPC6_SCRIPT = """#!/bin/sh
echo "$1: ipv6=$ipv6 lease=$lease dns=$dns search=$search"
"""


@pytest.mark.parametrize(("options", "client"), [
    ("", ""), ("--config-net", ""), ("--dhcp-dns", ""), ("--dhcp-dns -D 2001:db8::53 -D 2001:db8::54", ""),
    ("--dhcp-search -S example.org -S corp.example.org -S lab.internal", ""), ("-a 2001:db8::2 -g 2001:db8::1", ""),
    ("--dhcp-dns -D 2001:db8::53", "-l"), ("", "-r 2001:db8::99"), ("--no-dhcpv6", "")])
def test_dhcpv6_alike(both, options, client):
    """A real DHCPv6 client (busybox udhcpc6, with client's flags) in the
    namespace gets the same answer from either, with or without
    --config-net: the guest's address for an infinite lease, DNS only with
    --dhcp-dns and a search list only with --dhcp-search; the DNS servers
    for an information request (-l); no lease when it asks for another
    address (-r) or with --no-dhcpv6 (udhcpc6 gives up).  Duplicate address
    detection is off, so the link-local address is there before udhcpc6
    sends."""
    script = both.mnt / "udhcpc6.sh"
    script.write_text(UDHCPC6_SCRIPT)
    script.chmod(0o755)
    dhcp = ("echo 0 >/proc/sys/net/ipv6/conf/eth9/accept_dad; ip link set eth9 up;"
            f" busybox udhcpc6 -f -q -n -t 3 -T 1 {client} -i eth9 -s /mnt/udhcpc6.sh 2>/dev/null; echo udhcpc6=$?")
    got = run_both(both, f"-q -6 {options} -I eth9 -t none -u none -T none -U none -- sh -c {shlex.quote(dhcp)}")
    assert got["slirpd"][0] == got["pasta"][0] == 0, got
    assert got["slirpd"][2] == got["pasta"][2], got
    assert DHCPV6_SEEN.get(options + client, "bound: ipv6=2001:0db8:0000:0000:0000:0000:0000:0001 lease=4294967295")\
        in got["pasta"][2]  # what the case is about


# What a case of test_dhcpv6_alike must show (the others: an infinite lease)
DHCPV6_SEEN = {"--dhcp-dns -D 2001:db8::53 -D 2001:db8::54": "dns=2001:0db8:0000:0000:0000:0000:0000:0053 2001:0db8:0000:0000:0000:0000:0000:0054 ",
               "--dhcp-search -S example.org -S corp.example.org -S lab.internal":
               "search=example.org corp.example.org lab.internal", "-a 2001:db8::2 -g 2001:db8::1":
               "ipv6=2001:0db8:0000:0000:0000:0000:0000:0002 ", "--no-dhcpv6": "udhcpc6=1",
               "--dhcp-dns -D 2001:db8::53-l": "dns=2001:0db8:0000:0000:0000:0000:0000:0053 ",
               "-r 2001:db8::99": "udhcpc6=1"}


# A router solicitation from the namespace, and the flags byte (Managed 0x80,
# Other 0x40) of the first router advertisement that comes back
RA_FLAGS = """import socket, sys
s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, b"eth9")
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
s.settimeout(10)
s.sendto(bytes([133, 0, 0, 0, 0, 0, 0, 0]), ("ff02::2", 0, 0, socket.if_nametoindex("eth9")))
while True:
    msg = s.recv(1500)
    if msg[0] == 134:
        print(f"flags={msg[5]:#04x}")
        break
"""


@pytest.mark.parametrize("options", ["", "--no-dhcpv6"])
def test_router_advertisement_flags_alike(both, options):
    """The router advertisement says Managed (addresses by DHCPv6) and not
    Other-configuration, with either, --no-dhcpv6 or not (pasta's ndp.c
    always sets it)."""
    (both.mnt / "ra_flags.py").write_text(RA_FLAGS)
    cmd = "echo 0 >/proc/sys/net/ipv6/conf/eth9/accept_dad; ip link set eth9 up; python3 /mnt/ra_flags.py"
    got = run_both(both, f"-q -6 {options} -I eth9 -t none -u none -T none -U none -- sh -c {shlex.quote(cmd)}")
    assert got["slirpd"][0] == got["pasta"][0] == 0, got
    assert got["slirpd"][2] == got["pasta"][2] == "flags=0x80\n", got
