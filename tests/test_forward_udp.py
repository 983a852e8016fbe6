"""UDP port forwarding: --publish=HOST:GUEST/udp and add_hostfwd proto udp.

The host side is the test process (the sandbox's 127.0.0.1), the guest side a
UDP echo server inside a real guest namespace behind slirpd.  Clients use
*connected* sockets, so a reply is only seen if it comes from the very address
and port the client sent to: that is, back through the forwarded socket.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import pytest

from lib.api import ADD, api
from lib.frames import GUEST4, GW4, UDP, check_udp, eth, fragments, ip4, parse_ip, reassemble, udp
from lib.harness import as_user, wait_for
from lib.link import FWD_GUEST_PORT, collect, forwarded_link

pytestmark = pytest.mark.timeout(60)

GUEST_PORT = 5353

# Echoes every datagram; "whoami" is answered with the source as the guest sees it.
ECHO = r"""
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
s.bind(("0.0.0.0", int(sys.argv[1])))
while True:
    data, peer = s.recvfrom(65535)
    if data == b"whoami":
        data = ("%s:%d" % peer).encode()
    s.sendto(data, peer)
"""


@pytest.fixture
def echo(guest):
    """Start the echo server in the guest on GUEST_PORT (in the background)."""
    enter = ["nsenter", f"--target={guest.pid}", "--user", "--net", "--mount", "--preserve-credentials", "--"]
    proc = subprocess.Popen(enter + [sys.executable, "-c", ECHO, str(GUEST_PORT)], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **as_user(guest.user))
    yield proc
    proc.kill()
    proc.wait(timeout=10)


# --- frames: a slirpd._dp instance on a socket pair ------------------------------

UDP_IDLE_MS = 300  # the forwarded links' UDP idle timeout here


@pytest.fixture
def fwd_link():
    lk, host = forwarded_link(udp_idle_ms=UDP_IDLE_MS)
    yield lk, host
    lk.close()
    host.close()


def test_loopback_client_flow_not_kept_alive_by_guest():
    """--disable-host-loopback: a loopback client's flow lives on the
    client's datagrams only.  A guest that keeps sending "replies" does not
    keep its way to 127.0.0.1:PORT open past the idle timeout: afterwards
    they are unreachable, and the client hears none of them."""
    lk, host = forwarded_link(udp_idle_ms=UDP_IDLE_MS, disable_host_loopback=True)
    try:
        with client(host.getsockname()[1], timeout=0.05) as c:
            cport = c.getsockname()[1]
            c.send(b"hello")
            assert len(collect(lk, 1)) == 1
            reply = eth(0x0800, ip4(udp(b"reply", FWD_GUEST_PORT, cport), proto=UDP))
            lk.send(reply)
            lk.pump(1)
            assert c.recv(65535) == b"reply"
            # the guest alone sends for 5 idle timeouts
            deadline = time.monotonic() + 1.5
            while time.monotonic() < deadline:
                lk.send(reply)
                lk.pump(1)
                time.sleep(0.05)
            heard = 0
            try:
                while c.recv(65535):
                    heard += 1
            except (socket.timeout, ConnectionRefusedError):
                pass
            late_before = lk.dp.counters()["drop_unreachable"]
            lk.send(reply)
            lk.pump(1)
            after = lk.dp.counters()
            assert after["flows_closed"] == 1, after
            assert after["drop_unreachable"] == late_before + 1
            assert heard < 1.5 / 0.05, heard  # only those before the timeout
    finally:
        lk.close()
        host.close()


def test_forward_frames_both_ways_and_idle(fwd_link):
    lk, host = fwd_link
    with client(host.getsockname()[1]) as c:
        cport = c.getsockname()[1]
        c.send(b"ping")
        frames = collect(lk, 1)
        assert len(frames) == 1
        f, l4 = parse_ip(frames[0])
        assert (f["src"], f["dst"], f["more"]) == (GW4, GUEST4, False)
        assert check_udp(f, l4, cport, FWD_GUEST_PORT) == b"ping"
        # the reply leaves by the forwarded socket: a connected client sees it
        lk.send(eth(0x0800, ip4(udp(b"pong", FWD_GUEST_PORT, cport), proto=UDP)))
        lk.pump(1)
        assert c.recv(65535) == b"pong"
        c2 = lk.dp.counters()
        assert (c2["fwd_udp_flows"], c2["fwd_udp_datagrams"], c2["flows_created"]) == (1, 1, 1)
        assert lk.dp.forward_connections(1) == 1

        # 30 KiB each way: fragmented to the guest, reassembled from it
        big = os.urandom(30 * 1024)
        c.send(big)
        f, l4 = reassemble(collect(lk, 21))
        assert check_udp(f, l4, cport, FWD_GUEST_PORT) == big
        for fr in fragments(udp(big[::-1], FWD_GUEST_PORT, cport), 1480, ident=77):
            lk.send(fr)
        lk.pump(21)
        assert c.recv(65535) == big[::-1]
        assert lk.dp.forward_connections(1) == 1

        # idle: the flow goes after udp_idle_ms, the socket stays
        deadline = time.monotonic() + 5
        while lk.dp.counters()["flows_closed"] == 0 and time.monotonic() < deadline:
            time.sleep(max(lk.dp.timeout() or 0.05, 0.01))
            lk.dp.poll()
        assert lk.dp.counters()["flows_closed"] == 1
        os.fstat(host.fileno())
        c.send(b"again")
        f, l4 = parse_ip(collect(lk, 1)[0])
        assert check_udp(f, l4, cport, FWD_GUEST_PORT) == b"again"
        assert lk.dp.forward_connections(1) == 2


def test_forward_socket_gets_a_flows_receive_buffer(fwd_link):
    """A forwarded UDP port takes bursts for all its clients: the data plane
    asks for the receive buffer a guest's own UDP socket gets (4 MiB, which
    the kernel caps at net.core.rmem_max and doubles), not the default."""
    lk, host = fwd_link
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as fresh, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as asked:
        asked.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        default = fresh.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        wanted = asked.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
    assert wanted > default
    assert host.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) == wanted


def test_forward_remove_frees_flows_keeps_socket(fwd_link):
    lk, host = fwd_link
    with client(host.getsockname()[1]) as a, client(host.getsockname()[1]) as b:
        a.send(b"a")
        b.send(b"b")
        got = {parse_ip(fr)[1][8:] for fr in collect(lk, 2)}
        assert got == {b"a", b"b"}
        assert lk.dp.forward_connections(1) == 2
        before = lk.dp.counters()["flows_closed"]
        lk.dp.remove_forward(1)
        assert lk.dp.counters()["flows_closed"] == before + 2
        os.fstat(host.fileno())   # still Python's, still open
        # a guest reply now has no forward flow: it opens an ordinary flow
        # (its own socket), which the connected client does not hear
        lk.send(eth(0x0800, ip4(udp(b"late", FWD_GUEST_PORT, a.getsockname()[1]), proto=UDP)))
        lk.pump(1)
        with pytest.raises((socket.timeout, ConnectionRefusedError)):
            a.recv(65535)


# --- a real guest ------------------------------------------------------------

def client(port: int, timeout: float = 2.0, addr: str = "127.0.0.1") -> socket.socket:
    s = socket.socket(socket.AF_INET6 if ":" in addr else socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    s.settimeout(timeout)
    s.connect((addr, port))
    return s


def ask(s: socket.socket, data: bytes, tries: int = 20) -> bytes:
    """Send data until the echo comes back (the echo server may still be
    starting); fail the test if it never does."""
    for _ in range(tries):
        s.send(data)
        try:
            return s.recv(65535)
        except (socket.timeout, ConnectionRefusedError):
            continue
    pytest.fail(f"no reply to {len(data)} bytes through port {s.getpeername()[1]}")


def start(start_slirpd, guest, user_tmp, *args):
    path = str(user_tmp / "api.sock")
    d = start_slirpd("-c", f"--api-socket={path}", *args, str(guest.pid))
    wait_for(lambda: os.path.exists(path), 5, "the API socket")
    return d, path


def test_publish_echo_small_and_large(guest, echo, start_slirpd, user_tmp):
    start(start_slirpd, guest, user_tmp, f"--publish=127.0.0.1:18701:{GUEST_PORT}/udp")
    with client(18701) as s:
        assert ask(s, b"hello") == b"hello"
        # 30 KiB: fragmented to the guest at MTU 1500, and back again
        big = os.urandom(30 * 1024)
        assert ask(s, big) == big
        # a loopback client is the gateway in the guest, its port kept
        assert ask(s, b"whoami") == f"10.0.2.2:{s.getsockname()[1]}".encode()


def test_ipv6_host_clients(guest, echo, start_slirpd, user_tmp):
    """UDP forwards on ::1 and the dual-stack :: take IPv6 (and IPv4) clients
    into the guest's IPv4 address; replies come back from the forwarded port."""
    start(start_slirpd, guest, user_tmp, f"--publish=[::1]:18706:{GUEST_PORT}/udp",
          f"--publish=[::]:18707:{GUEST_PORT}/udp")
    for addr, port, seen_as in (("::1", 18706, "10.0.2.2"), ("2001:db8::1", 18707, "10.0.2.2"),
                                ("127.0.0.1", 18707, "10.0.2.2"), ("198.51.100.1", 18707, "198.51.100.1")):
        with client(port, addr=addr) as s:
            big = os.urandom(20000)
            assert ask(s, big) == big, addr
            assert ask(s, b"whoami") == f"{seen_as}:{s.getsockname()[1]}".encode(), addr


