"""Podman's and rootlesskit's invocations, verbatim, as an unprivileged user.

Rootless podman creates the network namespace from inside its own user and
mount namespaces, bind-mounts it onto /run/user/UID/netns/NAME there, and runs
slirp4netns in those namespaces with a ready fd and an exit fd.  Rootlesskit
runs it on its child's PID, with a ready fd only, and stops it with SIGKILL.
The guest fixture plays their namespaces here; slirpd runs in them as the
plain user (root of the guest's user namespace), with exactly their argv.

The argv are those the real programs pass, captured by a logging wrapper:
podman 4.3.1 and rootlesskit 1.1.0 on this Debian 12
(tests/test_clients_deb12.py), podman 5.4.2 in the Debian 13 root
(../shared/clients/README.md).  Podman 4.3 gives the exit fd as 3 and the
ready fd as 4, podman 5.4 the other way round.
"""

import os
import selectors
import signal
import socket
import subprocess
import sys
import threading

import pytest

from lib.api import api_call
from lib.harness import SLIRPD, as_user, wait_for

pytestmark = pytest.mark.timeout(120)

HOST_ADDR = "198.51.100.1"  # the sandbox's own veth address (tests/sandbox.sh)
CIDR = "10.0.5.0/24"  # a --cidr of the cases that pass one
# podman's -r/-e: ready fd, exit fd
PODMAN_FDS = {"4.3": ["-e", "3", "-r", "4"], "5.4": ["-r", "3", "-e", "4"]}


def podman_args(version: str, nspath: str, api_path: str | None = None) -> list[str]:
    """podman's slirp4netns argv (libpod/networking_slirp4netns.go) of
    version, "4.3" or "5.4"; with api_path, 4.3's for `--network
    slirp4netns:port_handler=slirp4netns,cidr=CIDR` and a published port."""
    return ["--disable-host-loopback", "--mtu=65520", "--enable-sandbox", "--enable-seccomp",
            *([f"--cidr={CIDR}"] if api_path else []), "--enable-ipv6", "-c", *PODMAN_FDS[version],
            *(["--api-socket", api_path] if api_path else []), "--netns-type=path", nspath, "tap0"]


def rootlesskit_args(pid: int, api_path: str) -> list[str]:
    """rootlesskit 1.1's (pkg/network/slirp4netns) for `--net=slirp4netns
    --disable-host-loopback --cidr=CIDR --port-driver=slirp4netns`."""
    return ["--mtu", "65520", "-r", "3", "--disable-host-loopback", "--cidr", CIDR, "--api-socket", api_path,
            str(pid), "tap0"]


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


def configure_like_rootlesskit(guest) -> None:
    """What rootlesskit's child does with the TAP that slirp4netns made:
    the MTU, the address CIDR's .100, up, a default route via its .2."""
    guest.run("ip link set tap0 mtu 65520 && ip addr add 10.0.5.100/24 dev tap0 && ip link set tap0 up"
              " && ip route add default via 10.0.5.2")


CASES = ["podman-4.3", "podman-5.4", "podman-4.3-port-handler", "rootlesskit-1.1"]


@pytest.mark.daemon
@pytest.mark.parametrize("case", CASES)
def test_verbatim_argv(guest, plain_user, user_tmp, case):
    client, _, variant = case.partition("-")
    version = variant.removesuffix("-port-handler")
    api_path = str(user_tmp / "api.sock") if case in ("podman-4.3-port-handler", "rootlesskit-1.1") else None
    if client == "podman":
        args = podman_args(version, bind_netns(guest, plain_user), api_path)
    else:
        args = rootlesskit_args(guest.pid, api_path)
    net = "10.0.5" if api_path else "10.0.2"
    ready_fd = args[args.index("-r") + 1]
    exit_fd = args[args.index("-e") + 1] if "-e" in args else None
    ready_r, ready_w = os.pipe()
    exit_r, exit_w = os.pipe()
    # the client's fds (ready written, exit read); nothing else leaks in
    exit_redirect = f"{exit_fd}<&{exit_r} " if exit_fd else ""
    redirect = f'exec "$@" {ready_fd}>&{ready_w} {exit_redirect}{ready_w}>&- {exit_r}<&-'
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
        assert sel.select(30), f"no ready byte on fd {ready_fd}"
        assert os.read(ready_r, 1) == b"1", proc.stderr.read1().decode() if proc.poll() is not None else ""
        assert os.read(ready_r, 1) == b""  # written once, then closed

        pid = proc.pid  # nsenter execs bash, bash execs slirpd
        status = open(f"/proc/{pid}/status").read()
        if client == "podman":
            assert "Seccomp:\t2" in status and "NoNewPrivs:\t1" in status
            assert sorted(os.listdir(f"/proc/{pid}/root")) == ["etc", "run"]
        else:
            configure_like_rootlesskit(guest)
        (link,) = guest.ip_json("addr", "show", "tap0")
        if client == "podman":  # slirpd's -c, not the test, configured it
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

        if api_path:
            check_api_forward(guest, api_path)

        if exit_fd:
            os.close(exit_w)  # podman's way to stop it
            exit_w = -1
            assert proc.wait(timeout=20) == 0, proc.stderr.read().decode()
            if api_path:
                assert not os.path.exists(api_path)
        else:
            proc.send_signal(signal.SIGKILL)  # rootlesskit's (its context's cancel)
            assert proc.wait(timeout=20) == -signal.SIGKILL
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
