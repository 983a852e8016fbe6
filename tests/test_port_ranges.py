"""Port ranges and interface-bound forwards (issue 17, item 4), one parser
(slirpd/portspec.py) for every front end: --publish 8000-8010:80-90, a range
in add_hostfwd (a slirpd extension: slirp4netns's own requests and replies
are unchanged, tests/test_api.py checks them against slirp4netns 1.2), and
pasta's ADDR%IF/PORTS (SO_BINDTODEVICE).
"""

from __future__ import annotations

import subprocess

import pytest

from lib.api import api_call
from lib.pastalib import GuestServer, host_tcp

pytestmark = pytest.mark.timeout(120)


def test_publish_range(guest, start_slirpd, user_tmp):
    """--publish 18400-18402:9000-9002: each host port to its guest port;
    list_hostfwd shows the range as one forward."""
    path = str(user_tmp / "api.sock")
    start_slirpd("-c", "--publish", "127.0.0.1:18400-18402:9000-9002", f"--api-socket={path}", str(guest.pid))
    server = GuestServer(guest, "0.0.0.0", "tcp", 9000, 9001, 9002)
    try:
        for i in range(3):
            assert host_tcp("127.0.0.1", 18400 + i).startswith(f"{9000 + i} 10.0.2.2 ".encode())
    finally:
        server.close()
    (entry,) = api_call(path, {"execute": "list_hostfwd"})["entries"]
    assert entry == {"id": 1, "proto": "tcp", "host_addr": "127.0.0.1", "host_port": "18400-18402",
                     "guest_addr": "10.0.2.100", "guest_port": "9000-9002"}


@pytest.mark.parametrize("args, reply", [
    ({"host_port": "18410-18411", "guest_port": "9010-9011"}, {"return": {"id": 1}}),
    ({"host_port": "18410-18411", "guest_port": 9010}, {"error": {"desc": "bad request: add_hostfwd: bad arguments.guest_port"}}),
    ({"host_port": "18411-18410", "guest_port": "9010-9011"},
     {"error": {"desc": "bad request: add_hostfwd: bad arguments.host_port"}}),
    ({"host_port": "18410-x", "guest_port": "9010-9011"},
     {"error": {"desc": "bad request: add_hostfwd: bad arguments.host_port"}}),
], ids=["range", "lengths-differ", "backwards", "garbage"])
def test_add_hostfwd_range(guest, start_slirpd, user_tmp, args, reply):
    """add_hostfwd with host_port and guest_port as "FIRST-LAST": one id for
    the range, every port of it forwarded; a bad range is an error reply
    naming the argument, as slirp4netns words its own."""
    path = str(user_tmp / "api.sock")
    start_slirpd("-c", f"--api-socket={path}", str(guest.pid))
    got = api_call(path, {"execute": "add_hostfwd", "arguments": {"proto": "tcp", "host_addr": "127.0.0.1", **args}})
    assert got == reply
    if "error" in reply:
        assert api_call(path, {"execute": "list_hostfwd"}) == {"entries": []}
        return
    server = GuestServer(guest, "0.0.0.0", "tcp", 9010, 9011)
    try:
        assert host_tcp("127.0.0.1", 18411).startswith(b"9011 ")
    finally:
        server.close()
    assert api_call(path, {"execute": "remove_hostfwd", "arguments": {"id": 1}}) == {"return": {}}
    for port in (18410, 18411):
        with pytest.raises(ConnectionRefusedError):
            host_tcp("127.0.0.1", port)


def listening(port: int) -> list[str]:
    """Local addresses of the host's TCP listeners on port, as ss shows them
    (ADDR%IF for one bound to an interface)."""
    out = subprocess.run(["ss", "-Htln", f"sport = :{port}"], capture_output=True, text=True, check=True).stdout
    return sorted(line.split()[3] for line in out.splitlines())


def test_interface_bound(pasta_fg, guest):
    """pasta's -t ADDR%IF/PORT and %IF/PORT: the host socket is bound to the
    interface (SO_BINDTODEVICE), and carries data."""
    pasta_fg("-t", "127.0.0.1%lo/18420:80", "-t", "%up0/18421:81", "-u", "none")
    assert listening(18420) == ["127.0.0.1%lo:18420"]
    assert listening(18421) == ["0.0.0.0%up0:18421", "[::]%up0:18421"]
    server = GuestServer(guest, "::", "tcp", 80, 81)
    try:
        assert host_tcp("127.0.0.1", 18420).startswith(b"80 ")
        assert host_tcp("198.51.100.1", 18421).startswith(b"81 ")
    finally:
        server.close()
