"""--configure's direct netlink path (slirpd/rtnl.py, issue 19): what it
configured, as `ip -j link/addr/route` reports it inside the guest, in every
configuration the suite has (--cidr, --mtu, --macaddress, -6, all of them,
and `-- COMMAND`); and its errors, in words, from the kernel's refusals.

The pasta model (issue 20, slirpd/pasta/net.py) goes through rtnl.py too:
the host's addresses and routes read by dumps, the namespace configured
with them, under podman's argv (pasta:OPTIONS included) and rootlesskit's
(2.0: no --config-net, only loopback up; 3: --config-net): PASTA_CONFIGS.

Router advertisements (csrc/ndp.c) may add a SLAAC address and routes of
protocol "ra" beside what --configure did, depending on when the guest
solicits one: those are left out of the comparison.
"""

from __future__ import annotations

import errno
import ipaddress
import json
import os
import re
import select
import socket
import subprocess

import pytest

from lib.harness import as_user, slirpd_argv
from lib.pastalib import GATEWAY4, GATEWAY6, HOST4, HOST6, Pasta, bind_netns, podman_argv, rootlesskit_argv
from slirpd import rtnl

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


# The sandbox's up0 as pasta copies it (tests/sandbox.sh): its addresses,
# its link route (again, beside the kernel's own, without the host's
# preferred source: IPv4 routes are appended) and its default routes
# (protocol boot, as the sandbox added them); IPv6's link route is the
# kernel's, the copy of it is left out as existing
HOST_NET4 = "198.51.100.0/24"
COPIED4 = [("default", GATEWAY4, "boot", None), (HOST_NET4, None, "kernel", None), (HOST_NET4, None, "kernel", HOST4)]
COPIED6 = [("2001:db8::/64", None, "kernel"), ("default", GATEWAY6, "boot")]
# name: (argv (podman's with --netns NETNS, or rootlesskit's in the
# foreground on PID), what the namespace must then have)
PASTA_CONFIGS = {
    "podman": (podman_argv("NETNS"), {"ifname": "up0", "mtu": 65520, "inet": [f"{HOST4}/24"],
                                      "inet6": [f"{HOST6}/64"], "routes4": COPIED4, "routes6": COPIED6}),
    "podman-options": (podman_argv("NETNS", extra=["-a", "192.0.2.2", "-n", "255.255.0.0", "-g", "192.0.2.1", "-m",
                                                   "1280", "-I", "eth7", "--ns-mac-addr", "02:11:22:33:44:55"]),
                       {"ifname": "eth7", "mtu": 1280, "mac": "02:11:22:33:44:55", "inet": ["192.0.2.2/16"],
                        "inet6": [f"{HOST6}/64"], "routes6": COPIED6,
                        "routes4": [("default", "192.0.2.1", "boot", None),
                                    ("192.0.0.0/16", None, "kernel", "192.0.2.2")]}),
    "podman-ipv6": (podman_argv("NETNS", extra=["-6", "-a", "2001:db8::77"]),
                    {"ifname": "up0", "mtu": 65520, "inet": [], "inet6": ["2001:db8::77/64"], "routes4": [],
                     "routes6": COPIED6}),
    "rootlesskit2": (rootlesskit_argv(0, "none"), {"ifname": "tap0", "configured": False}),
    "rootlesskit3": (["--config-net", *rootlesskit_argv(0, "none")],
                     {"ifname": "tap0", "mtu": 65520, "inet": ["10.0.2.100/24"], "inet6": [], "routes6": [],
                      "routes4": [("default", "10.0.2.2", "boot", None),
                                  ("10.0.2.0/24", None, "kernel", "10.0.2.100")]}),
}


