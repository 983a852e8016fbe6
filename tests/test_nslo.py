"""The data plane's --host-lo-to-ns-lo pools (csrc/nslo.c), frame by frame on
a socket-pair link: which connections of a -t forward go to the namespace's
loopback, what an empty pool does, and how the pool asks to be refilled.

The pool's sockets are made here, in the test's own namespace, which then
stands for the guest's: the data plane connects them wherever they live.
tests/test_splice.py runs the same through pasta, with sockets made in a
real guest namespace by nsbinder.py's helper.
"""

from __future__ import annotations

import os
import socket
import threading

import pytest

from slirpd.dataplane import NOTICE_NS_LO_LOW
from lib.frames import GUEST4, GW4, arp_request, tcp_flags
from lib.pastalib import HOST4
from lib.harness import wait_for
from lib.link import collect, delta

POOL_MAX = 32  # DP_NSLO_POOL_MAX
SO_SNDBUFFORCE, SO_RCVBUFFORCE = 32, 33  # not in the socket module; the test runs as root


@pytest.fixture
def listener():
    """The -t forward's host socket, on every address (so that a client of
    a non-loopback address reaches it too)."""
    s = socket.create_server(("0.0.0.0", 0))
    s.setblocking(False)
    yield s
    s.close()


def fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def fill(dp, n: int, family=socket.AF_INET) -> None:
    for _ in range(n):
        dp.ns_lo_add(socket.socket(family, socket.SOCK_STREAM | socket.SOCK_NONBLOCK))


def poll_until(pair, done, what: str) -> None:
    wait_for(lambda: pair.dp.poll() >= 0 and done(), 5, what)


