"""Host sockets against their budget (csrc/flow.c, Host sockets; slirpd/fdlimit.py).

- in-process, a slirpd._dp instance on a socket pair (lib.link's
  "pair" link) with a small sock_budget: the order in which idle UDP flows are
  recycled, what is refused when no flow is idle (a datagram and an echo
  request are counted drops, a SYN gets a RST), the forwards' reserve, a
  listener that pauses instead of spinning and accepts again once a flow can
  be recycled, and EMFILE from the kernel without a budget;
- a real daemon: the soft RLIMIT_NOFILE raised to the hard one, the budget it
  computes, Python's own descriptors within its reserve, and a `-- COMMAND`
  that keeps the caller's soft limit;
- the theory comments of the files involved name only constants that exist.

The recycling tests wait DP_SOCK_RECYCLE_IDLE_MS (and a margin) where a flow
must be idle: the data plane only ever recycles a flow idle that long, so
waiting longer cannot change the outcome.
"""

from __future__ import annotations

import re
import select
import socket
import struct
import time
from pathlib import Path

import pytest

from slirpd.dataplane import NOTICE_SOCK_SHORT
from lib.frames import GUEST4, GW4, echo_request, eth, inet_csum, ip4, tcp_flags, udp
from lib.harness import as_user, slirpd_argv, wait_for
from lib.link import Link, collect, delta
from lib.sockets import CSRC, PAUSE, RECYCLE_IDLE, Sink, fill_share, limit, send_udp


@pytest.fixture
def sink():
    s = Sink()
    yield s
    s.close()


def budget_link(budget: int) -> Link:
    return Link("pair", cfg_over={"sock_budget": budget})


@pytest.fixture
def listener():
    """A TCP socket listening on 127.0.0.1."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(8)
    yield s
    s.close()


def syn(dport: int, sport: int = 45000) -> bytes:
    """A SYN from the guest to the gateway's dport (checksum right)."""
    seg = struct.pack("!HHIIBBHHH", sport, dport, 1000, 0, 5 << 4, 0x02, 65535, 0, 0)
    pseudo = GUEST4.packed + GW4.packed + struct.pack("!BBH", 0, 6, len(seg))
    c = inet_csum(pseudo + seg)
    return eth(0x0800, ip4(seg[:16] + struct.pack("!H", c) + seg[18:], proto=6))


def tcp_sport(frame: bytes) -> int:
    """The source port of a TCP segment to the guest."""
    return struct.unpack("!H", frame[34:36])[0]


# --- in-process ----------------------------------------------------------------

def test_budget_shares():
    """The forwards' reserve is an eighth of the budget, DP_SOCK_FWD_RESERVE at most."""
    for budget, guest_max in ((8, 7), (16, 14), (928, 864), (4000, 4000 - limit("DP_SOCK_FWD_RESERVE"))):
        lk = budget_link(budget)
        try:
            assert lk.dp.sockets() == {"budget": budget, "guest_max": guest_max, "guest": 0, "forwards": 0,
                                       "paused_listeners": 0, "degraded": False}
        finally:
            lk.close()


def test_recycles_least_recently_used_idle_flow(sink):
    """Budget 8: the guest's flows may hold 7 sockets.  Seven UDP flows, the
    first used again last; once idle, a new flow takes the socket of the least
    recently used one (the second), not the first.  The recycled flow's next
    datagram opens it again, from a new host port, recycling the third."""
    lk = budget_link(8)
    try:
        fill_share(lk, sink, 7)
        send_udp(lk, b"a0 again", 41000, sink.port)
        lk.pump(1)
        first = sink.take(8)
        assert first[b"a0"] == first[b"a0 again"]
        assert len(set(first.values())) == 7
        assert lk.dp.sockets()["guest"] == 7 and lk.dp.sockets()["degraded"]

        time.sleep(RECYCLE_IDLE + 0.2)
        before = lk.dp.counters()
        send_udp(lk, b"new", 41100, sink.port)
        lk.pump(1)
        d = delta(before, lk.dp.counters())
        assert (d.get("flows_recycled"), d.get("flows_created"), d.get("flows_closed")) == (1, 1, 1), d
        assert not [k for k in d if k.startswith("drop_") or k.startswith("sock_")], d
        send_udp(lk, b"b0", 41000, sink.port)  # the first: kept
        send_udp(lk, b"b1", 41001, sink.port)  # the second: recycled, reopened
        lk.pump(2)
        again = sink.take(3)
        assert again[b"b0"] == first[b"a0"]
        assert again[b"b1"] not in first.values()
        c = lk.dp.counters()
        assert c["flows_recycled"] == 2 and c["sock_refused"] == 0 and c["drop_udp_socket"] == 0
        send_udp(lk, b"b2", 41002, sink.port)  # the third went for b1's socket
        lk.pump(1)
        assert sink.take(1)[b"b2"] not in first.values()
        assert lk.dp.counters()["flows_recycled"] == 3
        assert lk.dp.sockets()["guest"] == 7
        # the flows by state and by reason closed, as get_stats reports them
        states = lk.dp.flow_states()
        assert states["UDP_ST_ONE_WAY"] == 7 and sum(states.values()) == 7, states  # a sink: no answer
        closed = lk.dp.flows_closed()
        assert closed["FLOW_CLOSE_RECYCLED"] == 3 and sum(closed.values()) == 3, closed
    finally:
        lk.close()


