"""Podman's and rootlesskit's invocations, verbatim, as an unprivileged user.

Rootless podman creates the network namespace from inside its own user and
mount namespaces, bind-mounts it onto /run/user/UID/netns/NAME there, and runs
slirp4netns in those namespaces with the ready fd as 3 and the exit fd as 4.
The guest fixture plays podman's namespaces here; slirpd runs in them as the
plain user (root of the guest's user namespace), with exactly podman's argv.
"""

import os
import selectors
import socket
import subprocess
import sys
import threading

import pytest

from lib.api import api_call
from lib.harness import SLIRPD, as_user, wait_for

pytestmark = pytest.mark.timeout(120)

HOST_ADDR = "198.51.100.1"  # the sandbox's own veth address (tests/sandbox.sh)


def podman_args(nspath: str) -> list[str]:
    """Podman 4's slirp4netns argv (libpod/networking_slirp4netns.go)."""
    return ["--disable-host-loopback", "--mtu=65520", "--enable-sandbox", "--enable-seccomp", "--enable-ipv6",
            "-c", "-r", "3", "-e", "4", "--netns-type=path", nspath, "tap0"]


def rootlesskit_extra(api_path: str) -> list[str]:
    """What rootlesskit's slirp4netns driver adds."""
    return [f"--api-socket={api_path}", "--cidr=10.0.5.0/24"]


class EchoServer:
    """A TCP echo server on the sandbox's host address."""

    def __init__(self):
        self.sock = socket.create_server((HOST_ADDR, 0))
        self.port = self.sock.getsockname()[1]
        self.peers = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while True:
            try:
                conn, peer = self.sock.accept()
            except OSError:
                return
            self.peers.append(peer)
            with conn:
                while data := conn.recv(65536):
                    conn.sendall(data)

    def close(self):
        self.sock.close()


def bind_netns(guest, plain_user) -> str:
    """Podman's netns file: /run/user/UID/netns/NAME in the guest's mount
    namespace (a tmpfs over /run/user there), bind-mounted from its netns."""
    path = f"/run/user/{plain_user.pw_uid}/netns/netns-slirpd-test"
    guest.run(f"mount -t tmpfs tmpfs /run/user && mkdir -p {os.path.dirname(path)} && touch {path}"
              f" && mount --bind /proc/self/ns/net {path}")
    return path


