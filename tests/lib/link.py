"""The guest's end of an in-process data plane (a slirpd._dp instance).

A Link is one of two: "tap", a TAP device created here (unique name, IPv6
off so the kernel stays quiet on it) whose guest side is an AF_PACKET socket
bound to the device; or "pair", an AF_UNIX SOCK_SEQPACKET socket pair
standing in for the TAP descriptor, which keeps frame boundaries like a TAP
and also carries frames the kernel would refuse to send on an Ethernet
device (runts, oversized).  No mocks: the C core reads and writes real
descriptors.
"""

from __future__ import annotations

import fcntl
import ipaddress
import itertools
import os
import select
import socket
import struct
import time
from types import SimpleNamespace

from slirpd.dataplane import Dataplane
from slirpd.netmodel import slirp_network

from lib.frames import DNS4, DNS6, GUEST4, GW4, GW6, GW_MAC, arp_request

TUNSETIFF = 0x400454CA
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000
IFF_VNET_HDR = 0x4000
ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4
VNET_HDR_LEN = 12
MTU = 1500
TIMEOUT = 5.0

_tap_seq = itertools.count()


def make_cfg(**over):
    """A configuration object as Python's Config would give the data plane:
    slirp4netns's network model (netmodel.slirp_network()) from the knobs
    gw4, dns4, guest4, cidr, disable_host_loopback, disable_dns and, with
    enable_ipv6, net6, gw6 and dns6, unless network= gives one; the rest as
    given."""
    knobs = dict(gw4=GW4, dns4=DNS4, guest4=GUEST4, cidr=ipaddress.IPv4Network("10.0.2.0/24"),
                 disable_host_loopback=False, disable_dns=False, enable_ipv6=False, net6=None, gw6=None, dns6=None)
    knobs.update({k: over.pop(k) for k in list(over) if k in knobs})
    v6 = (ipaddress.IPv6Network(f"{knobs['net6']}/64"), knobs["gw6"], knobs["dns6"]) if knobs["enable_ipv6"] else ()
    network = slirp_network(knobs["gw4"], knobs["dns4"], knobs["cidr"], knobs["guest4"],
                            not knobs["disable_host_loopback"], not knobs["disable_dns"], *v6)
    cfg = dict(gw_mac=GW_MAC, network=network, mtu=MTU, vnet_hdr=False, dns_upstream4=None, outbound4=None)
    cfg.update(over)
    return SimpleNamespace(**cfg)


