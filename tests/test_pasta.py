"""slirpd as pasta under podman's and rootlesskit's argv, verbatim, as a plain
user, the way tests/test_podman.py runs slirp4netns's.

podman runs pasta inside its rootless user and mount namespaces, where the
container's network namespace is bound to /run/user/UID/netns/NAME, and
waits for it to exit 0 with its output read to EOF; the guest fixture plays
those namespaces.  rootlesskit 2.0 runs it in the foreground on its child's
PID and configures the interface itself.  Each test checks what the client
relies on: the namespace configured as pasta configures it (the sandbox's
up0, 198.51.100.1/24 and 2001:db8::1/64, copied), DNS through the
--dns-forward address to the host's resolver on 127.0.0.53,
host.containers.internal (--map-guest-addr) reaching a host service, -t/-u
forwards carrying data in, and the daemon's end: the namespace file
removed, the PID gone, SIGTERM.
"""

from __future__ import annotations

import hashlib
import os
import socket
import signal
import subprocess
import sys
import time

import pytest

from lib.dns import ADDR, NAME, host_resolver
from lib.harness import as_user, wait_for
from lib.pastalib import (DNS_FORWARD, GATEWAY4, GATEWAY6, GONE_TIMEOUT, GuestServer, HOST4, HOST6, HostEcho, MAP_GUEST,
                          Pasta, addresses, bind_netns, closed, default_gateways, guest_connect, guest_link, host_tcp,
                          host_udp, ip_json, podman_argv, reachable, rootlesskit_argv)

pytestmark = pytest.mark.timeout(120)

RESOLVER = "127.0.0.53"  # systemd-resolved's stub, as today's hosts have it
LOOKUP = ("import socket, struct, sys\n"
          "q = struct.pack('!HHHHHH', 0x1234, 0x0100, 1, 0, 0, 0) + b''.join("
          "bytes([len(p)]) + p.encode() for p in sys.argv[2].split('.')) + b'\\0' + struct.pack('!HH', 1, 1)\n"
          "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(3)\n"
          "s.sendto(q, (sys.argv[1], 53))\n"
          "try:\n"
          "    r = s.recv(512); print(socket.inet_ntoa(r[-4:]))\n"
          "except OSError as e:\n"
          "    print(type(e).__name__)\n")


@pytest.fixture
def resolver(tmp_path):
    """The host's resolver on 127.0.0.53, as systemd-resolved's stub."""
    with host_resolver(tmp_path, RESOLVER, "options edns0 trust-ad\n") as srv:
        yield srv


@pytest.fixture
def pasta(resolver, guest, pasta_bin):
    p = Pasta(guest, pasta_bin)
    yield p
    p.stop()


@pytest.fixture
def netns(guest, plain_user):
    return bind_netns(guest, plain_user.pw_uid)


def start_ok(pasta, argv):
    res = pasta.start(argv)
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout == "" and res.stderr == ""  # --quiet, and nothing left open to write
    assert len(pasta.alive()) == 1
    return res


def lookup(guest, server: str) -> str:
    return guest.python(LOOKUP, server, NAME).stdout.strip()


def test_podman_default(pasta, guest, netns, resolver):
    """podman run: the namespace is configured before pasta exits 0, its
    output is closed, and the container has pasta's network: the host's
    addresses, routes and interface name, MTU 65520, loopback up; DNS
    through 169.254.1.1 reaches the host's 127.0.0.53; 169.254.1.2 is the
    host (host.containers.internal), the host's loopback is not (--no-map-gw)."""
    start_ok(pasta, podman_argv(netns))
    up0 = guest_link(guest, "up0")
    assert up0["mtu"] == 65520 and "UP" in up0["flags"]
    assert addresses(up0, "inet") == [f"{HOST4}/24"] and addresses(up0, "inet6") == [f"{HOST6}/64"]
    assert default_gateways(guest, "-4") == [GATEWAY4] and default_gateways(guest, "-6") == [GATEWAY6]
    assert "UP" in guest_link(guest, "lo")["flags"]
    assert lookup(guest, DNS_FORWARD) == ADDR and resolver.queries == 1
    with HostEcho() as echo:  # the host's service sees the host's own address as the client
        assert guest_connect(guest, MAP_GUEST, echo.port) == f"{HOST4} hello"
    # the world is behind pasta's MAC address
    assert [n["lladdr"] for n in ip_json(guest, "neigh", "show", GATEWAY4)] == ["9a:55:9a:55:9a:55"]
    with HostEcho("127.0.0.1") as lo:  # the gateway is the real one, not the host's loopback
        assert guest_connect(guest, GATEWAY4, lo.port, timeout=2) == "TimeoutError"
        assert lo.peers == []


