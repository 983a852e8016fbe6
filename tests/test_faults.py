"""Faults around a working daemon: loss (and reordering: not survived yet), descriptor exhaustion, a
host peer resetting mid-stream, the guest vanishing mid-transfer, and ten thousand
connections open at once.  Nothing may be lost or corrupted, nothing may crash, and
what the daemon holds must come back to where it was.
"""

from __future__ import annotations

import hashlib
import os
import resource
import selectors
import signal
import socket
import subprocess
import threading
import time

import pytest

from conftest import wait_for
from tcputil import GUEST_RECV, GUEST_SEND, Server, echo, linger0, sink, source

MIB = 1 << 20


def live_flows(d) -> int:
    c = d.counters()
    return c["flows_created"] - c["flows_closed"]


# --- loss and reordering ---------------------------------------------------------

# Loss the daemon sees must happen after the sender's TCP let go of the frame:
# a drop in the guest's output path (nft output or egress hook, a qdisc) is
# reported back to the guest's TCP as local congestion and resent in order,
# never seen as loss.  So the guest's address moves to a veth v0 whose peer v1
# is bridged with tap0 (br0), and the frames are dropped, each way, in the
# bridge's forward hook: 2% of them.
BRIDGED = ("ip link add v0 type veth peer name v1 && ip link add br0 type bridge && "
           "ip link set tap0 master br0 && ip link set v1 master br0 && "
           "ip addr flush dev tap0 && ip addr add 10.0.2.100/24 dev v0 && "
           "ip link set v1 up && ip link set br0 up && ip link set v0 up && "
           "ip route replace default via 10.0.2.2 dev v0 && "
           "nft add table bridge faults && "
           "nft add chain bridge faults f '{ type filter hook forward priority 0 ; }'")
LOSS = BRIDGED + " && nft add rule bridge faults f numgen random mod 100 '<' 2 drop"

# ... and 3% of the frames to the daemon marked for a slow HTB class on tap0
# (50 Mbit/s), so they leave after frames sent later: reordering.  (The kernel
# here has no netem; htb and nftables it has.)
REORDER = (
    "tc qdisc add dev tap0 root handle 1: htb default 1 && "
    "tc class add dev tap0 parent 1: classid 1:1 htb rate 10gbit && "
    "tc class add dev tap0 parent 1: classid 1:2 htb rate 50mbit ceil 50mbit && "
    "nft add rule bridge faults f oifname tap0 numgen random mod 100 '<' 3 meta priority set 1:2")

# GUEST_SEND with a 15 s stall limit instead of 60 s
GUEST_SEND_IMPATIENT = GUEST_SEND.replace("timeout=60", "timeout=15")


@pytest.mark.timeout(600)
def test_loss_host_to_guest_256mib(net_guest):
    """2% of the daemon's frames lost: its retransmissions bring 256 MiB intact."""
    d = net_guest.slirpd
    net_guest.run(LOSS.replace("f numgen", "f oifname v1 numgen"))
    size = 256 * MIB
    with Server(source(size)) as srv:
        out = net_guest.python(GUEST_RECV, str(srv.port), timeout=280).stdout.split()
        srv.wait(1, timeout=60)
        assert not srv.errors and srv.results[0] == (int(out[0]), out[1]) and int(out[0]) == size
    c = d.counters()
    assert c["tcp_retransmits"] > 0, c          # the loss was real
    wait_for(lambda: live_flows(d) == 0, 10, "flows to close")


GUEST_TCP_GAP = ("tcp.c drops guest segments that arrive past a gap (no out-of-order queue, "
                 "no SACK): after a real loss or a reordering the guest must resend the whole "
                 "flight, falls back to retransmission timeouts with exponential backoff, and "
                 "the transfer stalls")


@pytest.mark.xfail(strict=True, reason=GUEST_TCP_GAP)
@pytest.mark.timeout(300)
@pytest.mark.parametrize("faults", ["loss", "loss_and_reordering"])
def test_guest_to_host_under_faults(net_guest, faults):
    d = net_guest.slirpd
    net_guest.run(LOSS if faults == "loss" else LOSS + " && " + REORDER)
    size = 16 * MIB
    with Server(sink) as srv:
        r = net_guest.python(GUEST_SEND_IMPATIENT, str(srv.port), str(size), timeout=200, check=False)
        assert r.returncode == 0, "transfer stalled: " + r.stderr[-300:]
        srv.wait(1, timeout=60)
        assert not srv.errors and srv.results[0] == (size, r.stdout.split()[1])
    assert d.counters()["drop_tcp_out_of_window"] > 0     # segments came past a gap
    wait_for(lambda: live_flows(d) == 0, 10, "flows to close")


