"""TCP port forwarding: host clients connect to a forwarded host port
(--publish, add_hostfwd) and reach a server inside the guest through slirpd.

The guest server (SERVER) runs in the guest namespace in the background; for
each connection it sends a fixed number of bytes while it reads the client's
until EOF, then prints one JSON line: the peer address it saw and the sha256
of both directions.  Host clients run in threads of the test process (root,
sandbox namespace).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
import time

import pytest

from lib.api import ADD, api
from lib.forward import HashingGuestServer, client
from lib.harness import wait_for

MIB = 1 << 20
GW = "10.0.2.2"
HOST_PORT = 18700
CLOSED_HOST_PORT = 18701
GUEST_PORT = 8080
CLOSED_GUEST_PORT = 8081
SANDBOX_ADDR = "198.51.100.1"
EXTRA_ADDR = "198.51.100.7"


def reset_after(addr: str, port: int, timeout: float) -> float:
    """Connect and wait for the reset (the accepted connection is reset, which
    may already fail connect() itself). Return: seconds it took."""
    start = time.monotonic()
    with socket.socket() as s:
        s.settimeout(timeout)
        with pytest.raises(ConnectionResetError):
            s.connect((addr, port))
            s.recv(1)
    return time.monotonic() - start


def learn_guest_mac(guest):
    """The guest speaks first (ARP, ICMP), so slirpd knows where to send SYNs."""
    guest.run("ping -c 1 -W 2 10.0.2.2")


def flows_settled(d) -> bool:
    c = d.counters()
    return c["flows_created"] == c["flows_closed"]


@pytest.fixture
def fwd_guest(guest, start_slirpd):
    """A configured guest, HOST_PORT published to GUEST_PORT where a server
    sends 64 MiB per connection (guest.server), CLOSED_HOST_PORT published to
    a port nothing listens on."""
    guest.slirpd = start_slirpd("--configure", f"--publish={HOST_PORT}:{GUEST_PORT}",
                                f"--publish={CLOSED_HOST_PORT}:{CLOSED_GUEST_PORT}", str(guest.pid))
    learn_guest_mac(guest)
    guest.server = None
    yield guest
    if guest.server:
        guest.server.stop()


@pytest.mark.timeout(60)
def test_both_ways_64mib(fwd_guest):
    g = fwd_guest
    g.server = HashingGuestServer(g, GUEST_PORT, 64 * MIB)
    mine = client("127.0.0.1", HOST_PORT, 64 * MIB)
    theirs = g.server.results(1)[0]
    assert mine["rx"] == 64 * MIB and theirs["rx"] == 64 * MIB
    assert mine["rx_sha"] == theirs["tx_sha"]
    assert theirs["rx_sha"] == mine["tx_sha"]
    assert (theirs["peer"], theirs["port"]) == (GW, mine["local"][1])
    c = g.slirpd.counters()
    assert c["tcp_fwd_conn_opened"] == 1 and c["fwd_tcp_accepted"] == 1
    wait_for(lambda: flows_settled(g.slirpd), 5, "the flow to close")


@pytest.mark.timeout(30)
def test_closed_guest_port_is_reset(fwd_guest):
    g = fwd_guest
    assert reset_after("127.0.0.1", CLOSED_HOST_PORT, 5) < 2
    c = g.slirpd.counters()
    assert c["tcp_fwd_conn_failed"] == 1 and c["tcp_fwd_conn_opened"] == 0
    wait_for(lambda: flows_settled(g.slirpd), 5, "the flow to be released")


@pytest.mark.timeout(60)
def test_guest_sees_client_addresses(fwd_guest):
    g = fwd_guest
    g.server = HashingGuestServer(g, GUEST_PORT, 64 * 1024)
    mine = client("127.0.0.1", HOST_PORT, 64 * 1024)
    theirs = g.server.results(1)[0]
    assert (theirs["peer"], theirs["port"]) == (GW, mine["local"][1])
    assert mine["rx_sha"] == theirs["tx_sha"] and theirs["rx_sha"] == mine["tx_sha"]

    subprocess.run(["ip", "addr", "add", f"{EXTRA_ADDR}/24", "dev", "up0"], check=True)
    try:
        mine = client(SANDBOX_ADDR, HOST_PORT, 64 * 1024, bind=EXTRA_ADDR)
        theirs = g.server.results(1)[0]
    finally:
        subprocess.run(["ip", "addr", "del", f"{EXTRA_ADDR}/24", "dev", "up0"], check=True)
    assert mine["local"][0] == EXTRA_ADDR
    assert (theirs["peer"], theirs["port"]) == (EXTRA_ADDR, mine["local"][1])
    assert mine["rx_sha"] == theirs["tx_sha"] and theirs["rx_sha"] == mine["tx_sha"]


@pytest.mark.timeout(60)
def test_50_concurrent(fwd_guest):
    g = fwd_guest
    size = 256 * 1024
    g.server = HashingGuestServer(g, GUEST_PORT, size)
    mine, errors = [], []

    def one():
        try:
            mine.append(client("127.0.0.1", HOST_PORT, size, timeout=30))
        except Exception as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=one) for _ in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=45)
    assert not errors, errors[:3]
    theirs = g.server.results(50)
    assert len(mine) == 50
    by_port = {r["port"]: r for r in theirs}
    for m in mine:
        t = by_port[m["local"][1]]
        assert t["peer"] == GW
        assert m["rx"] == size and t["rx"] == size
        assert m["rx_sha"] == t["tx_sha"] and t["rx_sha"] == m["tx_sha"]
    c = g.slirpd.counters()
    assert c["tcp_fwd_conn_opened"] == 50 and c["tcp_fwd_refused"] == 0
    wait_for(lambda: flows_settled(g.slirpd), 10, "the flows to close")


def timed_client(addr: str, port: int, up: int) -> tuple[dict, float]:
    """client(), and how long it took in seconds."""
    start = time.monotonic()
    result = client(addr, port, up, timeout=120)
    return result, time.monotonic() - start


@pytest.mark.timeout(240)
def test_api_during_1gib_transfer(guest, start_slirpd, user_tmp):
    """API requests do not stall traffic: a 1 GiB download through a forwarded
    port while list_hostfwd/get_stats are asked back to back runs at a rate
    comparable to the same download without them (not a benchmark: only a
    collapse, below a quarter of the quiet rate, fails)."""
    path = str(user_tmp / "api.sock")
    start_slirpd("--configure", f"--api-socket={path}", str(guest.pid))
    wait_for(lambda: os.path.exists(path), 5, "the API socket")
    assert api(path, ADD % f'{{"proto": "tcp", "host_addr": "127.0.0.1", "host_port": {HOST_PORT}, '
                           f'"guest_port": {GUEST_PORT}}}') == '{"return":{"id":1}}'
    learn_guest_mac(guest)
    quiet_size, busy_size = 256 * MIB, 1024 * MIB
    srv = HashingGuestServer(guest, GUEST_PORT, quiet_size)
    try:
        mine, quiet_s = timed_client("127.0.0.1", HOST_PORT, 0)
        theirs = srv.results(1)[0]
        assert mine["rx"] == quiet_size and mine["rx_sha"] == theirs["tx_sha"]
    finally:
        srv.stop()

    srv = HashingGuestServer(guest, GUEST_PORT, busy_size)
    try:
        result: dict = {}
        t = threading.Thread(target=lambda: result.update(zip(("mine", "secs"),
                                                            timed_client("127.0.0.1", HOST_PORT, 0))))
        t.start()
        listed = 0
        while t.is_alive():
            entries = json.loads(api(path, '{"execute": "list_hostfwd"}'))["entries"]
            assert [e["host_port"] for e in entries] == [HOST_PORT]
            assert json.loads(api(path, '{"execute": "get_stats"}'))["return"]["forwards"][0]["id"] == 1
            listed += 1
            # the client runs in this process: leave it the GIL (the flood
            # test, tests/test_faults.py, asks from a process of its own)
            time.sleep(0.005)
        t.join()
        theirs = srv.results(1)[0]
    finally:
        srv.stop()
    mine = result["mine"]
    assert mine["rx"] == busy_size and mine["rx_sha"] == theirs["tx_sha"]
    assert listed > 10
    quiet_rate, busy_rate = quiet_size / quiet_s, busy_size / result["secs"]
    assert busy_rate > quiet_rate / 4, (quiet_rate / MIB, busy_rate / MIB, listed)

    stats = json.loads(api(path, '{"execute": "get_stats"}'))["return"]
    assert [f["connections"] for f in stats["forwards"]] == [2]
    assert stats["counters"]["tcp_fwd_conn_opened"] == 2


@pytest.mark.timeout(60)
def test_ipv6_host_clients(guest, start_slirpd):
    """Forwards bound to ::1 and :: take IPv6 clients into the guest's IPv4
    address; the guest sees them as the gateway (an IPv4 guest cannot see an
    IPv6 source).  The :: listener is dual-stack: IPv4 clients arrive too."""
    d = start_slirpd("--configure", f"--publish=[::1]:{HOST_PORT}:{GUEST_PORT}",
                     f"--publish=[::]:{CLOSED_HOST_PORT}:{GUEST_PORT}", str(guest.pid))
    learn_guest_mac(guest)
    srv = HashingGuestServer(guest, GUEST_PORT, 4 * MIB)
    try:
        for addr, port in (("::1", HOST_PORT), ("::1", CLOSED_HOST_PORT), ("2001:db8::1", CLOSED_HOST_PORT),
                           ("127.0.0.1", CLOSED_HOST_PORT), (SANDBOX_ADDR, CLOSED_HOST_PORT)):
            mine = client(addr, port, 4 * MIB)
            theirs = srv.results(1)[0]
            assert mine["rx"] == 4 * MIB and theirs["rx"] == 4 * MIB, addr
            assert mine["rx_sha"] == theirs["tx_sha"] and theirs["rx_sha"] == mine["tx_sha"], addr
            expected_peer = SANDBOX_ADDR if addr == SANDBOX_ADDR else GW
            assert (theirs["peer"], theirs["port"]) == (expected_peer, mine["local"][1]), addr
    finally:
        srv.stop()
    assert d.counters()["tcp_fwd_conn_opened"] == 5


@pytest.mark.timeout(30)
def test_guest_never_spoke_is_refused(guest, start_slirpd):
    """Without a frame from the guest its MAC is unknown: refused at once."""
    d = start_slirpd(f"--publish={HOST_PORT}:{GUEST_PORT}", str(guest.pid), "tap0")
    assert reset_after("127.0.0.1", HOST_PORT, 5) < 2
    c = d.counters()
    assert c["tcp_fwd_refused"] == 1 and c["flows_created"] == 0


DROP_SYNS = f"nft add table inet t; nft add chain inet t in '{{ type filter hook input priority 0; }}'; " \
            f"nft add rule inet t in tcp dport {GUEST_PORT} drop"


@pytest.mark.timeout(60)
def test_syn_retransmitted_then_given_up(fwd_guest):
    """A guest that drops our SYN gets it again (backoff); once it answers the
    connection works, and a guest that never answers costs the host client a
    reset after DP_TCP_FWD_SYN_RETRIES (about 25 s)."""
    g = fwd_guest
    g.server = HashingGuestServer(g, GUEST_PORT, 1000)
    g.run(DROP_SYNS)
    result: dict = {}
    t = threading.Thread(target=lambda: result.update(client("127.0.0.1", HOST_PORT, 1000)))
    t.start()
    wait_for(lambda: g.slirpd.counters()["tcp_retransmits"] >= 2, 5, "SYN retransmissions")
    g.run("nft delete table inet t")
    t.join(timeout=10)
    theirs = g.server.results(1)[0]
    assert result["rx_sha"] == theirs["tx_sha"] and theirs["rx_sha"] == result["tx_sha"]

    g.run(DROP_SYNS)
    assert 20 < reset_after("127.0.0.1", HOST_PORT, 40) < 35
    c = g.slirpd.counters()
    assert c["tcp_fwd_conn_failed"] == 1 and c["tcp_fwd_conn_opened"] == 1
    wait_for(lambda: flows_settled(g.slirpd), 5, "the flows to close")
