"""The data plane hands over the CPU after each full batch (csrc/dp.c,
"Handing over the CPU"; dp_yield_cpu()).

Under load slirpd never sleeps, and a reader woken on its CPU would wait for
the end of its time slice while it delivered more than the reader's socket
holds.  So after 64 frames read from the TAP, or a round of 32 datagrams
read from a host socket for the guest (a flow's or a forward's), the
transmit queue is written out and sched_yield() called; get_stats counts
each under cpu_yields.  What that does to throughput is measured in bench/
(udpbench.py), never here; here: exactly one hand-over per full batch and
none for a short one, with every datagram delivered, in order.

Frames level: a slirpd._dp instance on a socket pair (tests/lib/link.py),
real UDP sockets on the sandbox's 127.0.0.1; everything is queued before one
poll, so the batches are what the counts say.
"""

from __future__ import annotations

import socket

import pytest

from lib.frames import GW4, UDP, arp_request, check_udp, eth, ip4, parse_ip, udp
from lib.link import FWD_GUEST_PORT, Link, collect, forwarded_link

TAP_BATCH = 64  # DP_RX_RING
RECV_BATCH = 32  # DP_UDP_RECV_BATCH


def payload(i: int) -> bytes:
    return b"%06d" % i + bytes([i & 0xFF]) * 50


@pytest.fixture
def host_socket():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.settimeout(5)
    yield s
    s.close()


def poll_once(lk: Link) -> dict:
    """One dp.poll() with everything queued; the counters it changed."""
    before = lk.dp.counters()
    lk.dp.poll(256)
    after = lk.dp.counters()
    return {k: after[k] - before[k] for k in after if after[k] != before[k]}


@pytest.mark.parametrize("frames,yields", [(2 * TAP_BATCH + 10, 2), (3 * TAP_BATCH, 3), (TAP_BATCH - 1, 0)],
                         ids=["two_full_one_short", "three_full", "one_short"])
def test_tap_batches_hand_over(pair, host_socket, frames, yields):
    """Frames from the guest: a hand-over after each full batch of 64, none
    after a short one; the host's socket gets every datagram, in order."""
    port = host_socket.getsockname()[1]
    for i in range(frames):
        pair.send(eth(0x0800, ip4(udp(payload(i), 40000, port), proto=UDP)))
    changed = poll_once(pair)
    assert changed["frames_in"] == frames
    assert changed.get("cpu_yields", 0) == yields, changed
    assert [host_socket.recv(2048) for _ in range(frames)] == [payload(i) for i in range(frames)]


def flow_peer(lk: Link, host_socket) -> tuple:
    """The guest's datagram to host_socket opens a flow: its socket's address."""
    port = host_socket.getsockname()[1]
    lk.send(eth(0x0800, ip4(udp(b"open", 40001, port), proto=UDP)))
    lk.pump(1)
    data, peer = host_socket.recvfrom(100)
    assert data == b"open"
    return peer


def guest_payloads(lk: Link, want: int, sport: int, dport: int) -> list[bytes]:
    frames = collect(lk, want)
    return [check_udp(*parse_ip(f), sport, dport) for f in frames]


@pytest.mark.parametrize("datagrams,yields", [(2 * RECV_BATCH + 5, 2), (RECV_BATCH - 1, 0)],
                         ids=["two_full_rounds", "one_short_round"])
def test_flow_rounds_hand_over(pair, host_socket, datagrams, yields):
    """Datagrams from the host for a flow: the frames of each full round of
    32 are written out and the CPU handed over before the next round."""
    assert pair.exchange(arp_request(GW4)) is not None  # the guest's MAC is learnt
    peer = flow_peer(pair, host_socket)
    for i in range(datagrams):
        host_socket.sendto(payload(i), peer)
    changed = poll_once(pair)
    assert changed.get("cpu_yields", 0) == yields, changed
    got = guest_payloads(pair, datagrams, host_socket.getsockname()[1], 40001)
    assert got == [payload(i) for i in range(datagrams)]


def test_forward_rounds_hand_over():
    """Datagrams to a forwarded host port: as a flow's, a hand-over per full
    round of 32."""
    lk, forward = forwarded_link()
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        client.connect(forward.getsockname())
        datagrams = 3 * RECV_BATCH + 1
        for i in range(datagrams):
            client.send(payload(i))
        changed = poll_once(lk)
        assert changed.get("cpu_yields", 0) == 3, changed
        assert changed["fwd_udp_datagrams"] == datagrams
        got = guest_payloads(lk, datagrams, client.getsockname()[1], FWD_GUEST_PORT)
        assert got == [payload(i) for i in range(datagrams)]
    finally:
        lk.close()
        forward.close()
        client.close()
