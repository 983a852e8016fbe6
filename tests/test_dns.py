"""The DNS address (network+3) forwards to the host's first nameserver.

A tiny DNS responder (UDP and TCP, written here with struct) listens on the
sandbox's 127.0.0.1:53 and answers A queries for one name; a resolv.conf
naming 127.0.0.1 is bind-mounted over /etc/resolv.conf in the harness's
private mount namespace before slirpd starts.  No real resolver is ever used.
"""

from __future__ import annotations

import socket

import pytest

from lib.dns import ADDR, DIG, NAME
from lib.harness import have


pytestmark = pytest.mark.skipif(not have("dig"), reason="dig (dnsutils) not installed")


@pytest.fixture
def dns_guest(dns_server, guest, start_slirpd):
    def start(*args):
        guest.slirpd = start_slirpd("--configure", *args, str(guest.pid))
        return guest
    return start


def test_dns_udp(dns_guest, dns_server):
    g = dns_guest()
    res = g.run(f"{DIG} {NAME} A")
    assert res.stdout.strip() == ADDR
    # NXDOMAIN comes through as well: an empty answer, dig succeeds
    assert g.run(f"{DIG} other.example A").stdout.strip() == ""
    assert dns_server.queries == 2
    c = g.slirpd.counters()
    assert c["flows_created"] >= 1 and c["drop_unreachable"] == 0


def test_dns_tcp(dns_guest, dns_server):
    g = dns_guest()
    res = g.run(f"{DIG} +tcp {NAME} A")
    assert res.stdout.strip() == ADDR


def test_dns_disabled(dns_guest, dns_server):
    g = dns_guest("--disable-dns")
    res = g.run(f"{DIG} {NAME} A", check=False)
    assert res.returncode != 0 and ADDR not in res.stdout
    assert dns_server.queries == 0
    assert g.slirpd.counters()["drop_unreachable"] >= 1


def test_dns_loopback_nameserver_with_disable_host_loopback(dns_guest, dns_server):
    """As slirp4netns 1.2.0 and 1.2.1 do, and as podman and rootlesskit
    (which pass --disable-host-loopback by default) depend on: the DNS
    address reaches a nameserver on the host's loopback under the flag,
    over UDP and TCP; the gateway and the DNS address's other ports do not
    reach the host's loopback."""
    g = dns_guest("--disable-host-loopback")
    assert g.run(f"{DIG} {NAME} A").stdout.strip() == ADDR
    assert g.run(f"{DIG} +tcp {NAME} A").stdout.strip() == ADDR
    assert dns_server.queries == 2
    probe = ("import socket, sys\n"
             "for addr in sys.argv[1:]:\n"
             "    host, port = addr.split(':')\n"
             "    try:\n"
             "        socket.create_connection((host, int(port)), timeout=3).close(); print('open')\n"
             "    except OSError:\n"
             "        print('closed')\n")
    with socket.create_server(("127.0.0.1", 0)) as listener:  # a host loopback service
        port = listener.getsockname()[1]
        # the responder's TCP port and the service through the gateway, the
        # service through the DNS address
        res = g.python(probe, "10.0.2.2:53", f"10.0.2.2:{port}", f"10.0.2.3:{port}")
    assert res.stdout.split() == ["closed"] * 3
    assert dns_server.queries == 2
