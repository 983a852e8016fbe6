"""Automatic forwarding (slirpd/autofwd.py): a port a server binds in the
guest becomes reachable from the host within about a second, follows the
server as it rebinds, and goes when the server closes.

Two interfaces, one mechanism: pasta's -t auto / -u auto (a TCP port also
forwards its UDP twin, as pasta does), and the slirp4netns interface's
--publish auto[,~EXCLUDED], whose forwards list_hostfwd and get_stats show.
Ports the other direction uses (pasta's -T sockets inside the namespace)
and excluded ones are left alone.
"""

from __future__ import annotations

import json
import socket

import pytest

from lib.api import api_call
from lib.harness import wait_for
from lib.pastalib import GuestServer, closed, host_udp, reachable

pytestmark = pytest.mark.timeout(120)

FOLLOW = 5  # seconds a change may take to show (a scan a second, a loaded machine)


def test_follows_bind_rebind_close(pasta_fg, guest):
    """-t auto: bound, closed, bound again on another address family, closed."""
    pasta_fg("-t", "auto", "-u", "none")
    for addr in ("0.0.0.0", "::"):
        server = GuestServer(guest, addr, "tcp", 18300)
        try:
            reply = wait_for(lambda: reachable("127.0.0.1", 18300), FOLLOW, f"18300 forwarded ({addr})")
            assert reply.startswith(b"18300 ")
        finally:
            server.close()
        wait_for(lambda: closed("127.0.0.1", 18300), FOLLOW, "the forward of 18300 to go")


def test_udp_and_tcp_twin(pasta_fg, guest):
    """-u auto: a bound UDP port, and the UDP twin of a listening TCP port."""
    pasta_fg("-t", "none", "-u", "auto")
    udp = GuestServer(guest, "0.0.0.0", "udp", 18310)
    tcp_only = GuestServer(guest, "0.0.0.0", "tcp", 18311)
    try:
        reply = wait_for(lambda: _udp("127.0.0.1", 18310), FOLLOW, "UDP 18310 forwarded")
        assert reply.startswith(b"18310 ")
        # 18311 is TCP in the guest: its UDP twin is bound on the host (pasta does so for iperf3 and the like)
        wait_for(lambda: _udp_bound("127.0.0.1", 18311), FOLLOW, "UDP 18311 bound on the host")
        assert closed("127.0.0.1", 18311)  # TCP is not forwarded: -t none
    finally:
        udp.close()
        tcp_only.close()


def test_other_direction_left_alone(pasta_fg, guest):
    """A -T socket inside the namespace listens there, but is slirpd's own:
    not forwarded back to the host."""
    with socket.create_server(("127.0.0.1", 0)) as host_side:
        pasta_fg("-t", "auto", "-u", "none", "-T", f"18320:{host_side.getsockname()[1]}")
        marker = GuestServer(guest, "0.0.0.0", "tcp", 18321)  # proves a scan happened
        try:
            wait_for(lambda: reachable("127.0.0.1", 18321), FOLLOW, "18321 forwarded")
            assert closed("127.0.0.1", 18320)
        finally:
            marker.close()


def test_slirp4netns_interface(guest, start_slirpd, user_tmp):
    """--publish auto,~18331: bound ports are forwarded, excluded ones not;
    list_hostfwd marks them "auto", get_stats has the watcher's section;
    closed, they leave the list."""
    path = str(user_tmp / "api.sock")
    start_slirpd("-c", "--publish", "auto,~18331", f"--api-socket={path}", str(guest.pid))
    servers = [GuestServer(guest, "0.0.0.0", "tcp", port) for port in (18330, 18331)]
    try:
        reply = wait_for(lambda: reachable("127.0.0.1", 18330), FOLLOW, "18330 forwarded")
        assert reply.startswith(b"18330 10.0.2.2 ")
        entries = api_call(path, {"execute": "list_hostfwd"})["entries"]
        assert [(e["proto"], e["host_port"], e["guest_port"], e["auto"]) for e in entries] == \
            [("tcp", 18330, 18330, True), ("udp", 18330, 18330, True)]
        stats = api_call(path, {"execute": "get_stats"})["return"]
        assert stats["auto"]["ports"] == ["tcp/18330", "udp/18330"] and stats["auto"]["scans"] >= 1
        assert closed("127.0.0.1", 18331)
    finally:
        for s in servers:
            s.close()
    wait_for(lambda: api_call(path, {"execute": "list_hostfwd"})["entries"] == [], FOLLOW, "the auto forwards to go")
    assert json.dumps(api_call(path, {"execute": "get_stats"})["return"]["auto"]["ports"]) == "[]"


def _udp(addr: str, port: int) -> bytes | None:
    try:
        return host_udp(addr, port, b"hi", timeout=1)
    except OSError:
        return None


def _udp_bound(addr: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.bind((addr, port))
        except OSError:
            return True
    return False