@pytest.mark.parametrize("addr", ["127.0.0.1", HOST4, "::1", HOST6])
def test_podman_publish_tcp(pasta, guest, netns, addr):
    """podman run -p 8080:80 (podman writes -t 8080-8080:80-80): every host
    address, both families, reaches the container's port 80; a client on
    the host's loopback shows as the gateway (--no-map-gw), one from the
    host's own address (which the container has too) as 169.254.1.2."""
    start_ok(pasta, podman_argv(netns, "-t", "18080-18080:80-80"))
    server = GuestServer(guest, "::", "tcp", 80)
    try:
        seen = {"127.0.0.1": GATEWAY4, HOST4: MAP_GUEST, "::1": GATEWAY6, HOST6: GATEWAY6}[addr]
        assert host_tcp(addr, 18080) == f"80 {seen if ':' in seen else '::ffff:' + seen} hello".encode()
    finally:
        server.close()


def test_podman_publish_udp_loopback(pasta, guest, netns):
    """podman run -p 127.0.0.1:8080:80/udp (-u 127.0.0.1/8080-8080:80-80):
    datagrams, a zero-length one too, reach the container and its answers
    come back; the port is bound on 127.0.0.1 only."""
    start_ok(pasta, podman_argv(netns, "-u", "127.0.0.1/18080-18080:80-80"))
    server = GuestServer(guest, "0.0.0.0", "udp", 80)
    try:
        assert host_udp("127.0.0.1", 18080, b"ping") == f"80 {GATEWAY4} ping".encode()
        assert host_udp("127.0.0.1", 18080, b"") == f"80 {GATEWAY4} ".encode()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind((HOST4, 18080))  # free: only 127.0.0.1:18080 is pasta's
    finally:
        server.close()


def test_podman_port_range(pasta, guest, netns):
    """podman run -p 18000-18002:9000-9002: each port to its own."""
    start_ok(pasta, podman_argv(netns, "-t", "18000-18002:9000-9002"))
    server = GuestServer(guest, "0.0.0.0", "tcp", 9000, 9001, 9002)
    try:
        for offset in range(3):
            assert host_tcp("127.0.0.1", 18000 + offset).startswith(f"{9000 + offset} ".encode())
    finally:
        server.close()


def test_podman_ipv6_host_address(pasta, guest, netns):
    """podman run -p [::1]:8080:80: podman writes the address unbracketed
    (-t ::1/8080-8080:80-80); only ::1 is bound."""
    start_ok(pasta, podman_argv(netns, "-t", "::1/18080-18080:80-80"))
    server = GuestServer(guest, "::", "tcp", 80)
    try:
        assert host_tcp("::1", 18080) == f"80 {GATEWAY6} hello".encode()
        with pytest.raises(ConnectionRefusedError):
            host_tcp("127.0.0.1", 18080)
    finally:
        server.close()