class Link:
    """The guest's end of the data plane's TAP descriptor."""

    def __init__(self, kind: str, vnet_hdr: bool = False, cfg_over=None):
        self.kind = kind
        self.name = None
        self.vnet = vnet_hdr and kind == "pair"
        self.last_vnet = None  # header of the last frame recv() returned
        if kind == "tap":
            self.name = f"dpt{os.getpid() % 100000}x{next(_tap_seq)}"
            fd = os.open("/dev/net/tun", os.O_RDWR | os.O_CLOEXEC)
            flags = IFF_TAP | IFF_NO_PI | (IFF_VNET_HDR if vnet_hdr else 0)
            fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", self.name.encode(), flags))
            try:
                with open(f"/proc/sys/net/ipv6/conf/{self.name}/disable_ipv6", "w") as f:
                    f.write("1")
            except OSError:
                pass
            from pyroute2 import IPRoute
            with IPRoute() as ipr:
                ipr.link("set", index=ipr.link_lookup(ifname=self.name)[0], state="up")
            self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
            self.sock.bind((self.name, ETH_P_ALL))
            self.sock.setblocking(False)
            self._drain()
        else:
            # with vnet_hdr, the pair carries a virtio-net header before each
            # frame, as a TAP with IFF_VNET_HDR would (send() adds a zero one)
            self.sock, dp_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            self.sock.setblocking(False)
            fd = os.dup(dp_end.fileno())
            dp_end.close()
        try:
            self.dp = Dataplane(make_cfg(vnet_hdr=vnet_hdr, **(cfg_over or {})), fd)
        except Exception:
            os.close(fd)
            raise

    def _drain(self):
        try:
            while True:
                self.sock.recv(65536)
        except BlockingIOError:
            pass

    def send(self, frame: bytes, vnet: bytes | None = None):
        """Send a frame; on a vnet pair behind vnet (default: a zero header)."""
        capture = os.environ.get("SLIRPD_FRAME_CAPTURE")
        if capture:  # seeds for the fuzzer: tests/fuzz/mkseeds.py
            name = os.environ["PYTEST_CURRENT_TEST"].split(" ")[0].split("::")[-1]
            with open(os.path.join(capture, "".join(c if c.isalnum() else "_" for c in name)), "ab") as f:
                f.write(struct.pack("!H", len(frame)) + frame)
        if self.vnet:
            frame = (vnet if vnet is not None else bytes(VNET_HDR_LEN)) + frame
        self.sock.send(frame)

    def recv(self, timeout: float = TIMEOUT) -> bytes | None:
        """Next frame from the data plane, or None after timeout."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            if not select.select([self.sock], [], [], left)[0]:
                continue
            if self.kind == "tap":
                data, addr = self.sock.recvfrom(65536)
                if addr[2] == PACKET_OUTGOING:
                    continue  # the kernel's own, or ours on the way to the TAP
                return data
            data = self.sock.recv(1 << 17)
            if self.vnet:
                self.last_vnet, data = data[:VNET_HDR_LEN], data[VNET_HDR_LEN:]
            return data

    def pump(self, frames: int):
        """Poll the data plane until it has read `frames` more frames."""
        target = self.dp.counters()["frames_in"] + frames
        deadline = time.monotonic() + TIMEOUT
        p = select.poll()
        p.register(self.dp.fileno(), select.POLLIN)
        while self.dp.counters()["frames_in"] < target:
            assert time.monotonic() < deadline, "data plane did not read the frames"
            p.poll(50)
            self.dp.poll()

    def exchange(self, frame: bytes) -> bytes | None:
        """Send frame, let the data plane handle it, return its answer (or None)."""
        return self.exchange_vnet(frame, None)

    def exchange_vnet(self, frame: bytes, vnet: bytes | None) -> bytes | None:
        """exchange(), with frame behind the virtio-net header vnet."""
        self.send(frame, vnet)
        self.pump(1)
        return self.recv()

    def assert_dropped(self, frame: bytes, reason: str, vnet: bytes | None = None):
        """frame (behind vnet, on a vnet pair) is dropped under reason, with
        no answer, and the dp still answers."""
        before = self.dp.counters()
        self.send(frame, vnet)
        self.send(arp_request(GW4))
        self.pump(2)
        reply = self.recv()
        assert reply is not None and reply[12:14] == b"\x08\x06", "sentinel ARP reply missing"
        after = self.dp.counters()
        changed = {k: after[k] - before[k] for k in after if after[k] != before[k]}
        assert changed.get(reason) == 1, changed
        drops = {k for k in changed if k.startswith("drop_")}
        assert drops == {reason}, changed
        assert changed.get("arp_replies") == 1 and changed.get("frames_in") == 2

    def close(self):
        self.dp.close()
        self.sock.close()
        if self.name:
            from pyroute2 import IPRoute
            with IPRoute() as ipr:
                for idx in ipr.link_lookup(ifname=self.name):
                    ipr.link("del", index=idx)


FWD_GUEST_PORT = 7000


def forwarded_link(**cfg_over) -> tuple[Link, socket.socket]:
    """A data plane on a socket pair (make_cfg()'s knobs in cfg_over) with
    a UDP socket on the sandbox's 127.0.0.1:<port> forwarded to the guest's
    port FWD_GUEST_PORT, the guest's MAC learnt.
    Return: (link, host socket); the caller closes both."""
    lk = Link("pair", cfg_over=cfg_over)
    host = socket.socket(socket.AF_INET, socket.SOCK_DGRAM | socket.SOCK_NONBLOCK)
    host.bind(("127.0.0.1", 0))
    lk.dp.add_forward(1, host.fileno(), "udp", GUEST4, FWD_GUEST_PORT)
    assert lk.exchange(arp_request(GW4)) is not None  # the guest's MAC is learnt
    return lk, host


def collect(link: Link, want: int, timeout: float = 5.0) -> list[bytes]:
    """Poll the data plane (sockets included) until want frames came back."""
    frames = []
    deadline = time.monotonic() + timeout
    while len(frames) < want and time.monotonic() < deadline:
        link.dp.poll()
        f = link.recv(timeout=0.02)
        if f is not None:
            frames.append(f)
    return frames


def delta(before: dict, after: dict) -> dict:
    """The counters that changed from before to after, and by how much."""
    return {k: after[k] - before[k] for k in after if after[k] != before[k]}


# make_cfg()'s knobs for a data plane with -6's defaults (fd00::/64)
V6_CFG = dict(enable_ipv6=True, net6=ipaddress.IPv6Address("fd00::"), gw6=ipaddress.IPv6Address(GW6),
              dns6=ipaddress.IPv6Address(DNS6), dns_upstream6=None, outbound6=None)
