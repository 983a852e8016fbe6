"""IPv6 with -6: neighbour discovery, TCP, UDP, ICMPv6, DNS and forwarding.

Guests are real namespaces with slirpd attached by `-c -6`; the "host" is the
sandbox, which has ::1 and 2001:db8::1.  Servers run in threads of the test
process on the sandbox's ::1, which the guest reaches as fd00::2.  The frame
tests at the end drive a data plane directly (lib.link.Link) with
hand-made IPv6 frames: malformed ones must be counted drops, neighbour
discovery must answer exactly what it should.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import socket
import struct
import subprocess
import sys
import threading
import time

import pytest

from lib.api import ADD, api
from lib.dns import ADDR6, NAME
from lib.frames import DNS6, GUEST6, GUEST_MAC, GW6, GW_MAC, echo_request, eth, frame6, inet_csum, ip6
from lib.harness import SLIRPD, as_user, have, wait_for
from lib.link import Link, V6_CFG, delta, make_cfg
from lib.tcputil import GUEST_RECV, GUEST_SEND, sink, source

LL6 = "fe80::2"
MIB = 1 << 20


# --- helpers -------------------------------------------------------------------

class Server6:
    """A threaded TCP server on the sandbox's [::1]; handler(conn) -> result."""

    def __init__(self, handler, addr: str = "::1"):
        self.handler = handler
        self.sock = socket.socket(socket.AF_INET6)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((addr, 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.results: list = []
        self.errors: list = []
        self.peers: list = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, peer = self.sock.accept()
            except OSError:
                return
            self.peers.append(peer[0])
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        try:
            with conn:
                self.results.append(self.handler(conn))
        except Exception as e:  # recorded for the test
            self.errors.append(e)

    def wait(self, n: int, timeout: float = 60):
        wait_for(lambda: len(self.results) + len(self.errors) >= n, timeout, f"{n} served connections")

    def close(self):
        self.sock.close()


def guest6(guest) -> str:
    """The guest's global fd00::/64 address that -c configured (not SLAAC's)."""
    for link in guest.ip_json("-6", "addr", "show", "dev", "tap0"):
        for a in link.get("addr_info", []):
            if a.get("local", "").startswith("fd00:") and not a.get("dynamic") and a.get("scope") == "global":
                return a["local"]
    pytest.fail(f"no configured fd00::/64 address: {guest.run('ip -6 addr').stdout}")


@pytest.fixture
def v6_guest(guest, start_slirpd):
    """A guest with `slirpd -c -6`."""
    guest.slirpd = start_slirpd("--configure", "-6", str(guest.pid))
    return guest


# --- a real guest --------------------------------------------------------------

@pytest.mark.timeout(60)
def test_address_route_and_router_advertisement(v6_guest):
    g = v6_guest
    addr = ipaddress.IPv6Address(guest6(g))
    assert addr in ipaddress.IPv6Network("fd00::/64") and str(addr) not in (GW6, DNS6)
    routes = g.ip_json("-6", "route", "show", "default")
    assert any(r.get("gateway") in (GW6, LL6) and r.get("dev") == "tap0" for r in routes), routes
    # the kernel solicits a router once its link-local address passed DAD;
    # our advertisement gives it a SLAAC address in the prefix
    wait_for(lambda: g.slirpd.counters()["ndp_ra_sent"] >= 1, 20, "a router advertisement")

    def slaac():
        for link in g.ip_json("-6", "addr", "show", "dev", "tap0"):
            for a in link.get("addr_info", []):
                if a.get("dynamic") and a.get("local", "").startswith("fd00:"):
                    return a
        return None
    a = wait_for(slaac, 20, "a SLAAC address from the router advertisement")
    assert a["prefixlen"] == 64
    # duplicate address detection went through: nothing answered for the
    # guest's own addresses, none is tentative or failed
    wait_for(lambda: "tentative" not in g.run("ip -6 addr show dev tap0").stdout, 10, "DAD to finish")
    out = g.run("ip -6 addr show dev tap0").stdout
    assert "dadfailed" not in out, out
    c = g.slirpd.counters()
    assert c["drop_ndp_not_for_us"] >= 1     # the guest's DAD probes, unanswered
    assert c["drop_ndp_malformed"] == 0 and c["drop_ip6_malformed"] == 0


@pytest.mark.timeout(60)
def test_ping6_gateway_and_dns_address(v6_guest):
    g = v6_guest
    for target in (GW6, DNS6):
        res = g.run(f"ping -6 -c 3 -i 0.2 -W 2 {target}")
        assert " 0% packet loss" in res.stdout
    # the largest echo that fits the MTU
    res = g.run(f"ping -6 -c 1 -s 1452 -W 2 {GW6}")
    assert " 0% packet loss" in res.stdout
    assert g.slirpd.counters()["icmp_echo_replies"] >= 7


@pytest.mark.timeout(150)
def test_tcp_256mib_each_way_to_host_loopback(v6_guest):
    g = v6_guest
    total = 256 * MIB
    up = Server6(sink)
    down = Server6(source(total))
    try:
        out = g.python(GUEST_SEND.replace('"10.0.2.2"', f'"{GW6}"'), str(up.port), str(total), timeout=120)
        up.wait(1)
        assert not up.errors, up.errors
        n, digest = out.stdout.split()
        assert up.results[0] == (int(n), digest) and int(n) == total
        assert up.peers[0] == "::1"

        out = g.python(GUEST_RECV.replace('"10.0.2.2"', f'"{GW6}"'), str(down.port), timeout=120)
        down.wait(1)
        assert not down.errors, down.errors
        n, digest = out.stdout.split()
        assert down.results[0] == (int(n), digest) and int(n) == total
    finally:
        up.close()
        down.close()
    c = g.slirpd.counters()
    assert c["tcp_conn_opened"] >= 2 and c["drop_tcp_checksum"] == 0


UDP_ECHO_CLIENT = r"""
import os, socket, sys
port = int(sys.argv[1])
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.settimeout(5)
s.connect(("fd00::2", port))
for size in (1, 1232, 1452, 1453, 4000, 30000, 65527):
    data = os.urandom(size)
    s.send(data)
    got = s.recv(70000)
    assert got == data, (size, len(got))
print("ok")
"""


@pytest.mark.timeout(60)
def test_udp_echo_including_large_datagrams(v6_guest):
    g = v6_guest
    srv = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    srv.bind(("::1", 0))
    port = srv.getsockname()[1]
    stop = threading.Event()

    def echo():
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                data, peer = srv.recvfrom(70000)
            except socket.timeout:
                continue
            srv.sendto(data, peer)
    t = threading.Thread(target=echo, daemon=True)
    t.start()
    try:
        assert g.python(UDP_ECHO_CLIENT, str(port)).stdout.strip() == "ok"
    finally:
        stop.set()
        t.join(5)
        srv.close()
    c = g.slirpd.counters()
    assert c["ip6_reassembled"] >= 4      # the guest fragmented what is over 1452
    assert c["drop_frag_overlap"] == 0 and c["drop_udp_checksum"] == 0


@pytest.mark.timeout(60)
@pytest.mark.skipif(not have("dig"), reason="dig (dnsutils) not installed")
def test_aaaa_lookup_via_dns6(dns_server, guest, start_slirpd):
    guest.slirpd = start_slirpd("--configure", "-6", str(guest.pid))
    for tcp in ("", "+tcp"):
        res = guest.run(f"dig @{DNS6} {tcp} +time=2 +tries=1 +short {NAME} AAAA")
        assert res.stdout.strip() == ADDR6
    assert dns_server.queries == 2
    assert guest.slirpd.counters()["drop_unreachable"] == 0


GUEST_SERVER6 = r"""
import hashlib, json, os, socket, sys
port, down = int(sys.argv[1]), int(sys.argv[2])
ls = socket.socket(socket.AF_INET6)
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("::", port))
ls.listen(4)
print("ready", flush=True)
c, peer = ls.accept()
data = os.urandom(down)
c.sendall(data)
c.shutdown(socket.SHUT_WR)
rx = hashlib.sha256()
n = 0
while d := c.recv(1 << 16):
    rx.update(d)
    n += len(d)
print(json.dumps({"peer": peer[0], "rx": n, "rx_sha": rx.hexdigest(),
                  "tx_sha": hashlib.sha256(data).hexdigest()}), flush=True)
"""


@pytest.mark.timeout(90)
@pytest.mark.parametrize("host_addr", ["::1", "2001:db8::1"])
def test_forwarded_port_into_guest_v6_address(guest, start_slirpd, user_tmp, host_addr):
    path = str(user_tmp / "api.sock")
    guest.slirpd = start_slirpd("--configure", "-6", f"--api-socket={path}", str(guest.pid))
    addr = guest6(guest)
    guest.run(f"ping -6 -c 1 -W 2 {GW6}")  # slirpd learns the guest's MAC
    host_port, guest_port, down, up = 18760, 8086, 3 * MIB + 5, 2 * MIB + 7
    reply = json.loads(api(path, ADD % json.dumps({"proto": "tcp", "host_addr": host_addr, "host_port": host_port,
                                                   "guest_addr": addr, "guest_port": guest_port})))
    assert "return" in reply, reply
    entries = json.loads(api(path, '{"execute": "list_hostfwd"}'))["entries"]
    assert entries == [{"id": reply["return"]["id"], "proto": "tcp", "host_addr": host_addr,
                        "host_port": host_port, "guest_addr": addr, "guest_port": guest_port}]

    enter = ["nsenter", f"--target={guest.pid}", "--user", "--net", "--mount", "--preserve-credentials", "--"]
    proc = subprocess.Popen(enter + [sys.executable, "-c", GUEST_SERVER6, str(guest_port), str(down)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **as_user(guest.user))
    try:
        assert proc.stdout.readline().strip() == "ready"
        data = bytes(range(256)) * (up // 256) + b"x" * (up % 256)
        with socket.create_connection((host_addr, host_port), timeout=30) as s:
            threading.Thread(target=lambda: (s.sendall(data), s.shutdown(socket.SHUT_WR)), daemon=True).start()
            rx = hashlib.sha256()
            n = 0
            while d := s.recv(1 << 16):
                rx.update(d)
                n += len(d)
        report = json.loads(proc.stdout.readline())
        assert n == down and rx.hexdigest() == report["tx_sha"]
        assert report["rx"] == up and report["rx_sha"] == hashlib.sha256(data).hexdigest()
        # the host's loopback appears as the gateway, other clients as themselves
        assert report["peer"] == (GW6 if host_addr == "::1" else host_addr)
    finally:
        proc.kill()
        proc.wait(10)
    stats = json.loads(api(path, '{"execute": "get_stats"}'))["return"]
    assert json.dumps(stats).count('"connections": 1') >= 1


@pytest.mark.timeout(60)
def test_udp_forward_into_guest_v6_address(guest, start_slirpd, user_tmp):
    path = str(user_tmp / "api.sock")
    guest.slirpd = start_slirpd("--configure", "-6", f"--api-socket={path}", str(guest.pid))
    addr = guest6(guest)
    guest.run(f"ping -6 -c 1 -W 2 {GW6}")
    reply = json.loads(api(path, ADD % json.dumps({"proto": "udp", "host_addr": "::1", "host_port": 18761,
                                                   "guest_addr": addr, "guest_port": 8087})))
    assert "return" in reply, reply
    script = ("import socket\ns = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)\ns.bind(('::', 8087))\n"
              "print('ready', flush=True)\nd, peer = s.recvfrom(70000)\ns.sendto(d[::-1], peer)\nprint(peer[0])\n")
    enter = ["nsenter", f"--target={guest.pid}", "--user", "--net", "--mount", "--preserve-credentials", "--"]
    proc = subprocess.Popen(enter + [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                            **as_user(guest.user))
    try:
        assert proc.stdout.readline().strip() == "ready"
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.settimeout(10)
            s.sendto(b"0123456789" * 500, ("::1", 18761))
            assert s.recv(70000) == (b"0123456789" * 500)[::-1]
        assert proc.stdout.readline().strip() == GW6
    finally:
        proc.kill()
        proc.wait(10)


def test_api_refuses_v6_guest_addr_outside_prefix_or_without_v6(guest, start_slirpd, user_tmp):
    path = str(user_tmp / "api.sock")
    guest.slirpd = start_slirpd("--configure", f"--api-socket={path}", str(guest.pid))
    req = {"proto": "tcp", "host_addr": "::1", "host_port": 18762, "guest_addr": "fd00::100", "guest_port": 80}
    assert "bad arguments.guest_addr" in api(path, ADD % json.dumps(req))
    path6 = str(user_tmp / "api6.sock")
    g2 = start_slirpd("--configure", "-6", f"--api-socket={path6}", str(guest.pid), "tap1")
    for bad in ("2001:db8::5", GW6, DNS6, "fd00::"):
        req["guest_addr"] = bad
        assert "error" in json.loads(api(path6, ADD % json.dumps(req))), bad
    g2.stop()


@pytest.mark.timeout(60)
def test_disable_host_loopback_blocks_v6_loopback(guest, start_slirpd):
    guest.slirpd = start_slirpd("--configure", "-6", "--disable-host-loopback", str(guest.pid))
    srv = Server6(sink)
    try:
        res = guest.python("import socket\ntry:\n socket.create_connection(('fd00::2', %d), timeout=5)\n"
                           " print('connected')\nexcept OSError as e:\n print(type(e).__name__)" % srv.port)
        assert res.stdout.strip() in ("ConnectionRefusedError", "OSError", "TimeoutError"), res.stdout
        assert srv.peers == []
    finally:
        srv.close()
    assert guest.slirpd.counters()["drop_unreachable"] >= 1


@pytest.mark.timeout(60)
def test_without_v6_frames_dropped_and_nothing_advertised(net_guest):
    g = net_guest
    # the guest's kernel solicits routers and probes its link-local address
    wait_for(lambda: g.slirpd.counters()["drop_ipv6"] >= 1, 20, "IPv6 frames from the guest")
    c = g.slirpd.counters()
    assert c["ndp_ra_sent"] == 0 and c["ndp_na_sent"] == 0
    out = g.run("ip -6 addr show dev tap0").stdout
    assert "fd00:" not in out, out


def test_v6_options_accepted_by_cli(guest, start_slirpd):
    d = start_slirpd("--configure", "--enable-ipv6", "--outbound-addr6=2001:db8::1", str(guest.pid))
    assert d.proc.poll() is None
    bad = subprocess.run([sys.executable, "-m", "slirpd", "--outbound-addr6=no-such-if0", "-6", "1"],
                         capture_output=True, text=True)
    assert bad.returncode == 1 and "--outbound-addr6" in bad.stderr


@pytest.mark.timeout(60)
def test_outbound_addr6_is_the_source_the_host_sees(guest, start_slirpd):
    guest.slirpd = start_slirpd("--configure", "-6", "--outbound-addr6=2001:db8::1", str(guest.pid))
    srv = Server6(sink, addr="2001:db8::1")
    try:
        guest.python("import socket\ns = socket.create_connection(('2001:db8::1', %d), timeout=10)\n"
                     "s.sendall(b'hi')\ns.close()" % srv.port)
        srv.wait(1)
        assert srv.peers == ["2001:db8::1"] and srv.results == [(2, hashlib.sha256(b"hi").hexdigest())]
    finally:
        srv.close()


# --- frames --------------------------------------------------------------------

GUEST_LL = ipaddress.IPv6Address("fe80::ff:fe00:64")


def icmp6(type_: int, body: bytes, src=GUEST6, dst=GW6, code=0) -> bytes:
    msg = struct.pack("!BBH", type_, code, 0) + body
    pseudo = (ipaddress.IPv6Address(src).packed + ipaddress.IPv6Address(dst).packed +
              struct.pack("!IxxxB", len(msg), 58))
    c = inet_csum(pseudo + msg)
    return msg[:2] + struct.pack("!H", c) + msg[4:]


def echo6(payload=b"ping", src=GUEST6, dst=GW6) -> bytes:
    return icmp6(128, struct.pack("!HH", 0x77, 1) + payload, src=src, dst=dst)


def parse6(frame: bytes):
    """(src, dst, next header, hop limit, payload) of an IPv6 frame we got."""
    assert frame[12:14] == b"\x86\xdd" and frame[6:12] == GW_MAC
    ver, plen, nh, hops, src, dst = struct.unpack("!IHBB16s16s", frame[14:54])
    assert ver >> 28 == 6
    payload = frame[54:54 + plen]
    assert len(payload) == plen
    return ipaddress.IPv6Address(src), ipaddress.IPv6Address(dst), nh, hops, payload


def check_icmp6(src, dst, msg: bytes):
    pseudo = src.packed + dst.packed + struct.pack("!IxxxB", len(msg), 58)
    assert inet_csum(pseudo + msg) == 0, "bad ICMPv6 checksum"


@pytest.fixture
def link6():
    lk = Link("pair", cfg_over=V6_CFG)
    yield lk
    lk.close()


def test_frames_echo_to_gateway(link6):
    reply = link6.exchange(frame6(ip6(echo6(b"abc" * 20), 58)))
    assert reply[0:6] == GUEST_MAC
    src, dst, nh, hops, msg = parse6(reply)
    assert (str(src), dst, nh) == (GW6, GUEST6, 58)
    check_icmp6(src, dst, msg)
    assert msg[0] == 129 and msg[4:] == struct.pack("!HH", 0x77, 1) + b"abc" * 20


def test_frames_fragmented_echo_reassembled(link6):
    msg = echo6(bytes(range(256)) * 4)
    nh_frag = 44
    first, second = msg[:512], msg[512:]
    fh1 = struct.pack("!BBHI", 58, 0, 0 | 1, 0xABCD)
    fh2 = struct.pack("!BBHI", 58, 0, 512, 0xABCD)
    link6.send(frame6(ip6(fh1 + first, nh_frag)))
    link6.send(frame6(ip6(fh2 + second, nh_frag)))
    link6.pump(2)
    reply = link6.recv()
    src, dst, nh, hops, payload = parse6(reply)
    assert nh == 58 and payload[0] == 129 and payload[8:] == bytes(range(256)) * 4
    c = link6.dp.counters()
    assert c["ip6_fragments"] == 2 and c["ip6_reassembled"] == 1


def test_frames_neighbour_solicitation(link6):
    for target in (GW6, DNS6, LL6):
        t = ipaddress.IPv6Address(target)
        snm = ipaddress.IPv6Address("ff02::1:ff00:0") + (int(t) & 0xFFFFFF)
        ns = icmp6(135, b"\0" * 4 + t.packed + b"\x01\x01" + GUEST_MAC, src=GUEST_LL, dst=snm)
        reply = link6.exchange(frame6(ip6(ns, 58, src=GUEST_LL, dst=snm, hops=255)))
        assert reply[0:6] == GUEST_MAC
        src, dst, nh, hops, msg = parse6(reply)
        assert (src, dst, nh, hops) == (t, GUEST_LL, 58, 255)
        check_icmp6(src, dst, msg)
        assert msg[0] == 136 and msg[4] & 0xE0 == 0xE0 and msg[8:24] == t.packed
        assert msg[24:32] == b"\x02\x01" + GW_MAC
    assert link6.dp.counters()["ndp_na_sent"] == 3


def test_frames_dad_probe_unanswered(link6):
    """The guest's duplicate address detection for its own address: no answer."""
    t = GUEST6
    snm = ipaddress.IPv6Address("ff02::1:ff00:100")
    ns = icmp6(135, b"\0" * 4 + t.packed, src="::", dst=snm)
    link6.assert_dropped(frame6(ip6(ns, 58, src="::", dst=snm, hops=255)), "drop_ndp_not_for_us")
    # a DAD probe for our own address is answered to all nodes: it is taken
    ns = icmp6(135, b"\0" * 4 + ipaddress.IPv6Address(GW6).packed, src="::", dst=snm)
    reply = link6.exchange(frame6(ip6(ns, 58, src="::", dst=snm, hops=255)))
    src, dst, nh, hops, msg = parse6(reply)
    assert reply[0:6] == b"\x33\x33\0\0\0\x01" and str(dst) == "ff02::1" and msg[4] & 0x40 == 0


def test_frames_router_solicitation(link6):
    rs = icmp6(133, b"\0" * 4 + b"\x01\x01" + GUEST_MAC, src=GUEST_LL, dst="ff02::2")
    reply = link6.exchange(frame6(ip6(rs, 58, src=GUEST_LL, dst="ff02::2", hops=255)))
    src, dst, nh, hops, msg = parse6(reply)
    assert (str(src), dst, hops) == (LL6, GUEST_LL, 255)
    check_icmp6(src, dst, msg)
    assert msg[0] == 134 and struct.unpack("!H", msg[6:8])[0] > 0
    opts, off = {}, 16
    while off < len(msg):
        opts[msg[off]] = msg[off:off + msg[off + 1] * 8]
        off += msg[off + 1] * 8
    assert opts[1][2:8] == GW_MAC
    assert struct.unpack("!I", opts[5][4:8])[0] == 1500
    assert opts[3][2] == 64 and opts[3][3] & 0xC0 == 0xC0 and opts[3][16:32] == ipaddress.IPv6Address("fd00::").packed
    assert opts[25][8:24] == ipaddress.IPv6Address(DNS6).packed
    assert msg[5] == 0  # slirp4netns's: neither Managed nor Other-configuration


def test_frames_no_ndp():
    """pasta's --no-ndp: neither a neighbour nor a router solicitation is
    answered, each a counted drop, and nothing is advertised later."""
    network = make_cfg(**V6_CFG).network._replace(no_ndp=True)
    lk = Link("pair", cfg_over={**V6_CFG, "network": network})
    try:
        t = ipaddress.IPv6Address(GW6)
        snm = ipaddress.IPv6Address("ff02::1:ff00:0") + (int(t) & 0xFFFFFF)
        ns = icmp6(135, b"\0" * 4 + t.packed + b"\x01\x01" + GUEST_MAC, src=GUEST_LL, dst=snm)
        lk.assert_dropped(frame6(ip6(ns, 58, src=GUEST_LL, dst=snm, hops=255)), "drop_ndp_off")
        rs = icmp6(133, b"\0" * 4 + b"\x01\x01" + GUEST_MAC, src=GUEST_LL, dst="ff02::2")
        lk.assert_dropped(frame6(ip6(rs, 58, src=GUEST_LL, dst="ff02::2", hops=255)), "drop_ndp_off")
        assert lk.dp.timeout() is None and lk.dp.counters()["ndp_ra_sent"] == 0  # no advertisement armed
    finally:
        lk.close()


def test_frames_no_icmp():
    """pasta's --no-icmp: echo requests, IPv4 and IPv6, to the gateway too,
    are counted drops; neighbour discovery is still answered."""
    network = make_cfg(**V6_CFG).network._replace(no_icmp=True)
    lk = Link("pair", cfg_over={**V6_CFG, "network": network})
    try:
        lk.assert_dropped(echo_request(b"abc"), "drop_icmp_off")
        lk.assert_dropped(frame6(ip6(echo6(), 58)), "drop_icmp_off")
        t = ipaddress.IPv6Address(GW6)
        snm = ipaddress.IPv6Address("ff02::1:ff00:0") + (int(t) & 0xFFFFFF)
        ns = icmp6(135, b"\0" * 4 + t.packed + b"\x01\x01" + GUEST_MAC, src=GUEST_LL, dst=snm)
        assert lk.exchange(frame6(ip6(ns, 58, src=GUEST_LL, dst=snm, hops=255))) is not None
        assert lk.dp.counters()["ndp_na_sent"] == 1
    finally:
        lk.close()


def dhcpv6_solicit(dst="ff02::1:2") -> bytes:
    """A DHCPv6 SOLICIT from the guest's link-local address, the UDP
    checksum right, to dst (by default All_DHCP_Relay_Agents_and_Servers)."""
    msg = b"\x01\x12\x34\x56" + struct.pack("!HH", 1, 10) + b"\0\x03\0\x01" + GUEST_MAC
    length = 8 + len(msg)
    pseudo = GUEST_LL.packed + ipaddress.IPv6Address(dst).packed + struct.pack("!IxxxB", length, 17)
    csum = inet_csum(pseudo + struct.pack("!HHHH", 546, 547, length, 0) + msg) or 0xFFFF
    return frame6(ip6(struct.pack("!HHHH", 546, 547, length, csum) + msg, 17, src=GUEST_LL, dst=dst, hops=1))


def router_advertisement(lk: Link) -> bytes:
    """The router advertisement a router solicitation gets."""
    rs = icmp6(133, b"\0" * 4, src=GUEST_LL, dst="ff02::2")
    src, dst, nh, hops, msg = parse6(lk.exchange(frame6(ip6(rs, 58, src=GUEST_LL, dst="ff02::2", hops=255))))
    assert msg[0] == 134
    return msg


def test_frames_dhcpv6_to_control_plane():
    """pasta's model (GuestNetwork.dhcpv6): a SOLICIT to ff02::1:2 is
    queued for Python whole (dhcpv6.py), behind our MAC and the guest's;
    one to our link-local address is not (pasta's dhcpv6.c wants
    multicast): it is UDP to a closed port.  Router advertisements set Managed (ra_managed), not Other."""
    network = make_cfg(**V6_CFG).network._replace(dhcpv6=True, ra_managed=True)
    lk = Link("pair", cfg_over={**V6_CFG, "network": network})
    try:
        solicit = dhcpv6_solicit()
        before = lk.dp.counters()
        lk.send(solicit)
        lk.pump(1)
        changed = delta(before, lk.dp.counters())
        assert changed.get("ctl_frames") == 1 and not [k for k in changed if k.startswith("drop_")], changed
        assert lk.dp.ctl_frames() == [GW_MAC + GUEST_MAC + solicit[12:]]
        before = lk.dp.counters()
        lk.send(dhcpv6_solicit(dst=LL6))
        lk.pump(1)
        assert "ctl_frames" not in delta(before, lk.dp.counters()) and lk.dp.ctl_frames() == []
        assert parse6(lk.recv())[4][0] == 1  # UDP to us: port unreachable
        assert router_advertisement(lk)[5] == 0x80
    finally:
        lk.close()


def test_frames_dhcpv6_not_served_in_slirp4netns_model(link6):
    """slirp4netns's model (libslirp has no DHCPv6): a SOLICIT is UDP like
    any other, nothing is queued."""
    before = link6.dp.counters()
    link6.send(dhcpv6_solicit())
    link6.pump(1)
    assert "ctl_frames" not in delta(before, link6.dp.counters()) and link6.dp.ctl_frames() == []


def test_frames_unsolicited_router_advertisements_after_solicitation():
    """Nothing before the guest solicits; then advertisements to all nodes
    repeat (every ra_interval_ms, shortened here), so they never expire."""
    lk = Link("pair", cfg_over={**V6_CFG, "ra_interval_ms": 200})
    try:
        assert lk.dp.timeout() is None
        rs = icmp6(133, b"\0" * 4, src=GUEST_LL, dst="ff02::2")
        assert lk.exchange(frame6(ip6(rs, 58, src=GUEST_LL, dst="ff02::2", hops=255))) is not None
        assert 0 < lk.dp.timeout() <= 0.2
        for _ in range(2):
            time.sleep(lk.dp.timeout())
            lk.dp.poll()
            src, dst, nh, hops, msg = parse6(lk.recv())
            assert (str(src), str(dst), msg[0]) == (LL6, "ff02::1", 134)
            check_icmp6(src, dst, msg)
        assert lk.dp.counters()["ndp_ra_sent"] == 3
    finally:
        lk.close()


def dstopts(nh: int, length8: int = 0) -> bytes:
    return bytes([nh, length8]) + b"\x01\x04\0\0\0\0" + b"\0" * (8 * length8)


MALFORMED6 = {
    "truncated": (eth(0x86DD, ip6(echo6(), 58)[:39]), "drop_ip6_malformed"),
    "bad_version": (frame6(ip6(echo6(), 58, version=4)), "drop_ip6_malformed"),
    "payload_length_too_big": (frame6(ip6(echo6(), 58, plen=200)), "drop_ip6_malformed"),
    "payload_length_zero": (frame6(ip6(echo6(), 58, plen=0)), "drop_ip6_malformed"),
    "source_multicast": (frame6(ip6(echo6(), 58, src="ff02::1")), "drop_ip6_martian"),
    "source_loopback": (frame6(ip6(echo6(), 58, src="::1")), "drop_ip6_martian"),
    "source_ours": (frame6(ip6(echo6(), 58, src=GW6)), "drop_ip6_martian"),
    "dest_v4_mapped": (frame6(ip6(b"\0" * 8, 17, dst="::ffff:127.0.0.1")), "drop_ip6_martian"),
    "tcp_from_unspecified": (frame6(ip6(b"\0" * 20, 6, src="::")), "drop_ip6_martian"),
    "too_many_ext_headers": (frame6(ip6(b"".join(dstopts(60) for _ in range(9)) + echo6(), 60)),
                             "drop_ip6_ext_limit"),
    "ext_header_overruns": (frame6(ip6(dstopts(58, 5)[:16], 60)), "drop_ip6_ext_header"),
    "hop_by_hop_not_first": (frame6(ip6(dstopts(0) + dstopts(58) + echo6(), 60)), "drop_ip6_ext_header"),
    "routing_segments_left": (frame6(ip6(bytes([58, 0, 0, 1]) + b"\0" * 4 + echo6(), 43)),
                              "drop_ip6_ext_header"),
    "no_next_header": (frame6(ip6(b"\0" * 8, 59)), "drop_ip6_proto"),
    "bad_fragment_length": (frame6(ip6(struct.pack("!BBHI", 58, 0, 1, 5) + b"\0" * 13, 44)),
                            "drop_ip6_fragment"),
    "icmp6_checksum": (frame6(ip6(echo6()[:2] + b"\0\0" + echo6()[4:], 58)), "drop_icmp_checksum"),
    "ndp_hop_limit": (frame6(ip6(icmp6(133, b"\0" * 4, src=GUEST_LL, dst="ff02::2"), 58, src=GUEST_LL,
                                 dst="ff02::2", hops=64)), "drop_ndp_malformed"),
    "ndp_zero_option": (frame6(ip6(icmp6(133, b"\0" * 4 + b"\x01\x00" + b"\0" * 6, src=GUEST_LL,
                                         dst="ff02::2"), 58, src=GUEST_LL, dst="ff02::2", hops=255)),
                        "drop_ndp_malformed"),
    "ndp_router_advert_from_guest": (frame6(ip6(icmp6(134, b"\0" * 12, src=GUEST_LL, dst="ff02::1"), 58,
                                                src=GUEST_LL, dst="ff02::1", hops=255)), "drop_ndp_type"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED6))
def test_frames_malformed_v6_counted(link6, case):
    frame, reason = MALFORMED6[case]
    link6.assert_dropped(frame, reason)


def test_frames_looping_ext_headers_bounded(link6):
    """A chain of destination options as long as the frame allows: dropped
    after DP_IP6_EXT_MAX headers, whatever follows."""
    chain = b"".join(dstopts(60) for _ in range(180))
    link6.assert_dropped(frame6(ip6(chain, 60)), "drop_ip6_ext_limit")


def test_frames_without_v6_dropped_nothing_advertised():
    lk = Link("pair")
    try:
        rs = icmp6(133, b"\0" * 4, src=GUEST_LL, dst="ff02::2")
        lk.assert_dropped(frame6(ip6(rs, 58, src=GUEST_LL, dst="ff02::2", hops=255)), "drop_ipv6")
        lk.assert_dropped(frame6(ip6(echo6(), 58)), "drop_ipv6")
        assert lk.dp.counters()["ndp_ra_sent"] == 0
    finally:
        lk.close()


def test_frames_v6_forward_needs_v6(link6):
    sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    try:
        sock.bind(("::1", 0))
        sock.listen(1)
        link6.dp.add_forward(1, sock.fileno(), "tcp", ipaddress.IPv6Address("fd00::100"), 80)
        link6.dp.remove_forward(1)
        lk = Link("pair")
        try:
            with pytest.raises(OSError):
                lk.dp.add_forward(1, sock.fileno(), "tcp", ipaddress.IPv6Address("fd00::100"), 80)
        finally:
            lk.close()
    finally:
        sock.close()


@pytest.mark.timeout(60)
@pytest.mark.skipif(not have("ping"), reason="ping (iputils-ping) not installed")
def test_ping6_beyond_gateway_through_ping_socket(v6_guest):
    """2001:db8::1 is the sandbox's own address: the echo goes out of an IPv6
    ping socket (ping_group_range set for the test, restored after)."""
    rng = "/proc/sys/net/ipv4/ping_group_range"
    old = open(rng).read().split()
    with open(rng, "w") as f:
        f.write("0 2147483647")
    try:
        res = v6_guest.run("ping -6 -c 3 -i 0.2 -W 2 2001:db8::1")
        assert "3 received" in res.stdout, res.stdout
        # a large one: fragments reassembled by slirpd, the reply fragmented
        res = v6_guest.run("ping -6 -c 1 -W 2 -s 20000 2001:db8::1")
        assert "1 received" in res.stdout, res.stdout
    finally:
        with open(rng, "w") as f:
            f.write(" ".join(old))
    c = v6_guest.slirpd.counters()
    assert c["ping_requests"] == 4 and c["ping_replies"] == 4 and c["ip6_reassembled"] >= 1


@pytest.mark.timeout(60)
def test_udp6_port_unreachable_and_unreachable_destination(v6_guest):
    """A closed port on the host's ::1 is ECONNREFUSED in the guest (the host's
    ICMPv6 error relayed); a destination the guest may not reach (another
    IPv4-compatible address) is refused at once with ICMPv6."""
    closed = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    closed.bind(("::1", 0))
    port = closed.getsockname()[1]
    closed.close()
    script = ("import errno, socket, sys\ns = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)\n"
              "s.setsockopt(socket.IPPROTO_IPV6, 25, 1)  # IPV6_RECVERR\n"
              "s.settimeout(3)\ns.connect((sys.argv[1], int(sys.argv[2])))\nfor _ in range(3):\n s.send(b'x')\n"
              " try:\n  s.recv(10)\n except OSError as e:\n  print(errno.errorcode.get(e.errno, e))\n  break\n")
    assert v6_guest.python(script, GW6, str(port)).stdout.strip() == "ECONNREFUSED"
    # ::a00:1 (IPv4-compatible, deprecated) goes through the default route;
    # address unreachable is not fatal for IPv6 UDP: only seen with RECVERR
    assert v6_guest.python(script, "::a00:1", "9").stdout.strip() == "EHOSTUNREACH"
    c = v6_guest.slirpd.counters()
    assert c["udp_icmp_relayed"] >= 1 and c["drop_unreachable"] >= 1 and c["icmp_unreach_sent"] >= 2


@pytest.mark.timeout(90)
def test_podman_argv_with_ipv6_reaches_any_v6_destination(guest, start_slirpd, user_tmp):
    """Podman's default invocation (minus seccomp, which is not built yet):
    --enable-ipv6 with the sandbox and --mtu=65520 against a bind-mounted
    netns.  The guest reaches the sandbox's 2001:db8::1 (not loopback, so
    allowed with --disable-host-loopback) over TCP with 16 MiB both ways."""
    nsfile = user_tmp / "netns"
    nsfile.write_text("")
    guest.run(f"mount --bind /proc/self/ns/net {nsfile}")
    enter = ["nsenter", f"--target={guest.pid}", "--user", "--mount", "--preserve-credentials", "--"]
    d = start_slirpd("--disable-host-loopback", "--mtu=65520", "--enable-sandbox", "--enable-ipv6", "-c",
                     "--netns-type=path", str(nsfile), "tap0", wrap=enter)
    total = 16 * MIB
    up, down = Server6(sink, addr="2001:db8::1"), Server6(source(total), addr="2001:db8::1")
    try:
        send = GUEST_SEND.replace('"10.0.2.2"', '"2001:db8::1"')
        n, digest = guest.python(send, str(up.port), str(total)).stdout.split()
        up.wait(1)
        assert up.results == [(total, digest)] and int(n) == total
        recv = GUEST_RECV.replace('"10.0.2.2"', '"2001:db8::1"')
        n, digest = guest.python(recv, str(down.port)).stdout.split()
        down.wait(1)
        assert down.results == [(total, digest)] and int(n) == total
    finally:
        up.close()
        down.close()
    # the advertisement's MTU option (the link's) leaves the guest's IPv6 MTU
    # at 65520: a smaller one would lower it
    wait_for(lambda: d.counters()["ndp_ra_sent"] >= 1, 20, "a router advertisement")
    assert guest.run("cat /proc/sys/net/ipv6/conf/tap0/mtu").stdout.strip() == "65520"


@pytest.mark.daemon
@pytest.mark.timeout(60)
def test_command_with_ipv6(plain_user):
    """`slirpd -6 -- COMMAND`: the command's namespace has IPv6 to the host and
    both DNS addresses in its resolv.conf."""
    res = subprocess.run([SLIRPD, "-6", "--", "sh", "-c", f"cat /etc/resolv.conf; ping -6 -c 1 -W 2 {GW6} >/dev/null"
                          " && echo PING6-OK"], capture_output=True, text=True, timeout=30, **as_user(plain_user))
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == ["nameserver 10.0.2.3", f"nameserver {DNS6}", "PING6-OK"]
