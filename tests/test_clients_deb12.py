"""Debian 12's clients, for real: podman 4.3 and rootlesskit 1.1, as `make
deps` installs them here, run slirpd as their slirp4netns, as a plain user
with subordinate ids, in the test sandbox (tests/lib/deb12.py).  The host's
resolver is a DNS responder on the sandbox's 127.0.0.53 (tests/lib/dns.py).

Every case runs for slirpd and, side by side, for Debian 12's own
slirp4netns 1.2.0: both must pass it.  Each client's calls of its network
command are captured by a logging wrapper and must be the same for both:
the argv that this Debian's programs pass (what tests/test_podman.py
replays): podman 4.3 gives slirp4netns the exit fd as 3
and the ready fd as 4 (`-e 3 -r 4`, the other way round from podman 5), and
rootlesskit 1.1 names its child by PID, in two-word options.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from lib.clients import matches
from lib.deb12 import BINARIES, ECHO_CLIENT, ECHO_SERVER, IMAGE, rootlesskit_harden
from lib.dns import ADDR, ADDR6, NAME
from lib.harness import HARDEN, SLIRPD

pytestmark = pytest.mark.timeout(180)

NETNS = re.compile(r"/run/user/[0-9]+/netns/netns-[0-9a-f-]+")
# podman 4.3.1's argv (libpod/networking_slirp4netns.go), after one `--help`
PODMAN_ARGV = ["--disable-host-loopback", "--mtu=65520", "--enable-sandbox", "--enable-seccomp", "--enable-ipv6",
               "-c", "-e", "3", "-r", "4", "--netns-type=path", NETNS, "tap0"]
# with port_handler=slirp4netns and a published port, before --netns-type
PODMAN_API = ["--api-socket", re.compile(r"/run/user/[0-9]+/libpod/tmp/[0-9a-f]{64}\.net")]
ECHO_SIZE = 1 << 20
NETWORK_COMMANDS = ["slirpd", "slirp4netns"]
# The start of each one's command line, once its wrapper has exec'd it (an
# extended regular expression that the shells around it do not match)
COMMAND_LINES = {"slirpd": f"^[^ ]*python[^ ]* {SLIRPD} ", "slirp4netns": f"^{BINARIES['slirp4netns']} "}


def gone(netcmd: str) -> str:
    """The shell command that prints whether netcmd still runs, for 5 s
    after its client is done with it ("gone", or "alive" and exit 1); an
    exited one may stay a zombie: the run's init, su, reaps only its own
    child."""
    return (f"i=0; while pgrep -r R,S,D -f '{COMMAND_LINES[netcmd]}' >/dev/null; do i=$((i+1));"
            " [ $i -le 50 ] || { echo alive; exit 1; }; sleep 0.1; done; echo gone")


def echo(addr: str, port: int) -> str:
    """The shell command of the host's side of a forwarded port (ECHO_CLIENT)."""
    return f"python3 -c '{ECHO_CLIENT}' {addr} {port} {ECHO_SIZE} 100"


def lookups(out: str) -> list[str]:
    """The addresses that busybox nslookup printed for NAME, sorted."""
    return sorted(re.findall(rf"^Name:\s+{re.escape(NAME)}\nAddress: (\S+)", out, re.M))


@pytest.mark.parametrize("netcmd", NETWORK_COMMANDS)
def test_podman_container_network(deb12_clients, stub_resolver, netcmd):
    """podman run --network slirp4netns with podman's defaults: the container
    has 10.0.2.100/24 and a default route via 10.0.2.2, its resolv.conf names
    10.0.2.3 first and a lookup there is answered by the host's 127.0.0.53
    (A and AAAA), and the network command exits once the container has
    ended."""
    cmd = deb12_clients.logged(netcmd)
    script = ("ip -4 -o addr show tap0; ip -4 route show default; grep ^nameserver /etc/resolv.conf;"
              f" nslookup {NAME}")
    res = deb12_clients.run(f"podman --network-cmd-path={cmd.path} run --rm --network slirp4netns {IMAGE}"
                            f" sh -c '{script}'; {gone(netcmd)}")
    out = res.stdout
    assert res.returncode == 0, out + res.stderr
    assert re.search(r"^2: tap0\s+inet 10\.0\.2\.100/24 ", out, re.M), out
    assert re.search(r"^default via 10\.0\.2\.2 dev tap0", out, re.M), out
    assert re.findall(r"^nameserver (\S+)", out, re.M)[:1] == ["10.0.2.3"], out
    assert re.findall(r"^Server:\s+(\S+)", out, re.M) == ["10.0.2.3"], out
    assert lookups(out) == sorted([ADDR, ADDR6]), out
    assert stub_resolver.queries >= 2  # A and AAAA
    assert out.rstrip().endswith("gone"), out
    calls = cmd.calls()
    assert len(calls) == 2 and calls[0] == ["--help"] and matches(calls[1], PODMAN_ARGV), calls