def test_nothing_idle_refused(sink, listener):
    """With the guest's share used up by flows active within
    DP_SOCK_RECYCLE_IDLE_MS, nothing is recycled: a new UDP flow and an echo
    request are counted drops, a SYN gets a RST."""
    lk = budget_link(8)
    try:
        fill_share(lk, sink, 7)
        sink.take(7)

        before = lk.dp.counters()
        lk.assert_dropped(eth(0x0800, ip4(udp(b"x", 41200, sink.port), proto=17)), "drop_udp_socket")
        lk.assert_dropped(echo_request(b"ping", dst="198.51.100.1"), "drop_ping_socket")
        reply = lk.exchange(syn(listener.getsockname()[1]))
        assert reply is not None and tcp_flags(reply) & 0x04, "no RST for the SYN"
        d = delta(before, lk.dp.counters())
        assert d["sock_refused"] == 3 and d["drop_tcp_socket"] == 1 and d["tcp_rst_sent"] == 1, d
        assert "flows_recycled" not in d and "sock_no_fd" not in d, d
        assert lk.dp.sockets()["guest"] == 7 and lk.dp.sockets()["degraded"]
        assert lk.dp.notices() & NOTICE_SOCK_SHORT  # once
        assert not lk.dp.notices() & NOTICE_SOCK_SHORT
    finally:
        lk.close()


def test_guest_syn_recycles_idle_flow(sink, listener):
    """With the guest's share used up by idle UDP flows, a guest SYN recycles
    the least recently used one and connects (SYN-ACK)."""
    lk = budget_link(8)
    try:
        fill_share(lk, sink, 7)
        time.sleep(RECYCLE_IDLE + 0.2)
        lk.send(syn(listener.getsockname()[1]))
        frames = collect(lk, 1)
        assert frames and tcp_flags(frames[0]) == 0x12, "no SYN-ACK"
        c = lk.dp.counters()
        assert c["flows_recycled"] == 1 and c["tcp_conn_opened"] == 1 and c["sock_refused"] == 0
        assert lk.dp.sockets()["guest"] == 7
    finally:
        lk.close()


def test_forward_reserve_and_listener_pause(sink, listener):
    """Budget 16: the guest's flows may hold 14, the listener and accepted
    connections the rest.  With the guest's share used up, a host client of a
    forwarded port is still accepted; the next finds the budget used up and no
    idle flow: the listener leaves epoll (the data plane's epoll set is not
    readable although a connection waits) instead of spinning, and accepts it
    once an idle flow can be recycled."""
    lk = budget_link(16)
    clients = []
    try:
        listener.setblocking(False)
        lk.dp.add_forward(1, listener.fileno(), "tcp", GUEST4, 8080)
        fill_share(lk, sink, 15)
        s = lk.dp.sockets()
        assert (s["guest"], s["forwards"]) == (14, 1)
        assert lk.dp.counters()["drop_udp_socket"] == 1

        for _ in range(2):
            c = socket.socket()
            c.setblocking(False)
            c.connect_ex(listener.getsockname())
            clients.append(c)
        frames = collect(lk, 1)
        assert frames and tcp_flags(frames[0]) == 0x02, "no SYN to the guest for the first client"
        wait_for(lambda: lk.dp.poll() >= 0 and lk.dp.counters()["fwd_accept_paused"] == 1, 5, "the pause")
        c = lk.dp.counters()
        assert c["fwd_tcp_accepted"] == 1 and c["sock_refused"] == 2 and c["flows_recycled"] == 0
        assert lk.dp.sockets()["paused_listeners"] == 1 and lk.dp.sockets()["degraded"]
        assert not select.select([lk.dp.fileno()], [], [], 0)[0], "the paused listener still wakes the data plane"

        time.sleep(max(RECYCLE_IDLE, PAUSE) + 0.2)

        def second_client_syn() -> bool:  # the first client's SYN is retransmitted meanwhile
            return any(tcp_flags(f) == 0x02 and tcp_sport(f) != tcp_sport(frames[0])
                       for f in collect(lk, 1, timeout=0.1))

        wait_for(second_client_syn, 5, "a SYN to the guest for the second client")
        c = lk.dp.counters()
        assert c["fwd_tcp_accepted"] == 2 and c["flows_recycled"] == 1 and c["fwd_accept_paused"] == 1
        assert lk.dp.sockets()["paused_listeners"] == 0
        assert lk.dp.sockets() | {"degraded": None} == {"budget": 16, "guest_max": 14, "guest": 13, "forwards": 3,
                                                          "paused_listeners": 0, "degraded": None}
        lk.dp.remove_forward(1)
        assert lk.dp.sockets()["forwards"] == 2
    finally:
        for c in clients:
            c.close()
        lk.close()