def test_batch_of_datagrams(guest, echo, start_slirpd, user_tmp):
    start(start_slirpd, guest, user_tmp, f"--publish=18702:{GUEST_PORT}/udp")
    with client(18702) as s:
        ask(s, b"ready")
        sent = [b"%04d" % i + os.urandom(500) for i in range(40)]
        for d in sent:
            s.send(d)
        got = set()
        try:
            while len(got) < len(sent):
                got.add(s.recv(65535))
        except socket.timeout:
            pass
        assert len(got) >= len(sent) - 2   # loopback and a veth: losses would be a bug, allow a margin


def test_two_clients_get_their_own_replies(guest, echo, start_slirpd, user_tmp):
    d, path = start(start_slirpd, guest, user_tmp, f"--publish=127.0.0.1:18703:{GUEST_PORT}/udp")
    with client(18703) as a, client(18703) as b:
        assert ask(a, b"from a") == b"from a"
        assert ask(b, b"from b") == b"from b"
        for i in range(5):
            a.send(b"a%d" % i)
            b.send(b"b%d" % i)
            assert a.recv(65535) == b"a%d" % i
            assert b.recv(65535) == b"b%d" % i
        assert ask(a, b"whoami") == f"10.0.2.2:{a.getsockname()[1]}".encode()
        assert ask(b, b"whoami") == f"10.0.2.2:{b.getsockname()[1]}".encode()
    stats = json.loads(api(path, '{"execute": "get_stats"}'))["return"]
    assert [f["connections"] for f in stats["forwards"]] == [2]
    assert stats["counters"]["fwd_udp_flows"] == 2


