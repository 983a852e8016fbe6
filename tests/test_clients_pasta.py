"""slirpd as pasta under today's clients, for real: podman 5.4 and
rootlesskit 2.0 from the Debian 13 root (tests/lib/clients.py) find `pasta` in
podman's $CONTAINERS_HELPER_BINARY_DIR and in rootlesskit's --pasta-binary,
a link named pasta to the slirpd under test.

Every case runs for slirpd and, side by side, for Debian 13's own pasta:
both must pass it, and both must be called with the same argv, so slirpd is
tested under exactly what the real programs pass.  The host is the sandbox
(up0 198.51.100.1/24, 2001:db8::1/64) with systemd-resolved's 127.0.0.53 as
its resolver, served by test_dns.py's responder.
"""

from __future__ import annotations

import http.server
import re
import threading

import pytest

from lib.clients import IMAGE, matches
from lib.dns import ADDR, ADDR6, NAME

IMPLS = ["slirpd", "pasta"]
NETNS = re.compile(r"/run/user/1500/netns/netns-[0-9a-f-]+")
# podman 5.4.2's argv (containers/common libnetwork/pasta, captured in ../shared/clients/README.md)
PODMAN_TAIL = ["--dns-forward", "169.254.1.1", "-t", "none", "-u", "none", "-T", "none", "-U", "none", "--no-map-gw",
               "--quiet", "--netns", NETNS, "--map-guest-addr", "169.254.1.2"]

pytestmark = pytest.mark.timeout(300)