# --- descriptor exhaustion -----------------------------------------------------------

# argv: port n -> prints "ok refused" after trying n connections at once, each
# given 10 s; then keeps nothing open
MANY_CONNECT = r"""
import socket, sys, time
port, n = int(sys.argv[1]), int(sys.argv[2])
socks, ok, refused = [], 0, 0
for i in range(n):
    s = socket.socket()
    s.setblocking(False)
    s.connect_ex(("10.0.2.2", port))
    socks.append(s)
deadline = time.monotonic() + 10
pending = set(socks)
import select
while pending and time.monotonic() < deadline:
    _, w, _ = select.select([], list(pending)[:1000], [], 0.5)
    for s in w:
        pending.discard(s)
        err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err == 0:
            ok += 1
        else:
            refused += 1
print(ok, refused, len(pending))
for s in socks:
    s.close()
"""

# argv: port -> talks on one connection, reading commands from stdin: each line
# is echoed through the connection and the answer printed
KEEP_ONE = r"""
import socket, sys
s = socket.create_connection(("10.0.2.2", int(sys.argv[1])), timeout=20)
for line in sys.stdin:
    s.sendall(line.encode())
    got = b""
    while len(got) < len(line):
        got += s.recv(4096)
    print(got.decode(), end="", flush=True)
"""


def guest_popen(guest, script: str, *args: str) -> subprocess.Popen:
    from conftest import as_user
    import sys
    enter = ["nsenter", f"--target={guest.pid}", "--user", "--net", "--mount", "--preserve-credentials", "--"]
    return subprocess.Popen(enter + [sys.executable, "-c", script, *args], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            **as_user(guest.user))


@pytest.mark.timeout(180)
def test_ulimit_64_refuses_new_flows_keeps_old(guest, start_slirpd):
    d = start_slirpd("--configure", str(guest.pid), wrap=("prlimit", "--nofile=64:64", "--"))
    guest.slirpd = d
    with Server(echo) as srv:
        old = guest_popen(guest, KEEP_ONE, str(srv.port))
        try:
            old.stdin.write("before\n")
            old.stdin.flush()
            assert old.stdout.readline() == "before\n"
            fds = d.open_fds()

            out = guest.python(MANY_CONNECT, str(srv.port), "200", timeout=60).stdout.split()
            ok, refused, hung = map(int, out)
            assert hung == 0, "connections neither accepted nor refused"
            assert refused > 0 and ok + refused == 200, out
            assert d.proc.poll() is None, d.stderr
            c = d.counters()
            assert c["drop_tcp_socket"] + c["tcp_conn_failed"] >= refused, c

            # the old connection never noticed
            old.stdin.write("after\n")
            old.stdin.flush()
            assert old.stdout.readline() == "after\n"
            wait_for(lambda: d.open_fds() == fds, 20, f"descriptors back to {fds}")
            # and new ones work again
            out = guest.python(MANY_CONNECT, str(srv.port), "5").stdout.split()
            assert out == ["5", "0", "0"], out
        finally:
            old.stdin.close()
            old.wait(timeout=10)
    assert "Traceback" not in d.stderr


# --- host peer resetting mid-stream -------------------------------------------------

# argv: port n -> n connections read at once; prints per connection "eof bytes
# sha256" or "reset bytes"
MANY_RECV = r"""
import hashlib, socket, sys, threading
port, n = int(sys.argv[1]), int(sys.argv[2])
out = [None] * n
def get(i):
    s = socket.create_connection(("10.0.2.2", port), timeout=60)
    s.sendall(b"%d\n" % i)
    h, total = hashlib.sha256(), 0
    try:
        while True:
            d = s.recv(1 << 16)
            if not d:
                out[i] = "eof %d %s" % (total, h.hexdigest())
                return
            h.update(d)
            total += len(d)
    except ConnectionResetError:
        out[i] = "reset %d -" % total
ts = [threading.Thread(target=get, args=(i,)) for i in range(n)]
[t.start() for t in ts]
[t.join() for t in ts]
print("\n".join(out))
"""