# argv: tests directory.  A data plane without a budget in a process of its
# own (whose descriptors nothing else opens or closes meanwhile), under a
# descriptor limit 4 above its highest open descriptor: as many UDP flows as
# there are free descriptor numbers below it, and two more; after
# DP_SOCK_RECYCLE_IDLE_MS, one more.  Prints the counters after each step
EMFILE_SCRIPT = r"""
import json, os, resource, sys, time
sys.path.insert(0, sys.argv[1])
from lib.link import Link
from lib.sockets import RECYCLE_IDLE, Sink, fd_open, fill_share, send_udp
sink, lk = Sink(), Link("pair")
top = max(int(n) for n in os.listdir("/proc/self/fd")) + 4
room = sum(1 for fd in range(top) if not fd_open(fd))
resource.setrlimit(resource.RLIMIT_NOFILE, (top, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
fill_share(lk, sink, room + 2)
print(json.dumps({"room": room, "counters": lk.dp.counters(), "sockets": lk.dp.sockets()}))
time.sleep(RECYCLE_IDLE + 0.2)
send_udp(lk, b"new", 41100, sink.port)
lk.pump(1)
got = sink.take(room + 1)
print(json.dumps({"counters": lk.dp.counters(), "new": b"new" in got}))
"""


def test_emfile_without_budget_recycles():
    """No budget, but a descriptor limit: socket() says EMFILE (counted,
    the datagram dropped) while every flow is fresh, and recycles the least
    recently used flow once it is idle."""
    import json
    import subprocess
    import sys

    here = str(Path(__file__).resolve().parent)
    res = subprocess.run([sys.executable, "-c", EMFILE_SCRIPT, here], capture_output=True, text=True, timeout=60,
                         cwd=here)  # not the source tree: its slirpd/ has no compiled part
    assert res.returncode == 0, res.stderr
    full, after = (json.loads(line) for line in res.stdout.splitlines())
    c = full["counters"]
    assert full["room"] >= 1
    assert (c["sock_no_fd"], c["sock_refused"], c["drop_udp_socket"], c["flows_recycled"]) == (2, 2, 2, 0), c
    assert full["sockets"]["guest"] == full["room"] and full["sockets"]["degraded"]
    c = after["counters"]
    assert (c["sock_no_fd"], c["sock_refused"], c["drop_udp_socket"], c["flows_recycled"]) == (3, 2, 2, 1), c
    assert after["new"]


# --- the daemon ----------------------------------------------------------------

def test_soft_limit_raised_and_budget(guest, start_slirpd, user_tmp):
    """Started with RLIMIT_NOFILE 256:4096, slirpd raises its soft limit to
    4096 and gives the data plane 4096 less fdlimit.CONTROL_RESERVE; its own
    descriptors (with -a, --pcap, --publish) stay within CONTROL_FDS."""
    from slirpd import fdlimit

    path = str(user_tmp / "api.sock")
    d = start_slirpd("--configure", f"--api-socket={path}", f"--pcap={user_tmp}/x.pcap", "--publish=18790:80",
                     str(guest.pid), wrap=("prlimit", "--nofile=256:4096", "--"))
    limits = Path(f"/proc/{d.proc.pid}/limits").read_text()
    assert re.search(r"^Max open files\s+4096\s+4096\s", limits, re.M), limits
    guest.run("ping -c 1 -W 2 10.0.2.2")
    s = d.counters()["sockets"]
    assert s["budget"] == 4096 - fdlimit.CONTROL_RESERVE and s["forwards"] == 1 and not s["degraded"]
    own = d.open_fds() - s["guest"] - s["forwards"]  # the listener is Python's, counted as a forward
    assert own <= fdlimit.CONTROL_FDS, own


@pytest.mark.daemon
def test_command_keeps_callers_soft_limit(plain_user):
    """`slirpd -- COMMAND` forks the command before raising its own limit:
    programs that use select() keep a soft limit of 1024 at most."""
    import subprocess

    res = subprocess.run(["prlimit", "--nofile=512:4096", "--", *slirpd_argv("--", "sh", "-c", "ulimit -Sn")],
                         capture_output=True, text=True, timeout=30, **as_user(plain_user))
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["512"]


# --- theory comments -----------------------------------------------------------

@pytest.mark.parametrize("name", ["flow.c", "udp.c", "icmp.c", "fwd.c", "dp.c", "splice.c", "arp.c", "ndp.c"])
def test_theory_comment_names_exist(name):
    """Every DP_ or FLOW_ constant the theory comment of a file names is
    defined in csrc/."""
    src = (CSRC / name).read_text()
    theory = src[:src.index("*/")]
    names = set(re.findall(r"\b((?:DP|FLOW)_[A-Z0-9_]+)\b", theory))
    defined = "".join(p.read_text() for p in CSRC.glob("*.[ch]"))
    for n in names:
        assert re.search(rf"(#define\s+{n}\b|\b{n}\s*[,=)])", defined), n
