"""The DNS address (network+3) forwards to the host's first nameserver.

A tiny DNS responder (UDP and TCP, written here with struct) listens on the
sandbox's 127.0.0.1:53 and answers A queries for one name; a resolv.conf
naming 127.0.0.1 is bind-mounted over /etc/resolv.conf in the harness's
private mount namespace before slirpd starts.  No real resolver is ever used.
"""

from __future__ import annotations

import contextlib
import os
import socket
import socketserver
import struct
import subprocess
import threading

import pytest

from conftest import have

NAME = "slirpd-test.example"
ADDR = "192.0.2.53"
ADDR6 = "2001:db8::53"
DIG = "dig @10.0.2.3 +time=2 +tries=1 +short"

pytestmark = pytest.mark.skipif(not have("dig"), reason="dig (dnsutils) not installed")


def dns_answer(query: bytes) -> bytes | None:
    """Answer a query: ADDR for an A query of NAME, ADDR6 for an AAAA query of
    NAME, NXDOMAIN for other names (and no answer for other types)."""
    if len(query) < 12:
        return None
    ident, flags, qdcount = struct.unpack("!HHH", query[:6])
    if flags & 0x8000 or qdcount != 1:
        return None
    labels, pos = [], 12
    while pos < len(query) and query[pos]:
        n = query[pos]
        labels.append(query[pos + 1:pos + 1 + n].decode("ascii", "replace"))
        pos += 1 + n
    pos += 1
    if pos + 4 > len(query):
        return None
    qtype, qclass = struct.unpack("!HH", query[pos:pos + 4])
    question = query[12:pos + 4]
    found = ".".join(labels).lower() == NAME and qtype in (1, 28) and qclass == 1
    rflags = 0x8180 | (0 if ".".join(labels).lower() == NAME else 3)
    hdr = struct.pack("!HHHHHH", ident, rflags | (flags & 0x0100), 1, 1 if found else 0, 0, 0)
    answer = b""
    if found:
        rdata = socket.inet_aton(ADDR) if qtype == 1 else socket.inet_pton(socket.AF_INET6, ADDR6)
        answer = struct.pack("!HHHIH", 0xC00C, qtype, 1, 60, len(rdata)) + rdata
    return hdr + question + answer


class DnsServer:
    """UDP and TCP DNS on addr:53 (the sandbox's loopback: 127.0.0.1 as
    dnsmasq setups have, 127.0.0.53 as systemd-resolved hosts have, ::1),
    each in a thread; counts queries."""

    def __init__(self, addr: str = "127.0.0.1"):
        self.queries = 0
        server = self

        class Udp(socketserver.BaseRequestHandler):
            def handle(self):
                data, sock = self.request
                server.queries += 1
                reply = dns_answer(data)
                if reply:
                    sock.sendto(reply, self.client_address)

        class Tcp(socketserver.BaseRequestHandler):
            def handle(self):
                self.request.settimeout(5)
                try:
                    n = struct.unpack("!H", self.request.recv(2))[0]
                    data = b""
                    while len(data) < n:
                        chunk = self.request.recv(n - len(data))
                        if not chunk:
                            return
                        data += chunk
                except (OSError, struct.error):
                    return
                server.queries += 1
                reply = dns_answer(data)
                if reply:
                    self.request.sendall(struct.pack("!H", len(reply)) + reply)

        family = socket.AF_INET6 if ":" in addr else socket.AF_INET

        class UdpServer(socketserver.ThreadingUDPServer):
            address_family = family
            allow_reuse_address = True

        class TcpServer(socketserver.ThreadingTCPServer):
            address_family = family
            allow_reuse_address = True

        self.udp = UdpServer((addr, 53), Udp)
        self.tcp = TcpServer((addr, 53), Tcp)
        self.threads = [threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
                        for s in (self.udp, self.tcp)]
        for t in self.threads:
            t.start()

    def close(self):
        for s in (self.udp, self.tcp):
            s.shutdown()
            s.server_close()


@contextlib.contextmanager
def host_resolver(tmp_path, addr: str = "127.0.0.1", extra: str = ""):
    """A DnsServer on addr, and /etc/resolv.conf naming it (a bind mount in
    the harness's mount namespace, which guests made later see; undone when
    done)."""
    conf = tmp_path / "resolv.conf"
    conf.write_text(f"# slirpd tests\nnameserver {addr}\n{extra}")
    os.chmod(tmp_path, 0o755)
    os.chmod(conf, 0o644)
    subprocess.run(["mount", "--bind", str(conf), "/etc/resolv.conf"], check=True)
    srv = None
    try:
        srv = DnsServer(addr)
        yield srv
    finally:
        if srv:
            srv.close()
        subprocess.run(["umount", "/etc/resolv.conf"], check=True)


@pytest.fixture
def dns_server(tmp_path):
    """The responder, and /etc/resolv.conf naming it.  Use before starting
    slirpd: it reads resolv.conf at start."""
    with host_resolver(tmp_path) as srv:
        yield srv


@pytest.fixture
def dns_guest(dns_server, guest, start_slirpd):
    def start(*args):
        guest.slirpd = start_slirpd("--configure", *args, str(guest.pid))
        return guest
    return start


def test_dns_udp(dns_guest, dns_server):
    g = dns_guest()
    res = g.run(f"{DIG} {NAME} A")
    assert res.stdout.strip() == ADDR
    # NXDOMAIN comes through as well: an empty answer, dig succeeds
    assert g.run(f"{DIG} other.example A").stdout.strip() == ""
    assert dns_server.queries == 2
    c = g.slirpd.counters()
    assert c["flows_created"] >= 1 and c["drop_unreachable"] == 0


def test_dns_tcp(dns_guest, dns_server):
    g = dns_guest()
    res = g.run(f"{DIG} +tcp {NAME} A")
    assert res.stdout.strip() == ADDR


def test_dns_disabled(dns_guest, dns_server):
    g = dns_guest("--disable-dns")
    res = g.run(f"{DIG} {NAME} A", check=False)
    assert res.returncode != 0 and ADDR not in res.stdout
    assert dns_server.queries == 0
    assert g.slirpd.counters()["drop_unreachable"] >= 1


def test_dns_loopback_nameserver_with_disable_host_loopback(dns_guest, dns_server):
    """As slirp4netns 1.2.0 and 1.2.1 do, and as podman and rootlesskit
    (which pass --disable-host-loopback by default) depend on: the DNS
    address reaches a nameserver on the host's loopback under the flag,
    over UDP and TCP; the gateway and the DNS address's other ports do not
    reach the host's loopback."""
    g = dns_guest("--disable-host-loopback")
    assert g.run(f"{DIG} {NAME} A").stdout.strip() == ADDR
    assert g.run(f"{DIG} +tcp {NAME} A").stdout.strip() == ADDR
    assert dns_server.queries == 2
    probe = ("import socket, sys\n"
             "for addr in sys.argv[1:]:\n"
             "    host, port = addr.split(':')\n"
             "    try:\n"
             "        socket.create_connection((host, int(port)), timeout=3).close(); print('open')\n"
             "    except OSError:\n"
             "        print('closed')\n")
    with socket.create_server(("127.0.0.1", 0)) as listener:  # a host loopback service
        port = listener.getsockname()[1]
        # the responder's TCP port and the service through the gateway, the
        # service through the DNS address
        res = g.python(probe, "10.0.2.2:53", f"10.0.2.2:{port}", f"10.0.2.3:{port}")
    assert res.stdout.split() == ["closed"] * 3
    assert dns_server.queries == 2