def test_wanted_follows_half_full(pair):
    """Nothing wanted before dp_ns_lo_enable(); then the room left, once at
    most half full, and 0 above that; a full pool refuses another (closing
    it), a socket of another kind is refused."""
    assert (pair.dp.ns_lo_wanted(4), pair.dp.ns_lo_wanted(6)) == (0, 0)
    pair.dp.ns_lo_enable()
    assert (pair.dp.ns_lo_wanted(4), pair.dp.ns_lo_wanted(6)) == (POOL_MAX, POOL_MAX)
    fill(pair.dp, POOL_MAX // 2)
    assert pair.dp.ns_lo_wanted(4) == POOL_MAX // 2
    fill(pair.dp, 1)
    assert (pair.dp.ns_lo_wanted(4), pair.dp.ns_lo_wanted(6)) == (0, POOL_MAX)
    fill(pair.dp, POOL_MAX - POOL_MAX // 2 - 1)
    before = fds()
    with pytest.raises(OSError) as full:
        fill(pair.dp, 1)
    assert full.value.errno == 28 and fds() == before  # ENOSPC, the socket closed
    with pytest.raises(OSError) as udp:
        pair.dp.ns_lo_add(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    assert udp.value.errno == 22 and fds() == before  # EINVAL, closed too
    with pytest.raises(OSError):
        pair.dp.ns_lo_wanted(5)


def test_loopback_client_spliced_to_ns_loopback(pair, listener):
    """A client of the host's loopback is spliced to 127.0.0.1 at the
    forward's guest port, through a socket of the pool; no frame reaches
    the guest."""
    server = socket.create_server(("127.0.0.1", 0))
    pair.dp.add_forward(1, listener.fileno(), "tcp", GUEST4, server.getsockname()[1])
    pair.dp.ns_lo_enable()
    fill(pair.dp, 1)
    before = pair.dp.counters()
    with server, socket.create_connection(("127.0.0.1", listener.getsockname()[1]), timeout=5) as c:
        poll_until(pair, lambda: pair.dp.counters()["splice_conn_opened"] > before["splice_conn_opened"], "the splice")
        conn, peer = server.accept()
        with conn:
            assert peer[0] == "127.0.0.1"
            c.sendall(b"ping")
            conn.settimeout(5)
            poll_until(pair, lambda: conn.recv(4, socket.MSG_PEEK) == b"ping", "the bytes in")
            assert conn.recv(4) == b"ping"
        assert pair.recv(timeout=0.1) is None
    d = delta(before, pair.dp.counters())
    assert (d.get("ns_lo_dialled"), d.get("drop_ns_lo_pool_empty")) == (1, None), d
    assert pair.dp.ns_lo_wanted(4) == POOL_MAX


@pytest.mark.parametrize("enabled, client", [(True, HOST4), (False, "127.0.0.1")])
def test_other_client_goes_to_guest(pair, listener, enabled, client):
    """A client of another host address, or any client without the option,
    goes through the TAP as before: a SYN to the guest, the pool untouched."""
    pair.dp.add_forward(1, listener.fileno(), "tcp", GUEST4, 80)
    pair.send(arp_request(GW4))  # the data plane learns the guest's MAC address
    assert len(collect(pair, 1)) == 1
    if enabled:
        pair.dp.ns_lo_enable()
        fill(pair.dp, 1)
    before = pair.dp.counters()
    with socket.socket() as c:
        c.bind((client, 0))
        c.setblocking(False)
        c.connect_ex((client, listener.getsockname()[1]))
        frames = collect(pair, 1)
        assert frames and tcp_flags(frames[0]) == 0x02, "no SYN to the guest"
    d = delta(before, pair.dp.counters())
    assert d.get("fwd_tcp_accepted") == 1 and "ns_lo_dialled" not in d, d
    assert pair.dp.ns_lo_wanted(4) == (POOL_MAX - 1 if enabled else 0)


def test_empty_pool_resets_and_counts(pair, listener):
    """A loopback client finding the pool empty is reset at once and
    counted; nothing reaches the guest, no descriptor is left, and the next
    one, with a socket pooled again, is served."""
    server = socket.create_server(("127.0.0.1", 0))
    pair.dp.add_forward(1, listener.fileno(), "tcp", GUEST4, server.getsockname()[1])
    pair.dp.ns_lo_enable()
    before, open_before = pair.dp.counters(), fds()
    with server, socket.create_connection(("127.0.0.1", listener.getsockname()[1]), timeout=5) as c:
        poll_until(pair, lambda: pair.dp.counters()["drop_ns_lo_pool_empty"] > 0, "the drop")
        with pytest.raises(ConnectionResetError):
            c.recv(1)
        d = delta(before, pair.dp.counters())
        assert (d.get("drop_ns_lo_pool_empty"), d.get("ns_lo_dialled")) == (1, None), d
        assert pair.recv(timeout=0.1) is None
    assert fds() == open_before - 1  # all but the server closed here
    assert pair.dp.sockets()["forwards"] == 1  # the listener only: the accepted socket given back
    fill(pair.dp, 1)
    server = socket.create_server(("127.0.0.1", 0))
    pair.dp.remove_forward(1)
    pair.dp.add_forward(2, listener.fileno(), "tcp", GUEST4, server.getsockname()[1])
    with server, socket.create_connection(("127.0.0.1", listener.getsockname()[1]), timeout=5):
        poll_until(pair, lambda: pair.dp.counters()["ns_lo_dialled"] == 1, "the second connection spliced")
        server.settimeout(5)
        server.accept()[0].close()


def test_half_empty_pool_ends_the_wait(pair, listener):
    """Taking the socket that leaves a pool half full raises
    NOTICE_NS_LO_LOW (each time: not a one-shot notice), so that Python
    refills it; one taken above that raises nothing."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(5)
    pair.dp.add_forward(1, listener.fileno(), "tcp", GUEST4, server.getsockname()[1])
    pair.dp.ns_lo_enable()
    fill(pair.dp, POOL_MAX // 2 + 2)
    pair.dp.notices()
    with server:
        for dialled, notice in ((1, 0), (2, NOTICE_NS_LO_LOW), (3, NOTICE_NS_LO_LOW)):
            with socket.create_connection(("127.0.0.1", listener.getsockname()[1]), timeout=5):
                poll_until(pair, lambda: pair.dp.counters()["ns_lo_dialled"] == dialled, "the splice")  # noqa: B023
                assert pair.dp.notices() & NOTICE_NS_LO_LOW == notice, dialled
                server.accept()[0].close()
    assert pair.dp.ns_lo_wanted(4) == POOL_MAX - (POOL_MAX // 2 - 1)


def test_side_that_hung_up_with_data_unread_is_read_to_its_end(pair, listener):
    """A spliced side that hung up (its FIN came after our own shutdown, so
    EPOLLHUP: it leaves the epoll set) while it still held more than one
    event's rounds move (DP_SPLICE_ROUNDS x the pipe, 8 x 256 KiB): the rest
    is read on as the other side takes it, to the end and its EOF.  Before
    ec74ec3 the last round of an event emptied the pipe into the other
    side's roomy buffer, nothing was watched any more, and the transfer
    stalled for ever at 2 MiB (test_nsauto's 4 MiB echo did, now and then).
    The buffers make it certain: the client's 6 MiB and FIN wait whole in
    the accepted side's buffer before the data plane looks, and the other
    side's buffers take every round whole."""
    size = 6 << 20
    data = os.urandom(size)
    listener.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 16 << 20)  # the accepted side inherits it
    server = socket.create_server(("127.0.0.1", 0))
    server.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 8 << 20)
    server.settimeout(5)
    pair.dp.add_forward(1, listener.fileno(), "tcp", GUEST4, server.getsockname()[1])
    pair.dp.ns_lo_enable()
    ns_side = socket.socket(socket.AF_INET, socket.SOCK_STREAM | socket.SOCK_NONBLOCK)
    ns_side.setsockopt(socket.SOL_SOCKET, SO_SNDBUFFORCE, 8 << 20)
    pair.dp.ns_lo_add(ns_side)
    with server, socket.create_connection(("127.0.0.1", listener.getsockname()[1]), timeout=5) as c:
        poll_until(pair, lambda: pair.dp.counters()["splice_conn_opened"] == 1, "the splice")
        conn, _ = server.accept()
        with conn:
            conn.shutdown(socket.SHUT_WR)  # our shutdown of the client's side follows
            poll_until(pair, lambda: at_eof(c), "the client's EOF")
            sender = threading.Thread(target=lambda: (c.sendall(data), c.shutdown(socket.SHUT_WR)))
            sender.start()  # with the data plane not polled: all of it, then the FIN, wait in its buffer
            wait_for(lambda: not sender.is_alive(), 10, "the client's bytes sent")
            sender.join()
            conn.setblocking(False)
            got = bytearray()

            def drained() -> bool:
                pair.dp.poll()
                try:
                    while chunk := conn.recv(1 << 20):
                        got.extend(chunk)
                    return True
                except BlockingIOError:
                    return False

            wait_for(drained, 20, "the rest of the client's bytes and its EOF")
    assert len(got) == size and bytes(got) == data


def at_eof(sock: socket.socket) -> bool:
    """sock's peer has shut down its writing, and nothing is left to read."""
    try:
        return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
