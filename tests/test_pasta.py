"""slirpd as pasta under podman's and rootlesskit's argv, verbatim, as a plain
user, the way tests/test_podman.py runs slirp4netns's.

podman runs pasta inside its rootless user and mount namespaces, where the
container's network namespace is bound to /run/user/UID/netns/NAME, and
waits for it to exit 0 with its output read to EOF; the guest fixture plays
those namespaces.  rootlesskit 2.0 runs it in the foreground on its child's
PID and configures the interface itself.  Each test checks what the client
relies on: the namespace configured as pasta configures it (the sandbox's
up0, 198.51.100.1/24 and 2001:db8::1/64, copied), DNS through the
--dns-forward address to the host's resolver on 127.0.0.53,
host.containers.internal (--map-guest-addr) reaching a host service, -t/-u
forwards carrying data in, and the daemon's end: the namespace file
removed, the PID gone, SIGTERM.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from conftest import wait_for
from pastalib import (DNS_FORWARD, GATEWAY4, GATEWAY6, GONE_TIMEOUT, HOST4, HOST6, MAP_GUEST, GuestServer, HostEcho,
                      Pasta, addresses, bind_netns, default_gateways, guest_connect, guest_link, host_tcp, host_udp,
                      ip_json, pasta_link, podman_argv, rootlesskit_argv)
from test_dns import ADDR, NAME, DnsServer

pytestmark = pytest.mark.timeout(120)

RESOLVER = "127.0.0.53"  # systemd-resolved's stub, as today's hosts have it
LOOKUP = ("import socket, struct, sys\n"
          "q = struct.pack('!HHHHHH', 0x1234, 0x0100, 1, 0, 0, 0) + b''.join("
          "bytes([len(p)]) + p.encode() for p in sys.argv[2].split('.')) + b'\\0' + struct.pack('!HH', 1, 1)\n"
          "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(3)\n"
          "s.sendto(q, (sys.argv[1], 53))\n"
          "try:\n"
          "    r = s.recv(512); print(socket.inet_ntoa(r[-4:]))\n"
          "except OSError as e:\n"
          "    print(type(e).__name__)\n")


@pytest.fixture(scope="module")
def link():
    """A `pasta` link to the slirpd under test, where the plain user can run it."""
    directory = Path(tempfile.mkdtemp(prefix="slirpd-pasta-", dir="/tmp"))
    yield pasta_link(directory)
    shutil.rmtree(directory)


@pytest.fixture
def resolver(tmp_path):
    """The host's resolver on 127.0.0.53 (resolv.conf bind-mounted to name
    it, in the harness's mount namespace: guests made after see it)."""
    conf = tmp_path / "resolv.conf"
    conf.write_text(f"nameserver {RESOLVER}\noptions edns0 trust-ad\n")
    os.chmod(tmp_path, 0o755)
    subprocess.run(["mount", "--bind", str(conf), "/etc/resolv.conf"], check=True)
    srv = None
    try:
        srv = DnsServer(RESOLVER)
        yield srv
    finally:
        if srv:
            srv.close()
        subprocess.run(["umount", "/etc/resolv.conf"], check=True)


@pytest.fixture
def pasta(resolver, guest, link):
    p = Pasta(guest, link)
    yield p
    p.stop()


@pytest.fixture
def netns(guest, plain_user):
    return bind_netns(guest, plain_user.pw_uid)


def start_ok(pasta, argv):
    res = pasta.start(argv)
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout == "" and res.stderr == ""  # --quiet, and nothing left open to write
    assert len(pasta.alive()) == 1
    return res


def lookup(guest, server: str) -> str:
    return guest.python(LOOKUP, server, NAME).stdout.strip()


def test_podman_default(pasta, guest, netns, resolver):
    """podman run: the namespace is configured before pasta exits 0, its
    output is closed, and the container has pasta's network: the host's
    addresses, routes and interface name, MTU 65520, loopback up; DNS
    through 169.254.1.1 reaches the host's 127.0.0.53; 169.254.1.2 is the
    host (host.containers.internal), the host's loopback is not (--no-map-gw)."""
    start_ok(pasta, podman_argv(netns))
    up0 = guest_link(guest, "up0")
    assert up0["mtu"] == 65520 and "UP" in up0["flags"]
    assert addresses(up0, "inet") == [f"{HOST4}/24"] and addresses(up0, "inet6") == [f"{HOST6}/64"]
    assert default_gateways(guest, "-4") == [GATEWAY4] and default_gateways(guest, "-6") == [GATEWAY6]
    assert "UP" in guest_link(guest, "lo")["flags"]
    assert lookup(guest, DNS_FORWARD) == ADDR and resolver.queries == 1
    with HostEcho() as echo:  # the host's service sees the host's own address as the client
        assert guest_connect(guest, MAP_GUEST, echo.port) == f"{HOST4} hello"
    with HostEcho("127.0.0.1") as lo:  # the gateway is the real one, not the host's loopback
        assert guest_connect(guest, GATEWAY4, lo.port, timeout=2) == "TimeoutError"
        assert lo.peers == []