@pytest.mark.parametrize("options, check", [
    (["-a", "192.0.2.2", "-g", "192.0.2.1"],
     lambda g: (addresses(guest_link(g, "up0"), "inet"), default_gateways(g)) == (["192.0.2.2/24"], ["192.0.2.1"])),
    (["-a", "2001:db8::2", "-g", "2001:db8::1"],
     lambda g: (addresses(guest_link(g, "up0"), "inet6"), default_gateways(g, "-6")) ==
     (["2001:db8::2/64"], ["2001:db8::1"])),
    (["-m", "1280"], lambda g: guest_link(g, "up0")["mtu"] == 1280),
    (["-4"], lambda g: addresses(guest_link(g, "up0"), "inet6") == [] and default_gateways(g, "-6") == []),
    (["-6"], lambda g: addresses(guest_link(g, "up0"), "inet") == [] and default_gateways(g) == []),
    (["-I", "myname", "--ns-mac-addr", "9a:dd:31:ea:92:98"],
     lambda g: guest_link(g, "myname")["address"] == "9a:dd:31:ea:92:98"),
], ids=["address-gateway", "address-gateway-ipv6", "mtu", "ipv4-only", "ipv6-only", "ifname-mac"])
def test_podman_pasta_options(pasta, guest, netns, options, check):
    """podman run --network pasta:OPTS (podman puts them after
    --config-net), as 505-networking-pasta.bats uses them."""
    start_ok(pasta, podman_argv(netns, extra=options))
    assert check(guest), ip_json(guest, "addr", "show")


def test_podman_rootless_netns_pid(pasta, guest, netns, user_tmp):
    """The rootless netns of bridge networks: --pid FILE holds the daemon's pid."""
    pid_file = user_tmp / "rootless-netns-conn.pid"
    start_ok(pasta, podman_argv(netns, extra=["--pid", str(pid_file)]))
    assert int(pid_file.read_text()) == pasta.alive()[0]


# In the guest's mount namespace: a /dev of its own (a tmpfs holding the
# devices the daemon opens, bound from the real one) with LOG, a socket of the
# test's, bound at /dev/log (the machine has no system logger of its own)
OWN_DEV = ("mkdir {d}/dev && mount --rbind /dev {d}/dev && mount -t tmpfs tmpfs /dev && mkdir /dev/net"
           " && for n in null zero full random urandom tty net/tun; do touch /dev/$n && mount --bind {d}/dev/$n /dev/$n;"
           " done && touch /dev/log && mount --bind {log} /dev/log")


def test_syslog_lines_as_pasta_writes_them(tmp_path):
    """log.c's format, "<PRI> pasta: TEXT" with facility daemon (3 << 3);
    stderr as well until the daemon detaches, then syslog only; nothing
    there with --debug (pasta keeps debug output off it); no logger at the
    path: no socket."""
    import io

    from slirpd.log import Log

    srv = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    srv.bind(str(tmp_path / "log"))
    srv.setblocking(False)
    lg, stream = Log(), io.StringIO()
    lg.setup(False, stream, prefix="")
    lg.open_syslog("pasta", str(tmp_path / "log"))
    lg.warning("a %s", "b\nc")
    lg.error("e")
    assert [srv.recv(100), srv.recv(100)] == [b"<28> pasta: a b\\nc\n", b"<27> pasta: e\n"]
    lg.to_syslog_only()
    lg.warning("detached")
    assert srv.recv(100) == b"<28> pasta: detached\n" and stream.getvalue() == "a b\\nc\ne\n"
    verbose = Log()
    verbose.setup(True, stream, prefix="")
    verbose.open_syslog("pasta", str(tmp_path / "log"))
    verbose.warning("only on stderr")
    with pytest.raises(BlockingIOError):
        srv.recv(100)
    assert stream.getvalue().endswith("only on stderr\n")
    nowhere = Log()
    nowhere.open_syslog("pasta", str(tmp_path / "none"))
    assert nowhere.syslog is None
    srv.close()


def catches(pid: int, sig: int) -> bool:
    """Whether the process has a handler for sig (SigCgt in its status)."""
    with open(f"/proc/{pid}/status") as f:
        caught = next(int(line.split()[1], 16) for line in f if line.startswith("SigCgt:"))
    return bool(caught & 1 << (sig - 1))