def test_api_add_remove_stops_relay_without_fd_growth(guest, echo, start_slirpd, user_tmp):
    d, path = start(start_slirpd, guest, user_tmp)
    fds = d.open_fds()
    for round_ in range(3):
        reply = api(path, ADD % ('{"proto": "udp", "host_addr": "127.0.0.1", "host_port": 18704, '
                                 '"guest_port": %d}' % GUEST_PORT))
        fwd_id = json.loads(reply)["return"]["id"]
        with client(18704) as s, client(18704) as t:
            assert ask(s, b"one %d" % round_) == b"one %d" % round_
            assert ask(t, b"two %d" % round_) == b"two %d" % round_
            stats = json.loads(api(path, '{"execute": "get_stats"}'))["return"]
            assert [f["connections"] for f in stats["forwards"] if f["id"] == fwd_id] == [2]
            flows = stats["flows"]
            assert api(path, '{"execute": "remove_hostfwd", "arguments": {"id": %d}}' % fwd_id) == '{"return":{}}'
            # the forward's flows went with it
            stats = json.loads(api(path, '{"execute": "get_stats"}'))["return"]
            assert stats["flows"] == flows - 2
            # nothing relays any more: the port is closed
            s.send(b"anyone?")
            with pytest.raises((socket.timeout, ConnectionRefusedError)):
                s.recv(65535)
    assert d.open_fds() == fds


def test_client_gone_before_reply_is_harmless(guest, echo, start_slirpd, user_tmp):
    """The guest's reply to a client that closed its socket is lost (the host
    answers with ICMP port unreachable, which the forwarded socket ignores);
    the forward keeps working for the next client."""
    d, path = start(start_slirpd, guest, user_tmp, f"--publish=127.0.0.1:18705:{GUEST_PORT}/udp")
    ports = set()
    with client(18705) as s:
        assert ask(s, b"x") == b"x"
        ports.add(s.getsockname()[1])
    for _ in range(5):
        with client(18705) as s:
            s.send(b"y" * 3000)   # closed before the echo can come back
            ports.add(s.getsockname()[1])
    with client(18705) as s:
        assert ask(s, b"z" * 3000) == b"z" * 3000
        ports.add(s.getsockname()[1])
    assert d.proc.poll() is None
    stats = json.loads(api(path, '{"execute": "get_stats"}'))["return"]
    assert stats["forwards"][0]["connections"] == len(ports)   # one flow per client port
