"""A DNS responder on the host's loopback, and the one name it answers.

A tiny DNS responder (UDP and TCP, written here with struct) answers A and
AAAA queries for NAME; host_resolver() bind-mounts a resolv.conf naming it
over /etc/resolv.conf in the harness's private mount namespace.  No real
resolver is ever used.
"""

from __future__ import annotations

import contextlib
import os
import socket
import socketserver
import struct
import subprocess
import threading

NAME = "slirpd-test.example"
ADDR = "192.0.2.53"
ADDR6 = "2001:db8::53"
DIG = "dig @10.0.2.3 +time=2 +tries=1 +short"


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