@pytest.mark.daemon
@pytest.mark.parametrize("with_rootlesskit", [False, True], ids=["podman", "podman+rootlesskit"])
def test_verbatim_argv(guest, plain_user, user_tmp, with_rootlesskit):
    nspath = bind_netns(guest, plain_user)
    api_path = str(user_tmp / "api.sock")
    args = podman_args(nspath)
    if with_rootlesskit:
        args[:0] = rootlesskit_extra(api_path)
    net = "10.0.5" if with_rootlesskit else "10.0.2"
    ready_r, ready_w = os.pipe()
    exit_r, exit_w = os.pipe()
    # podman's fds: 3 = ready (written), 4 = exit (read); nothing else leaks in
    redirect = f'exec "$@" 3>&{ready_w} 4<&{exit_r} {ready_w}>&- {exit_r}<&-'
    enter = ["nsenter", f"--target={guest.pid}", "--user", "--mount", "--preserve-credentials", "--"]
    proc = subprocess.Popen([*enter, "bash", "-c", redirect, "bash", SLIRPD, *args], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, pass_fds=(ready_w, exit_r),
                            **as_user(plain_user))
    os.close(ready_w)
    os.close(exit_r)
    server = EchoServer()
    try:
        sel = selectors.DefaultSelector()
        sel.register(ready_r, selectors.EVENT_READ)
        assert sel.select(30), "no ready byte on fd 3"
        assert os.read(ready_r, 1) == b"1", proc.stderr.read1().decode() if proc.poll() is not None else ""
        assert os.read(ready_r, 1) == b""  # written once, then closed

        pid = proc.pid  # nsenter execs bash, bash execs slirpd
        status = open(f"/proc/{pid}/status").read()
        assert "Seccomp:\t2" in status and "NoNewPrivs:\t1" in status
        assert sorted(os.listdir(f"/proc/{pid}/root")) == ["etc", "run"]
        (link,) = guest.ip_json("addr", "show", "tap0")
        assert link["mtu"] == 65520
        assert [a["local"] for a in link["addr_info"] if a["family"] == "inet"] == [f"{net}.100"]

        # guest -> host: TCP through the host socket slirpd opens
        res = guest.python(f"""
import socket
s = socket.create_connection(("{HOST_ADDR}", {server.port}), timeout=10)
s.sendall(b"x" * 100000)
s.shutdown(socket.SHUT_WR)
got = b""
while chunk := s.recv(65536):
    got += chunk
print(len(got))
""")
        assert res.stdout.strip() == "100000"
        assert server.peers and server.peers[0][0] == HOST_ADDR
        # --disable-host-loopback: the gateway stands for the host's 127.0.0.1, refused
        with socket.create_server(("127.0.0.1", 0)) as loopback:
            res = guest.python(f"""
import socket
try:
    socket.create_connection(("{net}.2", {loopback.getsockname()[1]}), timeout=5)
    print("connected")
except OSError as e:
    print(type(e).__name__)
""")
            assert res.stdout.strip() in ("ConnectionRefusedError", "ConnectionResetError", "TimeoutError")
            loopback.setblocking(False)
            with pytest.raises(BlockingIOError):
                loopback.accept()

        if with_rootlesskit:
            check_api_forward(guest, api_path)

        os.close(exit_w)  # podman's way to stop it
        exit_w = -1
        assert proc.wait(timeout=20) == 0, proc.stderr.read().decode()
        assert not os.path.exists(api_path)
    finally:
        if exit_w >= 0:
            os.close(exit_w)
        os.close(ready_r)
        server.close()
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


def check_api_forward(guest, api_path: str) -> None:
    """rootlesskit's port driver: add_hostfwd, then a host client reaches a
    guest listener through it; list and remove it again."""
    listener = subprocess.Popen(
        ["nsenter", f"--target={guest.pid}", "--user", "--net", "--mount", "--preserve-credentials", "--",
         sys.executable, "-c",
         "import socket\n"
         "s = socket.create_server(('0.0.0.0', 8080))\n"
         "print('listening', flush=True)\n"
         "c, _ = s.accept()\n"
         "c.sendall(c.recv(100).upper())\n"
         "c.close()\n"],
        stdout=subprocess.PIPE, text=True, **as_user(guest.user))
    try:
        assert listener.stdout.readline() == "listening\n"
        reply = api_call(api_path, {"execute": "add_hostfwd",
                               "arguments": {"proto": "tcp", "host_addr": "127.0.0.1", "host_port": 18480,
                                             "guest_port": 8080}})
        assert reply == {"return": {"id": 1}}
        with socket.create_connection(("127.0.0.1", 18480), timeout=10) as c:
            c.sendall(b"hello")
            c.settimeout(10)
            assert c.recv(100) == b"HELLO"
        assert listener.wait(timeout=10) == 0
        entries = api_call(api_path, {"execute": "list_hostfwd"})["entries"]
        assert [(e["id"], e["host_port"], e["guest_addr"], e["guest_port"]) for e in entries] == \
            [(1, 18480, "10.0.5.100", 8080)]
        assert api_call(api_path, {"execute": "remove_hostfwd", "arguments": {"id": 1}}) == {"return": {}}
        wait_for(lambda: _refused("127.0.0.1", 18480), 5, "the forward to be removed")
    finally:
        if listener.poll() is None:
            listener.kill()
        listener.wait(timeout=10)


def _refused(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=2).close()
        return False
    except ConnectionRefusedError:
        return True