def test_daemon_logs_to_syslog(pasta, guest, netns, user_tmp):
    """pasta without -l logs to the system logger (/dev/log, log.c's
    "<PRI> pasta: TEXT"): the detached daemon, whose stderr is /dev/null,
    is heard there, from inside its sandbox (SIGUSR1 has it log its
    counters, a warning)."""
    logger = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    logger.bind(str(user_tmp / "log"))
    os.chmod(user_tmp / "log", 0o666)
    logger.settimeout(10)
    try:
        guest.run(OWN_DEV.format(d=user_tmp, log=user_tmp / "log"))
        start_ok(pasta, podman_argv(netns))
        daemon = pasta.alive()[0]
        wait_for(lambda: catches(daemon, signal.SIGUSR1), 10, "the daemon's SIGUSR1 handler")
        os.kill(daemon, signal.SIGUSR1)
        line = logger.recv(65536).decode()
    finally:
        logger.close()
    assert line.startswith("<28> pasta: counters {") and line.endswith("}\n"), line  # daemon.warning = 3 << 3 | 4
    assert '"frames_in":' in line


@pytest.mark.parametrize("version", ["5.0", "5.1"])
def test_podman_50_52(pasta, guest, netns, resolver, version):
    """podman 5.0 passes --dns none (no forwarding), 5.1 and 5.2
    --dns-forward 169.254.0.1; neither --map-guest-addr."""
    start_ok(pasta, podman_argv(netns, v50=version == "5.0", v51=version == "5.1"))
    if version == "5.0":
        assert lookup(guest, DNS_FORWARD) == "TimeoutError" and resolver.queries == 0
    else:
        assert lookup(guest, "169.254.0.1") == ADDR
    with HostEcho() as echo:  # 169.254.1.2 is itself, out of the sandbox's up0: no answer, or unreachable
        assert guest_connect(guest, MAP_GUEST, echo.port, timeout=2) in ("TimeoutError", "OSError")
        assert echo.peers == []


@pytest.mark.parametrize("option", ["--runas=1000", "-F"])
def test_unsupported_option_fails(pasta, option):
    """An option slirpd does not implement fails as pasta fails on one it
    does not know: getopt's message, exit 1, no daemon."""
    res = pasta.start([option, "--version"])
    word = option.split("=")[0]
    expected = f"invalid option -- '{option[1]}'" if len(word) == 2 else f"unrecognized option '{option}'"
    assert (res.returncode, res.stdout) == (1, "")
    assert res.stderr == f"{pasta.link}: {expected}\n"
    assert pasta.alive() == []


def test_host_lo_to_ns_lo_probe(pasta):
    """rootlesskit 3 probes --host-lo-to-ns-lo --version by its exit status,
    and passes the option when it is accepted: it is."""
    res = pasta.start(["--host-lo-to-ns-lo", "--version"])
    assert (res.returncode, res.stderr) == (0, "") and res.stdout.startswith("pasta (slirpd "), res
    assert pasta.alive() == []


def test_namespace_file_removed(pasta, guest, netns):
    """podman unmounts and removes the namespace file: the daemon is gone
    within 5 s (505-networking-pasta.bats, "pasta(1) quits when the
    namespace is gone"), though its TAP keeps the namespace itself."""
    start_ok(pasta, podman_argv(netns))
    guest.run(f"umount {netns} && rm {netns}")
    pasta.wait_gone(GONE_TIMEOUT)


def test_sigterm(pasta, guest, netns):
    start_ok(pasta, podman_argv(netns))
    os.kill(pasta.alive()[0], signal.SIGTERM)
    pasta.wait_gone(GONE_TIMEOUT)


ROOTLESSKIT_CHILD = ("ip link set tap0 up && ip link set dev tap0 mtu 65520 && ip addr add 10.0.2.100/24 dev tap0"
                     " && ip route add default via 10.0.2.2 dev tap0")


def rootlesskit_child(pasta, guest, ports: str) -> subprocess.Popen:
    """rootlesskit 2.0's way: pasta in the foreground on the child's PID,
    the child waits for tap0 and configures it (rootlesskit's activateDev)."""
    proc = pasta.start_foreground(rootlesskit_argv(guest.pid, ports))
    wait_for(lambda: proc.poll() is not None or guest.run("ip link show tap0", check=False).returncode == 0, 20,
             "tap0 in the child's namespace")
    assert proc.poll() is None, proc.stdout.read()
    guest.run(ROOTLESSKIT_CHILD)
    return proc