def check_pasta(state: tuple, want: dict) -> None:
    """state: the parsed output of IP_COMMANDS in the guest."""
    links, addrs, routes4, routes6 = state
    links = {link["ifname"]: link for link in links}
    assert {"UP", "LOWER_UP"} <= set(links["lo"]["flags"])
    link = links[want["ifname"]]
    assert link["linkinfo"]["info_data"]["type"] == "tap"
    info = {a["ifname"]: a["addr_info"] for a in addrs}
    if not want.get("configured", True):  # the client configures it (rootlesskit 2.0's activateDev)
        assert "UP" not in link["flags"] and link["mtu"] == 1500
        assert info[want["ifname"]] == []
        assert [r for r in routes4 + routes6 if r["dev"] == want["ifname"]] == []
        return
    assert {"UP", "LOWER_UP"} <= set(link["flags"]) and "NOARP" not in link["flags"], link
    assert link["mtu"] == want["mtu"]
    if "mac" in want:
        assert link["address"] == want["mac"]
    mine = info[want["ifname"]]
    assert [f"{a['local']}/{a['prefixlen']}" for a in mine if a["family"] == "inet"] == want["inet"]
    assert [a.get("broadcast") for a in mine if a["family"] == "inet"] == [None] * len(want["inet"])
    global6 = [a for a in mine if a["family"] == "inet6" and a["scope"] == "global"]
    assert [f"{a['local']}/{a['prefixlen']}" for a in global6] == want["inet6"]
    link_local = [a for a in mine if a["family"] == "inet6" and a["scope"] == "link"]
    assert len(link_local) == 1  # made while ARP was off: without duplicate address detection
    assert all(a.get("nodad") is True for a in global6 + link_local), mine
    assert sorted(((r["dst"], r.get("gateway"), r.get("protocol", "boot"), r.get("prefsrc")) for r in routes4
                   if r["dev"] == want["ifname"]), key=repr) == sorted(want["routes4"], key=repr)
    assert sorted(((r["dst"], r.get("gateway"), r.get("protocol", "boot")) for r in routes6
                   if r["dev"] == want["ifname"] and r.get("protocol") != "ra" and not r["dst"].startswith("fe80:")),
                  key=repr) == sorted(want["routes6"], key=repr)


@pytest.mark.parametrize("name", PASTA_CONFIGS)
def test_pasta_configured_as_asked(guest, plain_user, pasta_bin, user_tmp, name):
    argv, want = PASTA_CONFIGS[name]
    pasta = Pasta(guest, pasta_bin)
    try:
        if "NETNS" in argv:
            argv = [bind_netns(guest, plain_user.pw_uid) if a == "NETNS" else a for a in argv]
            res = pasta.start(argv)
            assert res.returncode == 0, res.stderr
        else:
            pasta.start_foreground([*argv[:-1], str(guest.pid)], ready_in=user_tmp / "pasta.pid")
        check_pasta(guest_state(guest), want)
    finally:
        pasta.stop()


def test_dumps_read(guest):
    """rtnl.py's dumps, in a guest: the addresses and routes it reads are
    what was configured there."""
    guest.run("ip link set lo up && ip tuntap add dev t0 mode tap && ip link set t0 up"
              " && ip addr add 10.9.0.1/16 dev t0 && ip route add 10.20.0.0/16 via 10.9.0.254 metric 7")
    out = json.loads(guest.python(DUMPS_SCRIPT).stdout)
    assert out["addrs"] == [["127.0.0.1", 8, 254, "lo"], ["10.9.0.1", 16, 0, "t0"]]
    # protocol 3: boot, what `ip route add` gives; 2: the kernel's
    assert sorted(map(tuple, out["routes"]), key=repr) == [("10.20.0.0", 16, "10.9.0.254", 7, 3),
                                                           ("10.9.0.0", 16, None, None, 2)]


