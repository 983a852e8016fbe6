"""DNS under today's clients, for real: podman 5.4 and rootlesskit 2.0 from
Debian 13 (tests/lib/clients.py) run slirpd as their slirp4netns, with their
default flags, on a host whose resolver is systemd-resolved's stub,
127.0.0.53, served here by the responder of test_dns.py in the sandbox.

Issue 21: a podman container in slirp4netns mode, or rootlesskit's child as
dockerd-rootless.sh starts it, had no DNS under slirpd.  Both clients pass
--disable-host-loopback, and slirp4netns forwards the DNS address to a
loopback nameserver whatever that flag says.  Each case runs for slirpd and,
side by side, for Debian 13's slirp4netns 1.2.1: both must answer, and both
must be called with the same argv, so slirpd is tested under exactly what
the real programs pass.
"""

from __future__ import annotations

import dataclasses
import re

import pytest

from lib.clients import IMAGE, matches
from lib.dns import ADDR, ADDR6, NAME

NETWORK_COMMANDS = ["slirpd", "slirp4netns"]
DNS = "10.0.2.3"
LOOKUP = f"cat /etc/resolv.conf; busybox nslookup {NAME}"


@dataclasses.dataclass(frozen=True)
class Client:
    """A client of slirp4netns as it runs LOOKUP with the network command at
    {path}, and what it passes to that command: `--help` probes times, then
    argv (a pattern in argv stands for a word that varies; see matches)."""

    command: str
    probes: int
    argv: list


CLIENTS = {
    # podman 5.4.2 with its defaults; the container's resolv.conf is podman's
    "podman": Client(
        f"podman --network-cmd-path={{path}} run --rm --network slirp4netns {IMAGE} sh -c '{LOOKUP}'", 1,
        ["--disable-host-loopback", "--mtu=65520", "--enable-sandbox", "--enable-seccomp", "--enable-ipv6", "-c",
         "-r", "3", "-e", "4", "--netns-type=path", re.compile(r"/run/user/1500/netns/netns-[0-9a-f-]+"), "tap0"]),
    # rootlesskit 2.0.2 with the flags of moby's contrib/dockerd-rootless.sh
    # and its defaults (the child is ours, not dockerd); the child's
    # resolv.conf is rootlesskit's, in its copy-up of /etc
    "rootlesskit": Client(
        "rootlesskit --state-dir=$XDG_RUNTIME_DIR/dockerd-rootless --net=slirp4netns --mtu=65520"
        " --slirp4netns-sandbox=auto --slirp4netns-seccomp=auto --disable-host-loopback --port-driver=builtin"
        f" --copy-up=/etc --copy-up=/run --propagation=rslave --slirp4netns-binary={{path}} sh -c '{LOOKUP}'", 2,
        ["--mtu", "65520", "-r", "3", "--disable-host-loopback", "--enable-sandbox", "--enable-seccomp",
         re.compile(r"[1-9][0-9]*"), "tap0"]),
}

pytestmark = pytest.mark.timeout(240)


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("netcmd", NETWORK_COMMANDS)
def test_client_resolves_through_loopback_resolver(clients_root, resolver, client, netcmd):
    """The client runs busybox nslookup with its resolv.conf, whose first
    nameserver is the DNS address; the answers (ADDR and ADDR6, which only
    the resolver gives) come from 127.0.0.53.  The network command got the
    client's usual argv."""
    spec = CLIENTS[client]
    cmd = clients_root.logged(netcmd)
    res = clients_root.run(spec.command.format(path=cmd.path))
    out = res.stdout
    assert res.returncode == 0, out + res.stderr
    assert re.findall(r"^nameserver (\S+)", out, re.M)[:1] == [DNS], out
    assert re.findall(r"^Server:\s+(\S+)", out, re.M) == [DNS], out
    assert sorted(re.findall(rf"^Name:\s+{re.escape(NAME)}\nAddress: (\S+)", out, re.M)) == sorted([ADDR, ADDR6]), out
    assert resolver.queries >= 2  # A and AAAA
    calls = cmd.calls()
    assert len(calls) == spec.probes + 1 and calls[:-1] == [["--help"]] * spec.probes, calls
    assert matches(calls[-1], spec.argv), calls