@pytest.mark.timeout(180)
def test_host_resets_mid_stream_others_intact(net_guest):
    d = net_guest.slirpd
    data = os.urandom(4 * MIB)
    digest = hashlib.sha256(data).hexdigest()
    fds = d.open_fds()

    def handler(conn):
        i = int(conn.makefile().readline())
        if i % 2:                      # odd: a reset after 1 MiB
            conn.sendall(data[:MIB])
            time.sleep(0.2)
            linger0(conn)
            return "reset"
        conn.sendall(data)
        return "full"

    with Server(handler) as srv:
        out = net_guest.python(MANY_RECV, str(srv.port), "20", timeout=120).stdout.splitlines()
        srv.wait(20)
        assert not srv.errors
    for i, line in enumerate(out):
        kind, n, h = line.split()
        if i % 2:
            assert kind == "reset" and int(n) <= MIB, line
        else:
            assert (kind, int(n), h) == ("eof", 4 * MIB, digest), line
    assert d.counters()["tcp_rst_from_host"] >= 10
    wait_for(lambda: live_flows(d) == 0, 10, "flows to close")
    wait_for(lambda: d.open_fds() == fds, 10, f"descriptors back to {fds}")


# --- the guest vanishing mid-transfer ---------------------------------------------------

@pytest.mark.timeout(120)
def test_guest_vanishes_mid_transfer(guest, start_slirpd):
    d = start_slirpd("--configure", str(guest.pid))
    guest.slirpd = d
    got = []

    def slow_sink(conn):
        n = 0
        try:
            while True:
                b = conn.recv(1 << 16)
                if not b:
                    break
                n += len(b)
        except ConnectionResetError:
            pass
        got.append(n)
        return n

    with Server(slow_sink) as srv:
        sender = guest_popen(guest, GUEST_SEND, str(srv.port), str(1 << 40))
        wait_for(lambda: d.counters()["bytes_in"] > 32 * MIB, 60, "the transfer to run")
        children = descendants(d.proc.pid)
        # the namespace goes: every process in it dies, the TAP with it
        sender.kill()
        guest.stop()
        assert d.proc.wait(timeout=20) == 0, d.stderr
        srv.wait(1, timeout=20)
    assert got and got[0] > 16 * MIB
    assert "Traceback" not in d.stderr
    # nothing left behind: every process the daemon started is gone too
    wait_for(lambda: not [p for p in children if os.path.exists(f"/proc/{p}")], 10,
             f"the daemon's children {children} to exit")


def descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        for task in os.listdir(f"/proc/{p}/task"):
            try:
                kids = open(f"/proc/{p}/task/{task}/children").read().split()
            except OSError:
                continue
            out += map(int, kids)
            todo += map(int, kids)
    return out


# --- ten thousand connections open at once ------------------------------------------------

# argv: port n -> opens n connections (non-blocking), sends 8 bytes on each,
# reads them back, and only then closes them all; prints the count echoed
MANY_OPEN = r"""
import resource, selectors, socket, sys, time
port, n = int(sys.argv[1]), int(sys.argv[2])
resource.setrlimit(resource.RLIMIT_NOFILE, (n + 100, n + 100))
sel = selectors.DefaultSelector()
socks = []
for i in range(n):
    s = socket.socket()
    s.setblocking(False)
    s.connect_ex(("10.0.2.2", port))
    socks.append(s)
    sel.register(s, selectors.EVENT_WRITE, i)
echoed, deadline = 0, time.monotonic() + 120
bufs = {}
while echoed < n and time.monotonic() < deadline:
    for key, ev in sel.select(1):
        s, i = key.fileobj, key.data
        if ev & selectors.EVENT_WRITE:
            if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                raise SystemExit("connection %d failed" % i)
            s.send(b"%08d" % i)
            sel.modify(s, selectors.EVENT_READ, i)
            bufs[i] = b""
        else:
            bufs[i] += s.recv(16)
            if len(bufs[i]) == 8:
                assert bufs[i] == b"%08d" % i
                echoed += 1
                sel.unregister(s)
print(echoed)
for s in socks:
    s.close()
"""


