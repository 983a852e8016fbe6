"""--configure's direct netlink path (slirpd/rtnl.py, issue 19): what it
configured, as `ip -j link/addr/route` reports it inside the guest, in every
configuration the suite has (--cidr, --mtu, --macaddress, -6, all of them,
and `-- COMMAND`); and its errors, in words, from the kernel's refusals.

(The pasta model of issue 20 does not exist yet: when it does, its
configuration belongs in CONFIGS.)

Router advertisements (csrc/ndp.c) may add a SLAAC address and routes of
protocol "ra" beside what --configure did, depending on when the guest
solicits one: those are left out of the comparison.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import select
import subprocess

import pytest

from lib.harness import as_user, slirpd_argv

NET6 = ipaddress.IPv6Network("fd00::/64")
# The suite's configurations: the options, and what --configure must have set
CONFIGS = {
    "defaults": [],
    "cidr": ["--cidr=10.8.0.0/16"],
    "mtu": ["--mtu=65520"],
    "mac": ["--macaddress=02:11:22:33:44:55"],
    "ipv6": ["-6"],
    "all": ["-6", "--mtu=9000", "--cidr=192.168.0.0/20", "--macaddress=02:aa:bb:cc:dd:ee"],
}
IP_COMMANDS = (("-d", "link", "show"), ("addr", "show"), ("-4", "route", "show", "table", "main"),
               ("-6", "route", "show", "table", "main"))


def expected(args: list[str]) -> dict:
    """What --configure with args must leave in the guest."""
    opts = dict(a.lstrip("-").split("=", 1) for a in args if "=" in a)
    net = ipaddress.IPv4Network(opts.get("cidr", "10.0.2.0/24"))
    return {"mtu": int(opts.get("mtu", 1500)), "mac": opts.get("macaddress"), "net": net, "ipv6": "-6" in args}


def check(state: tuple, want: dict, tap: str = "tap0", persistent: bool = False) -> None:
    """state: the parsed output of IP_COMMANDS in the guest."""
    links, addrs, routes4, routes6 = state
    links = {link["ifname"]: link for link in links}
    assert {"UP", "LOWER_UP"} <= set(links["lo"]["flags"])
    link = links[tap]
    assert {"UP", "LOWER_UP"} <= set(link["flags"]), link
    assert link["mtu"] == want["mtu"]
    if want["mac"]:
        assert link["address"] == want["mac"]
    assert link["linkinfo"]["info_data"]["type"] == "tap"
    assert link["linkinfo"]["info_data"]["persist"] is persistent

    info = {a["ifname"]: a["addr_info"] for a in addrs}
    assert [(a["local"], a["prefixlen"]) for a in info["lo"] if a["family"] == "inet"] == [("127.0.0.1", 8)]
    net = want["net"]
    inet = [a for a in info[tap] if a["family"] == "inet"]
    assert [(a["local"], a["prefixlen"], a["scope"], "broadcast" in a) for a in inet] == \
        [(str(net[100]), net.prefixlen, "global", False)]
    global6 = [a for a in info[tap] if a["family"] == "inet6" and a["scope"] == "global" and not a.get("dynamic")]
    if want["ipv6"]:
        (addr6,) = global6
        guest6 = ipaddress.IPv6Address(addr6["local"])
        assert guest6 in NET6 and guest6 not in (NET6[0], NET6[2], NET6[3]), guest6
        assert addr6["prefixlen"] == 64 and addr6.get("nodad") is True and not addr6.get("tentative")
    else:
        assert global6 == []

    def table(routes):
        return sorted((r["dst"], r.get("gateway"), r["dev"], r["protocol"]) for r in routes
                      if r["protocol"] != "ra" and not r["dst"].startswith("fe80:"))

    assert table(routes4) == sorted([("default", str(net[2]), tap, "static"), (str(net), None, tap, "kernel")])
    assert table(routes6) == (sorted([("default", "fd00::2", tap, "static"), ("fd00::/64", None, tap, "kernel")])
                              if want["ipv6"] else [])
    if want["ipv6"]:
        (default6,) = [r for r in routes6 if r["dst"] == "default" and r["protocol"] == "static"]
        assert default6["metric"] == 1024


def guest_state(guest) -> tuple:
    return tuple(guest.ip_json(*cmd) for cmd in IP_COMMANDS)


@pytest.mark.parametrize("name", CONFIGS)
def test_configured_as_asked(guest, start_slirpd, name):
    start_slirpd("--configure", *CONFIGS[name], str(guest.pid), "tap0")
    check(guest_state(guest), expected(CONFIGS[name]))


def test_configured_other_tapname(guest, start_slirpd):
    start_slirpd("-c", "--mtu=4000", str(guest.pid), "eth7")
    check(guest_state(guest), expected(["--mtu=4000"]), tap="eth7")


@pytest.mark.daemon
@pytest.mark.parametrize("name", ["defaults", "all"])
def test_command_configured_as_asked(plain_user, name):
    """-- COMMAND: the command sees the configuration at once (its TAP is
    persistent: it goes with the command's namespace, netns.py).  -c as
    well, which --macaddress asks for (as slirp4netns's option check does)."""
    script = "; echo ---; ".join("ip -j " + " ".join(cmd) for cmd in IP_COMMANDS)
    res = subprocess.run(slirpd_argv("-c", *CONFIGS[name], "--", "sh", "-c", script), capture_output=True,
                         text=True, timeout=60, **as_user(plain_user))
    assert res.returncode == 0, res.stderr
    state = tuple(json.loads(part) for part in res.stdout.split("---\n"))
    check(state, expected(CONFIGS[name]), persistent=True)


# The rtnl module on its own, in a guest (the test's interpreter, as the
# guest's root): one refusal of each kind, each in words
ERRORS_SCRIPT = """
import ipaddress, json
from slirpd.rtnl import Rtnl, RtnlError
steps = [("set_link", "nosuch0", {"up": True}), ("set_link", "t0", {"mtu": 70000}),
         ("set_link", "t0", {"mtu": 60}), ("set_link", "t0", {"mac": "01:00:00:00:00:01"}),
         ("replace_default_route", "t0", {"gateway": ipaddress.ip_address("10.9.9.9")}),
         ("set_link", "t0", {"mtu": 9000, "mac": "02:00:00:00:00:09", "up": True}),
         ("replace_address", "t0", {"interface": ipaddress.ip_interface("10.9.0.1/16")})]
out = []
with Rtnl() as nl:
    for method, name, kw in steps:
        try:
            getattr(nl, method)(name, **kw)
            out.append("ok")
        except RtnlError as e:
            out.append(str(e))
print(json.dumps(out))
"""


def test_refusals_in_words(guest):
    guest.run("ip tuntap add dev t0 mode tap")
    out = json.loads(guest.python(ERRORS_SCRIPT).stdout)
    assert out == [
        "no network interface 'nosuch0' in this network namespace",
        "cannot set the MTU of t0 to 70000: Invalid argument (mtu greater than device maximum)",
        "cannot set the MTU of t0 to 60: Invalid argument (mtu less than device minimum)",
        "cannot set the MAC address of t0 to 01:00:00:00:00:01: Cannot assign requested address",
        "cannot add the default route via 10.9.9.9 on t0: Network is unreachable (Nexthop has invalid gateway)",
        "ok",
        "ok",
    ]
    (link,) = guest.ip_json("link", "show", "t0")
    assert (link["mtu"], link["address"], "UP" in link["flags"]) == (9000, "02:00:00:00:00:09", True)
    (addrs,) = guest.ip_json("addr", "show", "t0")
    assert [(a["local"], a["prefixlen"]) for a in addrs["addr_info"] if a["family"] == "inet"] == [("10.9.0.1", 16)]


def test_configure_error_ends_slirpd_before_ready(guest, start_slirpd):
    """The kernel refuses the IPv6 address (IPv6 disabled in the guest): the
    daemon says so in one line and exits 1 without signalling ready."""
    guest.run("sysctl -q -w net.ipv6.conf.default.disable_ipv6=1")
    rfd, wfd = os.pipe()
    try:
        d = start_slirpd(f"--ready-fd={wfd}", "-c", "-6", str(guest.pid), ready=False, pass_fds=(wfd,))
        os.close(wfd)
        wfd = -1
        assert select.select([rfd], [], [], 30)[0], "neither ready nor gone"
        assert os.read(rfd, 1) == b""
    finally:
        os.close(rfd)
        if wfd >= 0:
            os.close(wfd)
    assert d.proc.wait(timeout=30) == 1
    assert re.fullmatch(r"slirpd: cannot add the address fd00::[0-9a-f:]+/64 to tap0: Permission denied "
                        r"\(ipv6: IPv6 is disabled on this device\)\n", d.stderr), d.stderr
