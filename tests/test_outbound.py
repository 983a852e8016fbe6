"""--outbound-addr: host sockets bind to that source before connecting, so a
host server sees it as the peer (an address, or an interface's address)."""

import socket
import subprocess
import threading

import pytest

EXTRA = "198.51.100.7"


@pytest.fixture
def extra_address():
    subprocess.run(["ip", "addr", "add", f"{EXTRA}/24", "dev", "up0"], check=True)
    yield EXTRA
    subprocess.run(["ip", "addr", "del", f"{EXTRA}/24", "dev", "up0"], check=True)


def peer_seen_by_server(guest, connect_to: str) -> str:
    """Accept one connection on 198.51.100.1 from the guest; return its peer address."""
    with socket.socket() as srv:
        srv.bind(("198.51.100.1", 0))
        srv.listen()
        srv.settimeout(20)
        port = srv.getsockname()[1]
        peers = []

        def accept():
            conn, addr = srv.accept()
            peers.append(addr[0])
            conn.close()

        t = threading.Thread(target=accept)
        t.start()
        guest.python(f"import socket; socket.create_connection(('{connect_to}', {port}), timeout=10).close()")
        t.join(20)
        return peers[0]


@pytest.mark.parametrize("value", [EXTRA, "up0"])
def test_outbound_addr(guest, start_slirpd, extra_address, value):
    start_slirpd("-c", f"--outbound-addr={value}", str(guest.pid))
    expected = EXTRA if value == EXTRA else "198.51.100.1"  # up0's primary address
    assert peer_seen_by_server(guest, "198.51.100.1") == expected


def test_without_outbound_addr_kernel_chooses(guest, start_slirpd, extra_address):
    start_slirpd("-c", str(guest.pid))
    assert peer_seen_by_server(guest, "198.51.100.1") == "198.51.100.1"
