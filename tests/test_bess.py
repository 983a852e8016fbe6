"""--target-type=bess: a BESS peer (as User Mode Linux would be) exchanges
Ethernet frames over a UNIX seqpacket socket with the data plane."""

import os
import socket
import struct

import pytest

from lib.frames import inet_csum as csum
from lib.harness import wait_for
from lib.lockdown import assert_locked_down

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

    assert not os.path.exists(path)  # removed once the one peer is connected
    peer.close()  # UML going away ends the daemon
    assert d.proc.wait(timeout=10) == 0


@pytest.mark.parametrize("root", [False, True], ids=["plain user", "root"])
def test_bess_with_sandbox(start_slirpd, user_tmp, root):
    """--enable-sandbox works in BESS mode too (slirp4netns 1.2 manages it as
    root only; it used to be dropped here without a word): the daemon locks
    itself down once the peer is connected, in a user namespace of its own
    as a plain user, and serves; the socket file is gone by then, since no
    second peer is served."""
    path = user_tmp / "bess.sock"
    d = start_slirpd("--target-type=bess", "--enable-sandbox", str(path), **({"user": None} if root else {}))
    peer = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    peer.settimeout(5)
    peer.connect(str(path))
    wait_for(lambda: not path.exists(), 5, "the socket file to be removed")
    peer.send(arp_request("10.0.2.2"))
    assert peer.recv(65536)[12:14] == b"\x08\x06"
    assert sorted(os.listdir(f"/proc/{d.proc.pid}/root")) == ["etc", "run"]
    assert_locked_down(d.proc.pid)
    peer.send(echo_request(b"sandboxed" * 10))
    assert peer.recv(65536)[14 + 28:] == b"sandboxed" * 10
    peer.close()
    assert d.proc.wait(timeout=10) == 0, d.stderr


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
