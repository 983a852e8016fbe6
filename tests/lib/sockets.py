"""UDP flows from an in-process guest against the data plane's socket limits.

A Sink on the host's loopback records which host port each datagram came
from (so which flow carried it); fill_share() opens n flows through a Link.
The limits themselves are read from csrc/dp_limits.h.
"""

from __future__ import annotations

import os
import re
import select
import socket
import time

from lib.frames import eth, ip4, udp
from lib.harness import REPO
from lib.link import Link

CSRC = REPO / "csrc"


def limit(name: str) -> int:
    """A constant of csrc/dp_limits.h."""
    m = re.search(rf"#define\s+{name}\s+(\d+)", (CSRC / "dp_limits.h").read_text())
    return int(m.group(1))


RECYCLE_IDLE = limit("DP_SOCK_RECYCLE_IDLE_MS") / 1000
PAUSE = limit("DP_FWD_ACCEPT_PAUSE_MS") / 1000
SO_RCVBUFFORCE = 33  # <asm-generic/socket.h>; Python's socket module lacks it


class Sink:
    """A UDP socket on 127.0.0.1 (port 0: any) that keeps what arrives, up to
    16 MiB, for take(), and never answers, so that only the guest's datagrams
    make a flow recently used."""

    def __init__(self, port: int = 0):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 16 << 20)  # root: past rmem_max
        self.sock.bind(("127.0.0.1", port))
        self.port = self.sock.getsockname()[1]

    def take(self, n: int, timeout: float = 5.0) -> dict[bytes, int]:
        """The next n datagrams: payload -> the host port it came from."""
        got = {}
        deadline = time.monotonic() + timeout
        while len(got) < n:
            left = deadline - time.monotonic()
            assert left > 0 and select.select([self.sock], [], [], left)[0], f"got {len(got)} of {n}"
            data, peer = self.sock.recvfrom(2048)
            got[data] = peer[1]
        return got

    def close(self):
        self.sock.close()


def fill_share(lk: Link, sink: Sink, n: int):
    """n UDP flows from the guest (ports 41000 on) to sink, one datagram each."""
    for i in range(n):
        send_udp(lk, b"a%d" % i, 41000 + i, sink.port)
    lk.pump(n)


def send_udp(lk: Link, payload: bytes, sport: int, dport: int):
    lk.send(eth(0x0800, ip4(udp(payload, sport, dport), proto=17)))


def fd_open(fd: int) -> bool:
    """Whether fd is an open descriptor of this process."""
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True
