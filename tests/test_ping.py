"""ICMP echo beyond the gateway, through the host's unprivileged ping sockets.

The target is the sandbox's own address 198.51.100.1 (on up0), which the
sandbox kernel answers.  Whether slirpd's user may open ping sockets is
net.ipv4.ping_group_range of the sandbox's network namespace, which the
harness (root) sets per test and restores.
"""

from __future__ import annotations

import pytest

from lib.harness import have, wait_for

RANGE = "/proc/sys/net/ipv4/ping_group_range"
TARGET = "198.51.100.1"
NOTICE = "ping_group_range does not include"

pytestmark = pytest.mark.skipif(not have("ping"), reason="ping (iputils-ping) not installed")


@pytest.fixture
def ping_range():
    """set(value) writes ping_group_range; the old value is restored after."""
    with open(RANGE) as f:
        old = f.read().split()

    def set_range(value: str):
        with open(RANGE, "w") as f:
            f.write(value)

    yield set_range
    set_range(" ".join(old))


def test_ping_beyond_gateway(net_guest, ping_range):
    ping_range("0 2147483647")
    res = net_guest.run(f"ping -c 3 -i 0.2 -W 2 {TARGET}")
    assert "3 received" in res.stdout, res.stdout
    c = net_guest.slirpd.counters()
    assert c["ping_requests"] == 3 and c["ping_replies"] == 3
    assert c["flows_created"] == 1  # one identifier, one destination, one flow
    assert NOTICE not in net_guest.slirpd.stderr


def test_ping_large_fragmented(net_guest, ping_range):
    """A 30000-byte echo: fragments reassembled by slirpd, the reply fragmented."""
    ping_range("0 2147483647")
    res = net_guest.run(f"ping -c 2 -i 0.2 -W 2 -s 30000 {TARGET}")
    assert "2 received" in res.stdout, res.stdout
    c = net_guest.slirpd.counters()
    assert c["ip4_reassembled"] >= 2 and c["ping_replies"] == 2


def test_ping_forbidden_logged_once(net_guest, ping_range):
    ping_range("1 0")
    res = net_guest.run(f"ping -c 3 -i 0.2 -W 1 {TARGET}", check=False)
    assert res.returncode != 0
    net_guest.run(f"ping -c 2 -i 0.2 -W 1 {TARGET}", check=False)
    c = net_guest.slirpd.counters()
    assert c["drop_ping_forbidden"] == 5 and c["ping_requests"] == 0
    wait_for(lambda: NOTICE in net_guest.slirpd.stderr, 5, "the ping notice")
    assert net_guest.slirpd.stderr.count(NOTICE) == 1
    # the gateway still answers: that needs no ping socket
    net_guest.run("ping -c 1 -W 2 10.0.2.2")
    # and allowing ping sockets again works without a restart
    ping_range("0 2147483647")
    net_guest.run(f"ping -c 1 -W 2 {TARGET}")


def test_ping_unreachable_destination(net_guest, ping_range):
    """A destination fwd.c refuses (class E, routed through the gateway) is
    answered with host unreachable from the gateway."""
    ping_range("0 2147483647")
    res = net_guest.run("ping -c 1 -W 2 240.0.0.1", check=False)
    assert res.returncode != 0
    assert "Destination Host Unreachable" in res.stdout, res.stdout
    c = net_guest.slirpd.counters()
    assert c["drop_unreachable"] == 1 and c["icmp_unreach_sent"] == 1