DUMPS_SCRIPT = """
import json, socket
from slirpd import rtnl
with rtnl.Rtnl() as nl:
    names = {nl.index(n): n for n in ("lo", "t0")}
    addrs = [[str(a.address), a.prefixlen, a.scope, names[a.index]] for a in nl.addresses(socket.AF_INET)]
    routes = [[str(r.dst), r.dst_len, r.gateway and str(r.gateway), r.priority, r.protocol]
              for r in nl.routes(socket.AF_INET) if r.table == rtnl.RT_TABLE_MAIN and r.oif == nl.index("t0")]
print(json.dumps({"addrs": addrs, "routes": routes}))
"""


class FakeKernel:
    """An rtnetlink socket's stand-in: answers each request with the
    datagrams answer(seq) makes."""

    def __init__(self, answer):
        self.answer, self.pending = answer, []

    def sendto(self, data: bytes, _addr) -> None:
        self.pending += self.answer(rtnl.NLMSGHDR.unpack_from(data)[3])

    def recv(self, _size: int) -> bytes:
        return self.pending.pop(0)

    def close(self) -> None:
        pass


NLM_F_MULTI = 0x2  # a dump's messages carry it (rtnl.py does not look)


def message(kind: int, seq: int, payload: bytes, flags: int = NLM_F_MULTI) -> bytes:
    return rtnl.NLMSGHDR.pack(rtnl.NLMSGHDR.size + len(payload), kind, flags, seq, 0) + payload


ROUTE = rtnl.RTMSG.pack(socket.AF_INET, 24, 0, 0, 254, 4, 0, 1, 0) + rtnl.attr(rtnl.RTA_DST, bytes([10, 1, 2, 0]))
DUMP_ANSWERS = {
    "refused": lambda seq: [message(rtnl.NLMSG_ERROR, seq, rtnl.NLMSGERR.pack(-errno.EPERM) + bytes(16))],
    "always changing": lambda seq: [message(rtnl.RTM_NEWROUTE, seq, ROUTE, NLM_F_MULTI | rtnl.NLM_F_DUMP_INTR),
                                    message(rtnl.NLMSG_DONE, seq, bytes(4))],
    "cut attribute": lambda seq: [message(rtnl.RTM_NEWROUTE, seq, ROUTE[:-2]), message(rtnl.NLMSG_DONE, seq, bytes(4))],
    "short message": lambda seq: [message(rtnl.RTM_NEWROUTE, seq, ROUTE[:6]), message(rtnl.NLMSG_DONE, seq, bytes(4))],
    "good": lambda seq: [message(rtnl.RTM_NEWROUTE, seq - 1, ROUTE[:6]),  # an older request's: not looked at
                         message(rtnl.RTM_NEWROUTE, seq, ROUTE), message(rtnl.NLMSG_DONE, seq, bytes(4))],
}
DUMP_ERRORS = {
    "refused": "cannot read the IPv4 routes: Operation not permitted",
    "always changing": "cannot read the IPv4 routes: the table kept changing while it was read (3 tries)",
    "cut attribute": "cannot read the IPv4 routes: malformed netlink reply (an attribute of 8 bytes in a message of 6)",
    "short message": "cannot read the IPv4 routes: malformed netlink reply (a message of 6 bytes, shorter than its "
                     "header of 12)",
}


@pytest.mark.parametrize("case", DUMP_ANSWERS)
def test_dump_errors_in_words(case):
    """A dump the kernel refuses, that keeps changing, or that comes back
    malformed is an RtnlError in words, never a Python error; a good one
    (after an answer to another request) is read."""
    with rtnl.Rtnl() as nl:
        nl.sock.close()
        nl.sock = FakeKernel(DUMP_ANSWERS[case])
        if case == "good":
            assert nl.routes(socket.AF_INET) == [rtnl.Route(socket.AF_INET, 24, 254, 4, 0, 1,
                                                            ipaddress.ip_address("10.1.2.0"), None, 0, None)]
            return
        with pytest.raises(rtnl.RtnlError) as e:
            nl.routes(socket.AF_INET)
        assert str(e.value) == DUMP_ERRORS[case]
