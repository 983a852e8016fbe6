"""The DNS address on the hosts users have: resolv.conf as systemd-resolved,
NetworkManager and dnsmasq leave it, and changed while slirpd runs.

Each test gives the host a private /etc and /run: overlays on the real ones,
mounted in the harness's own mount namespace (tests/sandbox.sh made it
private), so that it can make /etc/resolv.conf a symlink into /run, remove
it, or replace the file it links to by rename, as systemd-resolved does,
without touching the machine's files.  The daemons and guests started after
the overlays see them; the nameservers are the responder of test_dns.py on
the sandbox's loopback (127.0.0.53, 127.0.0.54, ::1).
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from lib.dns import ADDR, DIG, DnsServer, NAME
from lib.harness import wait_for

STUB = "/run/systemd/resolve/stub-resolv.conf"
SYSTEMD_RESOLVED = "# This is /run/systemd/resolve/stub-resolv.conf managed by man:systemd-resolved(8).\n" \
                   "nameserver {ns}\noptions edns0 trust-ad\nsearch example.internal\n"
# with both hardening options explicitly, whichever pass of make test this is
MODES = {"plain": (), "sandboxed": ("--enable-sandbox", "--enable-seccomp")}


class HostFiles:
    """The host's /etc and /run, private to this test (see the module doc)."""

    def __init__(self, tmp: Path):
        self.mounts = []
        for d in ("etc", "run"):
            upper, work = tmp / f"{d}-upper", tmp / f"{d}-work"
            upper.mkdir()
            work.mkdir()
            subprocess.run(["mount", "-t", "overlay", "overlay", "-o",
                            f"lowerdir=/{d},upperdir={upper},workdir={work}", f"/{d}"], check=True)
            self.mounts.append(f"/{d}")
        self.tmp = tmp

    def write(self, path: str, text: str) -> None:
        """Replace path's file with text by rename, as resolvers do."""
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        new = p.with_name(p.name + ".new")
        new.write_text(text)
        new.chmod(0o644)
        os.replace(new, p)

    def resolv_conf(self, text: str | None = None, link: str | None = None) -> None:
        """/etc/resolv.conf: a file holding text, a symlink to link, or
        (neither) none at all."""
        etc = Path("/etc/resolv.conf")
        if etc.exists() or etc.is_symlink():
            etc.unlink()
        if link is not None:
            etc.symlink_to(link)
        elif text is not None:
            self.write(str(etc), text)

    def close(self) -> None:
        for m in reversed(self.mounts):
            subprocess.run(["umount", "-l", m], check=True)


@pytest.fixture
def host(tmp_path):
    files = HostFiles(tmp_path)
    yield files
    files.close()


@pytest.fixture
def nameservers():
    """Responders on the sandbox's loopback, by address, started on demand."""
    started: dict[str, DnsServer] = {}

    def start(addr: str) -> DnsServer:
        started[addr] = DnsServer(addr)
        return started[addr]

    yield start
    for srv in started.values():
        srv.close()


def dig(guest, *extra: str, check: bool = True):
    return guest.run(f"{DIG} {' '.join(extra)} {NAME} A", check=check)


@pytest.mark.parametrize("mode", MODES)
def test_symlinked_stub_on_loopback(host, nameservers, guest, start_slirpd, mode):
    """systemd-resolved's host, with podman's flag: resolv.conf links into
    /run, the stub names 127.0.0.53 with options and search lines."""
    host.write(STUB, SYSTEMD_RESOLVED.format(ns="127.0.0.53"))
    host.resolv_conf(link=STUB)
    srv = nameservers("127.0.0.53")
    start_slirpd("--configure", "--disable-host-loopback", *MODES[mode], str(guest.pid))
    assert dig(guest).stdout.strip() == ADDR
    assert dig(guest, "+tcp").stdout.strip() == ADDR
    assert srv.queries == 2


