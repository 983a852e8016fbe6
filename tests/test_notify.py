"""systemd readiness: a NOTIFY_SOCKET the test binds itself receives READY=1
only once the guest can reach the gateway, STOPPING=1 on SIGTERM, and
WATCHDOG=1 pings when WATCHDOG_USEC asks for them."""

import os
import socket

import pytest


@pytest.fixture
def notify_socket(user_tmp, plain_user):
    path = str(user_tmp / "notify.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(path)
    os.chown(path, plain_user.pw_uid, plain_user.pw_gid)
    s.settimeout(10)
    yield path, s
    s.close()


def start_with_env(start_slirpd, env, *args):
    """start_slirpd with extra environment, readiness left to NOTIFY_SOCKET."""
    return start_slirpd(*args, ready=False, env=env)


def test_ready_after_guest_reaches_gateway_then_stopping(guest, start_slirpd, notify_socket):
    path, s = notify_socket
    d = start_with_env(start_slirpd, {"NOTIFY_SOCKET": path}, "-c", str(guest.pid))
    msg = s.recv(4096).decode()
    lines = msg.split("\n")
    assert lines[0] == "READY=1"
    assert lines[1].startswith("STATUS=serving tap0 of ")
    # READY=1 means configured and served: the very next ping must work
    assert guest.run("ping -c 1 -W 2 10.0.2.2", check=False).returncode == 0
    assert d.stop() == 0
    assert s.recv(4096).decode().split("\n")[0] == "STOPPING=1"


def test_abstract_notify_socket(guest, start_slirpd):
    name = f"slirpd-test-notify-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.bind("\0" + name)
        s.settimeout(10)
        start_with_env(start_slirpd, {"NOTIFY_SOCKET": "@" + name}, "-c", str(guest.pid))
        assert s.recv(4096).startswith(b"READY=1\n")


def test_watchdog_pings(guest, start_slirpd, notify_socket):
    path, s = notify_socket
    start_with_env(start_slirpd, {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "200000"},
                   "-c", str(guest.pid))
    assert s.recv(4096).startswith(b"READY=1")
    pings = [s.recv(4096) for _ in range(3)]
    assert pings == [b"WATCHDOG=1"] * 3


def test_ready_with_sandbox(guest, start_slirpd, notify_socket):
    path, s = notify_socket
    d = start_with_env(start_slirpd, {"NOTIFY_SOCKET": path},
                       "-c", "--enable-sandbox", str(guest.pid))
    assert s.recv(4096).startswith(b"READY=1")
    assert d.stop() == 0
    assert s.recv(4096).startswith(b"STOPPING=1")
