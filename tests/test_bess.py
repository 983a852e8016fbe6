"""--target-type=bess: a BESS peer (as User Mode Linux would be) exchanges
Ethernet frames over a UNIX seqpacket socket with the data plane."""

import os
import socket
import struct

from conftest import wait_for
from test_dataplane_frames import inet_csum as csum

GUEST_MAC = bytes.fromhex("020000000064")
GW_MAC = bytes.fromhex("52550a000202")


def arp_request(target: str) -> bytes:
    arp = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, GUEST_MAC, socket.inet_aton("10.0.2.100"),
                      b"\0" * 6, socket.inet_aton(target))
    return b"\xff" * 6 + GUEST_MAC + b"\x08\x06" + arp


def echo_request(payload: bytes) -> bytes:
    icmp = struct.pack("!BBHHH", 8, 0, 0, 0x1234, 1) + payload
    icmp = icmp[:2] + struct.pack("!H", csum(icmp)) + icmp[4:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(icmp), 1, 0x4000, 64, 1, 0,
                     socket.inet_aton("10.0.2.100"), socket.inet_aton("10.0.2.2"))
    ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
    return GW_MAC + GUEST_MAC + b"\x08\x00" + ip + icmp


def test_bess_peer_exchanges_frames(start_slirpd, user_tmp):
    path = str(user_tmp / "bess.sock")
    d = start_slirpd("--target-type=bess", path)  # ready once listening
    peer = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    peer.settimeout(5)
    peer.connect(path)

    peer.send(arp_request("10.0.2.2"))
    reply = peer.recv(65536)
    assert reply[12:14] == b"\x08\x06"
    assert reply[6:12] == GW_MAC
    assert reply[14 + 14:14 + 18] == socket.inet_aton("10.0.2.2")  # sender protocol address

    peer.send(echo_request(b"bess" * 100))
    reply = peer.recv(65536)
    assert reply[12:14] == b"\x08\x00"
    assert reply[14 + 20] == 0  # echo reply
    assert reply[14 + 28:] == b"bess" * 100

    peer.close()  # UML going away ends the daemon, which removes its socket
    assert d.proc.wait(timeout=10) == 0
    assert not os.path.exists(path)


def test_bess_sigterm_before_peer(start_slirpd, user_tmp):
    path = str(user_tmp / "bess.sock")
    d = start_slirpd("--target-type=bess", path)
    assert os.path.exists(path)
    assert d.stop() == 0
    wait_for(lambda: not os.path.exists(path), 5, "the socket to be removed")


def test_bess_path_not_a_socket(start_slirpd, user_tmp):
    path = user_tmp / "file"
    path.write_text("x")
    d = start_slirpd("--target-type=bess", str(path), ready=False)
    assert d.proc.wait(timeout=10) == 1
    assert "exists and is not a socket" in d.stderr
    assert path.read_text() == "x"