@pytest.mark.parametrize("port_handler", ["rootlesskit", "slirp4netns"])
@pytest.mark.parametrize("netcmd", NETWORK_COMMANDS)
def test_podman_publish(deb12_clients, netcmd, port_handler):
    """podman run -p 8080:80 with port_handler (rootlesskit's rootlessport,
    podman's default, or slirpd's API socket): a megabyte sent to the host's
    127.0.0.1:8080 and 198.51.100.1:8080 comes back from the echo server in
    the container, and the network command exits once the container is
    removed."""
    cmd = deb12_clients.logged(netcmd)
    network = "slirp4netns" + (":port_handler=slirp4netns" if port_handler == "slirp4netns" else "")
    res = deb12_clients.run(
        f"podman --network-cmd-path={cmd.path} run -d --replace --name web -p 8080:80 --network {network} {IMAGE}"
        f" {ECHO_SERVER.format(port=80)} >/dev/null; {echo('127.0.0.1', 8080)}; {echo('198.51.100.1', 8080)};"
        f" podman rm -f -t 0 web >/dev/null; {gone(netcmd)}")
    out = res.stdout
    assert res.returncode == 0, out + res.stderr
    assert out.split("\n")[:3] == [f"echoed {ECHO_SIZE}", f"echoed {ECHO_SIZE}", "gone"], out + res.stderr
    calls = cmd.calls()
    argv = PODMAN_ARGV if port_handler == "rootlesskit" else [*PODMAN_ARGV[:-3], *PODMAN_API, *PODMAN_ARGV[-3:]]
    assert len(calls) == 2 and calls[0] == ["--help"] and matches(calls[1], argv), calls


# The host's port that the child connects to, on the host's own address and
# on the gateway (the host's loopback, with --disable-host-loopback refused)
HOST_PORT = 18301
FORWARDED_PORT = 18300
COPY_UP_MARK = "/etc/slirpd-deb12-copy-up"
# rootlesskit 1.1's argv (pkg/network/slirp4netns), after two `--help`; the
# hardened pass gives rootlesskit dockerd-rootless.sh's sandbox=auto and
# seccomp=auto, which add the two flags once `--help` has shown them
ROOTLESSKIT_ARGV = ["--mtu", "65520", "-r", "3", "--disable-host-loopback"]
ROOTLESSKIT_API = ["--api-socket", "/tmp/rk/.s4nn.sock"]
ROOTLESSKIT_TAIL = [*(["--enable-sandbox", "--enable-seccomp"] if HARDEN else []), re.compile(r"[1-9][0-9]*"), "tap0"]


@pytest.mark.parametrize("port_driver", ["builtin", "slirp4netns"])
@pytest.mark.parametrize("netcmd", NETWORK_COMMANDS)
def test_rootlesskit(deb12_clients, stub_resolver, netcmd, port_driver):
    """rootlesskit --net=slirp4netns --disable-host-loopback --copy-up=/etc
    --port-driver=port_driver: the child has 10.0.2.100/24, resolves names
    through 10.0.2.3 (the host's 127.0.0.53), writes its own copy of /etc,
    reaches the host's address but not the host's loopback through the
    gateway; a port added with rootlessctl add-ports carries a megabyte each
    way to the child's echo server; the network command exits with
    rootlesskit."""
    cmd = deb12_clients.logged(netcmd)
    # Each wait is bounded; none guesses a time: the child says when its
    # server listens and stays until the host is done with it
    child = ("ip -4 -o addr show tap0; ip -4 route show default; grep ^nameserver /etc/resolv.conf;"
             f" busybox nslookup {NAME}; touch {COPY_UP_MARK} && echo copied-up;"
             f" busybox nc -w 5 198.51.100.1 {HOST_PORT} </dev/null;"
             f" busybox nc -w 5 10.0.2.2 {HOST_PORT} </dev/null || echo host-loopback-refused;"
             f" {ECHO_SERVER.format(port=80)} & touch /tmp/served;"
             " i=0; while [ ! -e /tmp/done ] && [ $i -lt 900 ]; do sleep 0.1; i=$((i+1)); done; kill $!")
    host = (f"i=0; while [ ! -e /tmp/served ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done;"
            f" rootlessctl --socket=/tmp/rk/api.sock add-ports 127.0.0.1:{FORWARDED_PORT}:80/tcp >/dev/null"
            f" && {echo('127.0.0.1', FORWARDED_PORT)}")
    harden = " ".join(rootlesskit_harden())
    res = deb12_clients.run(
        f"busybox nc -ll -p {HOST_PORT} -e /bin/echo host-reached & listener=$!;"
        f" rootlesskit --state-dir=/tmp/rk --net=slirp4netns --slirp4netns-binary={cmd.path} {harden}"
        f" --disable-host-loopback --copy-up=/etc --port-driver={port_driver} sh -c '{child}' & rk=$!;"
        f" ( {host} ); touch /tmp/done; wait $rk; echo rootlesskit=$?; kill $listener; {gone(netcmd)}")
    out = res.stdout
    assert res.returncode == 0, out + res.stderr
    assert re.search(r"^2: tap0\s+inet 10\.0\.2\.100/24 ", out, re.M), out
    assert re.search(r"^default via 10\.0\.2\.2 dev tap0", out, re.M), out
    assert re.findall(r"^nameserver (\S+)", out, re.M) == ["10.0.2.3"], out
    assert lookups(out) == sorted([ADDR, ADDR6]), out
    assert stub_resolver.queries >= 2
    assert "copied-up" in out and not Path(COPY_UP_MARK).exists(), out
    assert out.split().count("host-reached") == 1 and "host-loopback-refused" in out.split(), out
    assert f"echoed {ECHO_SIZE}" in out.split("\n"), out + res.stderr
    assert "rootlesskit=0" in out and out.rstrip().endswith("gone"), out + res.stderr
    calls = cmd.calls()
    argv = [*ROOTLESSKIT_ARGV, *(ROOTLESSKIT_API if port_driver == "slirp4netns" else []), *ROOTLESSKIT_TAIL]
    assert len(calls) == 3 and calls[:2] == [["--help"]] * 2 and matches(calls[2], argv), calls