@pytest.mark.parametrize("resolv_conf, listens", [
    ("search example.internal\nnameserver ::1\n", "::1"),  # only IPv6: the IPv4 DNS address reaches it
    ("nameserver ::ffff:127.0.0.53\n", "127.0.0.53"),  # IPv4-mapped: a loopback nameserver like any
], ids=["ipv6-only", "ipv4-mapped"])
def test_nameserver_forms(host, nameservers, guest, start_slirpd, resolv_conf, listens):
    host.resolv_conf(resolv_conf)
    srv = nameservers(listens)
    start_slirpd("--configure", "--disable-host-loopback", str(guest.pid))
    assert dig(guest).stdout.strip() == ADDR
    assert srv.queries == 1


@pytest.mark.parametrize("mode", MODES)
def test_no_resolv_conf(host, nameservers, guest, start_slirpd, mode):
    """No resolv.conf at all: one clear line, DNS refused at once (an ICMP
    port unreachable, not a timeout), the rest of the network up; a
    resolv.conf that appears later is followed."""
    host.resolv_conf()
    srv = nameservers("127.0.0.53")
    d = start_slirpd("--configure", *MODES[mode], str(guest.pid))
    res = dig(guest, check=False)
    assert res.returncode != 0 and "connection refused" in res.stdout + res.stderr, res
    assert d.stderr.count("/etc/resolv.conf") == 1, d.stderr
    assert "DNS queries are refused" in d.stderr
    guest.run("ping -c 1 -W 5 10.0.2.2")

    host.write(STUB, SYSTEMD_RESOLVED.format(ns="127.0.0.53"))
    host.resolv_conf(link=STUB)
    wait_for(lambda: dig(guest, check=False).stdout.strip() == ADDR, 20, "DNS once resolv.conf is back")
    assert srv.queries >= 1
    assert "names a nameserver again" in d.stderr
    assert d.proc.poll() is None and "Traceback" not in d.stderr


def test_resolv_conf_not_a_file(host, guest, start_slirpd):
    """A FIFO in resolv.conf's place neither hangs the daemon nor is read:
    one line, DNS refused, the rest of the network up."""
    host.resolv_conf()  # none
    os.mkfifo("/etc/resolv.conf", 0o644)
    d = start_slirpd("--configure", str(guest.pid))
    assert "/etc/resolv.conf is not a regular file" in d.stderr
    # dig would read the FIFO too: a query by hand
    probe = ("import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\ns.settimeout(5)\n"
             "s.connect(('10.0.2.3', 53))\ns.send(bytes.fromhex('12340100000100000000000003787978000001000' '1'))\n"
             "try:\n    s.recv(512); print('answered')\nexcept ConnectionRefusedError:\n    print('refused')\n")
    assert guest.python(probe).stdout.strip() == "refused"
    guest.run("ping -c 1 -W 5 10.0.2.2")


@pytest.mark.parametrize("mode", MODES)
def test_resolver_changes_while_running(host, nameservers, guest, start_slirpd, mode):
    """The host changes networks: its stub file is replaced (by rename) and
    names another nameserver.  New queries go there within seconds, also
    from a guest that keeps asking from the same port (one open UDP flow)."""
    host.write(STUB, SYSTEMD_RESOLVED.format(ns="127.0.0.53"))
    host.resolv_conf(link=STUB)
    old, new = nameservers("127.0.0.53"), nameservers("127.0.0.54")
    start_slirpd("--configure", "--disable-host-loopback", *MODES[mode], str(guest.pid))
    assert dig(guest, "-b 0.0.0.0#5353").stdout.strip() == ADDR
    assert (old.queries, new.queries) == (1, 0)

    host.write(STUB, SYSTEMD_RESOLVED.format(ns="127.0.0.54"))
    deadline = time.monotonic() + 20
    while new.queries == 0:
        assert time.monotonic() < deadline, "queries never reached the new nameserver"
        assert dig(guest, "-b 0.0.0.0#5353", check=False).stdout.strip() in (ADDR, "")
    asked_old = old.queries
    for _ in range(3):
        assert dig(guest, "-b 0.0.0.0#5353").stdout.strip() == ADDR
        assert dig(guest).stdout.strip() == ADDR
    assert old.queries == asked_old  # none went to the old one any more