class HostWeb:
    """An HTTP server on the host, all addresses: GET answers "hello from
    the host"; clients holds the client address of each request."""

    def __init__(self):
        web = self
        self.clients: list[str] = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                web.clients.append(self.client_address[0])
                body = b"hello from the host\n"
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("0.0.0.0", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def host_web():
    web = HostWeb()
    yield web
    web.close()


def podman(clients_root, impl: str, command: str) -> tuple[str, list]:
    """Run command (sh, as podu) with podman finding pasta in impl's
    directory. Return: its output, and the argv of each call of pasta."""
    cmd = clients_root.logged_pasta(impl)
    res = clients_root.run(f"export CONTAINERS_HELPER_BINARY_DIR={cmd.dir}; {command}")
    assert res.returncode == 0, res.stdout + res.stderr
    return res.stdout, cmd.calls()


@pytest.mark.parametrize("impl", IMPLS)
def test_podman_network(clients_root, resolver, host_web, impl):
    """podman run with its defaults: the host's address and default route
    copied, the container's resolv.conf names 169.254.1.1 and a lookup there
    reaches the host's 127.0.0.53, host.containers.internal (169.254.1.2)
    reaches a service of the host's, which sees the host's own address."""
    script = (f"ip -4 -o addr show scope global; ip -4 route show default; ip -6 -o addr show scope global;"
              f" grep ^nameserver /etc/resolv.conf; grep host.containers.internal /etc/hosts;"
              f" nslookup {NAME}; wget -qO- http://host.containers.internal:{host_web.port}/")
    out, calls = podman(clients_root, impl, f"podman run --rm {IMAGE} sh -c '{script}'")
    assert re.search(r"inet 198\.51\.100\.1/24 .* up0", out), out
    assert "default via 198.51.100.254 dev up0" in out, out
    assert re.search(r"inet6 2001:db8::1/64", out), out
    assert re.findall(r"^nameserver (\S+)", out, re.M)[:1] == ["169.254.1.1"], out
    assert re.search(r"^169\.254\.1\.2\s+host\.containers\.internal", out, re.M), out
    assert sorted(re.findall(rf"^Name:\s+{re.escape(NAME)}\nAddress: (\S+)", out, re.M)) == sorted([ADDR, ADDR6])
    assert resolver.queries >= 2
    assert "hello from the host" in out and host_web.clients == ["198.51.100.1"], out
    assert len(calls) == 1 and matches(calls[0], ["--config-net", *PODMAN_TAIL]), calls


@pytest.mark.parametrize("impl", IMPLS)
def test_podman_publish(clients_root, impl):
    """podman run -d -p 18080:80: a server in the container answers on the
    host's 127.0.0.1:18080 and 198.51.100.1:18080."""
    server = "mkdir -p /www && echo published > /www/index.html && exec httpd -f -p 80 -h /www"
    fetch = ("for i in $(seq 100); do busybox wget -qO- http://$1:18080/ && break; sleep 0.1; done")
    out, calls = podman(clients_root, impl,
                        f"podman run -d --name web -p 18080:80 {IMAGE} sh -c '{server}' >/dev/null;"
                        f" fetch() {{ {fetch}; }}; fetch 127.0.0.1; fetch 198.51.100.1; podman rm -f -t 0 web >/dev/null")
    assert out.split() == ["published", "published"], out
    assert len(calls) == 1 and matches(calls[0], ["--config-net", "-t", "18080-18080:80-80", *PODMAN_TAIL[:2],
                                                  *PODMAN_TAIL[4:]]), calls


@pytest.mark.parametrize("impl", IMPLS)
def test_podman_namespace_gone(clients_root, impl):
    """505-networking-pasta.bats, "pasta(1) quits when the namespace is
    gone": once the container is removed (podman unmounts and removes its
    namespace file), pasta exits within 5 s."""
    # exited: gone, or a zombie (the run's init, su, reaps only its own child)
    wait = ("pid=$(cat /tmp/pasta.pid); i=0; running() { st=$(sed -n 's/^State:[[:space:]]*//p' /proc/$pid/status"
            " 2>/dev/null); [ -n \"$st\" ] && [ \"${st%% *}\" != Z ]; }; while running; do i=$((i+1));"
            " [ $i -le 50 ] || { echo alive; exit 1; }; sleep 0.1; done; echo gone")
    out, calls = podman(clients_root, impl, f"podman run --rm --network pasta:--pid,/tmp/pasta.pid {IMAGE} true; {wait}")
    assert out.split() == ["gone"], out
    assert len(calls) == 1 and matches(calls[0], ["--config-net", "--pid", "/tmp/pasta.pid", *PODMAN_TAIL]), calls


# rootlesskit 2.0.2's argv for --net=pasta --port-driver=implicit (its pasta driver, captured)
ROOTLESSKIT_ARGV = ["--foreground", "--stderr", "--ns-ifname=tap0", "--mtu=65520", "--no-dhcp", "--no-ra",
                    "--address=10.0.2.100", "--netmask=24", "--gateway=10.0.2.2", "--dns-forward=10.0.2.3",
                    "--no-map-gw", "--ipv4-only", "--tcp-ports=auto", "--udp-ports=auto", re.compile(r"[1-9][0-9]*")]


@pytest.mark.parametrize("impl", IMPLS)
def test_rootlesskit_pasta(clients_root, resolver, impl):
    """rootlesskit 2.0 --net=pasta --port-driver=implicit: the child resolves
    names through 10.0.2.3 (the host's 127.0.0.53), and a server it starts
    later is reached from the host on the same port (pasta's -t auto)."""
    cmd = clients_root.logged_pasta(impl)
    # No step waits for a time it guesses: the child says when its server
    # listens (a lookup that needs a retry takes seconds) and stays until the
    # host has fetched; each wait is bounded
    child = (f"nslookup {NAME}; mkdir -p /tmp/www && echo implicit > /tmp/www/index.html;"
             " busybox httpd -f -p 18200 -h /tmp/www & touch /tmp/served;"
             " i=0; while [ ! -e /tmp/fetched ] && [ $i -lt 900 ]; do sleep 0.1; i=$((i+1)); done")
    fetch = ("i=0; while [ ! -e /tmp/served ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done;"
             " for i in $(seq 300); do busybox wget -qO- http://127.0.0.1:18200/ 2>/dev/null && exit 0; sleep 0.1;"
             " done; exit 1")
    command = (f"rm -f /tmp/served /tmp/fetched; rootlesskit --state-dir=/tmp/rk --net=pasta --pasta-binary={cmd.path}"
               f" --port-driver=implicit --disable-host-loopback --copy-up=/etc sh -c '{child}' &"
               f" ( {fetch} ); echo fetched=$?; touch /tmp/fetched; wait")
    res = clients_root.run(command)
    out = res.stdout
    assert res.returncode == 0, out + res.stderr
    assert sorted(re.findall(rf"^Name:\s+{re.escape(NAME)}\nAddress: (\S+)", out, re.M)) == sorted([ADDR, ADDR6]), out
    assert "implicit" in out and "fetched=0" in out, out + res.stderr
    calls = cmd.calls()
    assert calls[-1:] and matches(calls[-1], ROOTLESSKIT_ARGV), calls