class SelectorEcho:
    """An echo server on 127.0.0.1 for many connections, one thread, no per
    connection threads."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4096)
        self.sock.setblocking(False)
        self.port = self.sock.getsockname()[1]
        self.sel = selectors.DefaultSelector()
        self.sel.register(self.sock, selectors.EVENT_READ)
        self.stop = False
        self.open = 0
        self.accepted = 0
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop:
            for key, _ in self.sel.select(0.2):
                if key.fileobj is self.sock:
                    try:
                        while True:
                            c, _ = self.sock.accept()
                            c.setblocking(False)
                            self.sel.register(c, selectors.EVENT_READ)
                            self.open += 1
                            self.accepted += 1
                    except BlockingIOError:
                        pass
                    continue
                c = key.fileobj
                try:
                    b = c.recv(4096)
                except ConnectionError:
                    b = b""
                if b:
                    c.send(b)
                else:
                    self.sel.unregister(c)
                    c.close()
                    self.open -= 1

    def close(self):
        self.stop = True
        self.thread.join(timeout=5)
        for key in list(self.sel.get_map().values()):
            key.fileobj.close()


@pytest.mark.timeout(300)
def test_10000_concurrent_connections(guest, start_slirpd):
    n = 10000
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, n + 1000), max(hard, n + 1000)))
    d = start_slirpd("--configure", str(guest.pid), wrap=("prlimit", f"--nofile={n + 200}:{n + 200}", "--"))
    guest.slirpd = d
    srv = SelectorEcho()
    try:
        fds = d.open_fds()
        out = guest.python(MANY_OPEN, str(srv.port), str(n), timeout=200).stdout.split()
        assert out == [str(n)], out
        assert srv.accepted == n
        wait_for(lambda: live_flows(d) == 0, 60, "all flows to close")
        wait_for(lambda: d.open_fds() == fds, 20, f"descriptors back to {fds}")
        wait_for(lambda: srv.open == 0, 20, "the server's side to close")
    finally:
        srv.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    c = d.counters()
    assert c["tcp_conn_opened"] == n and c["tcp_rst_sent"] == 0, c


# --- the daemon stopped mid-transfer; its API flooded mid-transfer -------------------

@pytest.mark.timeout(180)
def test_sigstop_sigcont_mid_transfer(net_guest):
    d = net_guest.slirpd
    size = 64 * MIB
    with Server(sink) as srv:
        sender = guest_popen(net_guest, GUEST_SEND, str(srv.port), str(size))
        wait_for(lambda: d.counters()["bytes_in"] > 8 * MIB, 60, "the transfer to run")
        for _ in range(3):
            d.proc.send_signal(signal.SIGSTOP)
            time.sleep(1.5)
            d.proc.send_signal(signal.SIGCONT)
            time.sleep(0.3)
        out, err = sender.communicate(timeout=120)
        assert sender.returncode == 0, err
        srv.wait(1, timeout=60)
        assert not srv.errors and srv.results[0] == (size, out.split()[1])
    assert d.proc.poll() is None
    wait_for(lambda: live_flows(d) == 0, 10, "flows to close")


API_FLOOD = r"""
import socket, sys, time
path, seconds = sys.argv[1], float(sys.argv[2])
end, n, bad = time.monotonic() + seconds, 0, 0
while time.monotonic() < end:
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(10)
        s.connect(path)
        s.sendall(b'{"execute": "list_hostfwd"}' if n % 3 else b'{"execute": "get_stats"}' if n % 5 else b'{garbage')
        s.shutdown(socket.SHUT_WR)
        reply = b""
        while chunk := s.recv(65536):
            reply += chunk
    bad += b'"error"' in reply
    n += 1
print(n, bad)
"""


@pytest.mark.timeout(180)
def test_api_flood_during_transfer(guest, start_slirpd, user_tmp):
    """A client hammering the API socket while the guest saturates the link:
    every request is answered, the transfer is intact (its rate is measured
    in bench/, not asserted here)."""
    import sys
    from conftest import as_user

    path = str(user_tmp / "api.sock")
    d = start_slirpd("--configure", f"--api-socket={path}", str(guest.pid))
    guest.slirpd = d
    size = 128 * MIB
    with Server(sink) as srv:
        sender = guest_popen(guest, GUEST_SEND, str(srv.port), str(size))
        flood = subprocess.run([sys.executable, "-c", API_FLOOD, path, "5"], capture_output=True,
                               text=True, timeout=60, **as_user(guest.user))
        out, err = sender.communicate(timeout=120)
        assert sender.returncode == 0, err
        srv.wait(1, timeout=60)
        assert not srv.errors and srv.results[0] == (size, out.split()[1])
    n, bad = map(int, flood.stdout.split())
    assert n > 50 and 0 < bad < n, flood.stdout      # the garbage ones got errors
    assert d.proc.poll() is None and "Traceback" not in d.stderr