def test_rootlesskit_implicit(pasta, guest, resolver):
    """rootlesskit 2.0 --net=pasta --port-driver=implicit: DNS through
    10.0.2.3; a port bound inside later is reached from the host within
    about a second (-t auto, -u auto), and goes when it is closed; the
    daemon ends with its PID target."""
    proc = rootlesskit_child(pasta, guest, "auto")
    assert lookup(guest, "10.0.2.3") == ADDR
    server = GuestServer(guest, "0.0.0.0", "tcp", 18200)
    try:
        reply = wait_for(lambda: reachable("127.0.0.1", 18200), 5, "port 18200 forwarded automatically")
        assert reply.startswith(b"18200 ")
    finally:
        server.close()
    wait_for(lambda: closed("127.0.0.1", 18200), 5, "the automatic forward to go")
    guest.stop()
    assert proc.wait(timeout=GONE_TIMEOUT) == 0, proc.stdout.read()


def test_rootlesskit_none(pasta, guest):
    """--port-driver=none: --tcp-ports=none --udp-ports=none, nothing is forwarded."""
    proc = rootlesskit_child(pasta, guest, "none")
    server = GuestServer(guest, "0.0.0.0", "tcp", 18201)
    try:
        time.sleep(2.5)  # two scans of automatic forwarding, had it been on
        assert closed("127.0.0.1", 18201)
    finally:
        server.close()
    proc.terminate()
    assert proc.wait(timeout=GONE_TIMEOUT) == 0


LARGE_TCP = 10 << 20  # 505-networking-pasta.bats's "large transfer", TCP
LARGE_UDP = 53248  # its UDP one: wmem_default / 4 here (212992)

GUEST_SINK = """
import hashlib, socket, sys
family = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
proto = sys.argv[2]
s = socket.socket(family, socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], 80))
if proto == "tcp":
    s.listen(1)
print("ready", flush=True)
if proto == "tcp":
    c, _ = s.accept()
    data = b""
    while chunk := c.recv(1 << 20):
        data += chunk
else:
    data, _ = s.recvfrom(65536)
print(len(data), hashlib.sha256(data).hexdigest(), flush=True)
"""


@pytest.mark.parametrize("proto", ["tcp", "udp"])
@pytest.mark.parametrize("addr", ["127.0.0.1", HOST4, "::1", HOST6])
def test_podman_large_transfer(pasta, guest, netns, proto, addr):
    """505-networking-pasta.bats's large transfers: 10 MiB over TCP, a
    53,248-byte datagram over UDP, to a -t/-u port, through the host's
    loopback and its own address ("loopback" and "tap" there), both families."""
    start_ok(pasta, podman_argv(netns, f"-{proto[0]}", "18090:80"))
    data = os.urandom(LARGE_TCP if proto == "tcp" else LARGE_UDP)
    enter = ["nsenter", f"--target={guest.pid}", "--user", "--net", "--mount", "--preserve-credentials", "--"]
    sink = subprocess.Popen([*enter, sys.executable, "-c", GUEST_SINK, "::" if ":" in addr else "0.0.0.0", proto],
                            stdout=subprocess.PIPE, text=True, **as_user(guest.user))
    try:
        assert sink.stdout.readline() == "ready\n"
        family = socket.AF_INET6 if ":" in addr else socket.AF_INET
        if proto == "tcp":
            with socket.create_connection((addr, 18090), timeout=30) as c:
                c.sendall(data)
        else:
            with socket.socket(family, socket.SOCK_DGRAM) as c:
                c.sendto(data, (addr, 18090))
        got = sink.stdout.readline().split()
        assert got == [str(len(data)), hashlib.sha256(data).hexdigest()]
    finally:
        sink.kill()
        sink.wait(timeout=10)
