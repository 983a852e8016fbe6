"""Attaching to a guest as a plain user: --configure, ping to the gateway,
existing TAPs, and the errors around them."""

import ipaddress
import os
import subprocess

import pytest

from lib.harness import HARDEN, SLIRPD, as_user

CAP_NET_BIND_SERVICE = 10


def tap_state(guest, name="tap0"):
    (link,) = guest.ip_json("link", "show", name)
    addrs = [a for a in guest.ip_json("addr", "show", name)[0]["addr_info"] if a["family"] == "inet"]
    routes = guest.ip_json("route", "show", "default")
    return link, addrs, routes


def ping(guest, addr, count=1):
    return guest.run(f"ping -c {count} -W 2 -i 0.2 {addr}", check=False)


def test_configure_defaults(guest, start_slirpd):
    start_slirpd("--configure", str(guest.pid), "tap0")
    link, addrs, routes = tap_state(guest)
    assert link["mtu"] == 1500
    assert "UP" in link["flags"]
    assert [(a["local"], a["prefixlen"]) for a in addrs] == [("10.0.2.100", 24)]
    assert [(r["dst"], r["gateway"], r["dev"]) for r in routes] == [("default", "10.0.2.2", "tap0")]
    (lo,) = guest.ip_json("link", "show", "lo")
    assert "UP" in lo["flags"]
    res = ping(guest, "10.0.2.2", count=3)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "3 received" in res.stdout


def test_quickstart_mtu_65520_and_big_pings(guest, start_slirpd):
    start_slirpd("--configure", "--mtu=65520", str(guest.pid), "tap0")
    link, _, _ = tap_state(guest)
    assert link["mtu"] == 65520
    for size in (0, 56, 1472, 8000, 65000):
        res = guest.run(f"ping -c 1 -W 2 -s {size} 10.0.2.2", check=False)
        assert res.returncode == 0, f"size {size}: {res.stdout}{res.stderr}"


def test_default_tapname_and_mac(guest, start_slirpd):
    start_slirpd("-c", "--macaddress=02:11:22:33:44:55", str(guest.pid))
    link, _, _ = tap_state(guest, "tap0")
    assert link["address"] == "02:11:22:33:44:55"
    assert ping(guest, "10.0.2.2").returncode == 0


@pytest.mark.parametrize("cidr", ["10.8.0.0/16", "192.168.77.0/25"])
def test_non_default_cidr(guest, start_slirpd, cidr):
    net = ipaddress.IPv4Network(cidr)
    start_slirpd("-c", f"--cidr={cidr}", str(guest.pid), "eth7")
    _, addrs, routes = tap_state(guest, "eth7")
    assert [(a["local"], a["prefixlen"]) for a in addrs] == [(str(net[100]), net.prefixlen)]
    assert routes[0]["gateway"] == str(net[2])
    assert ping(guest, net[2]).returncode == 0
    # DNS address answers ARP (resolves) even though no DNS forwarder runs yet
    guest.run(f"ping -c 1 -W 1 {net[3]} || true")
    neigh = guest.ip_json("neigh", "show", str(net[3]))
    assert neigh and neigh[0].get("lladdr"), neigh


def test_without_configure_attaches_to_existing_tap(guest, start_slirpd):
    """rootlesskit creates a persistent, configured tap0 and runs slirp4netns without -c."""
    guest.run("ip tuntap add tap0 mode tap && ip link set tap0 up && ip link set lo up"
              " && ip addr add 10.0.2.100/24 dev tap0 && ip route add default via 10.0.2.2")
    start_slirpd(str(guest.pid), "tap0")
    res = ping(guest, "10.0.2.2", count=2)
    assert res.returncode == 0, res.stdout + res.stderr


def test_without_configure_leaves_tap_down(guest, start_slirpd):
    start_slirpd(str(guest.pid), "tap0")
    link, addrs, routes = tap_state(guest)
    assert "UP" not in link["flags"]
    assert addrs == [] and routes == []


def test_tapname_taken_by_non_tap(guest, start_slirpd):
    guest.run("ip link add tap0 type veth peer name vpeer")
    d = start_slirpd("-c", str(guest.pid), "tap0", ready=False)
    assert d.proc.wait(timeout=20) == 1
    assert "'tap0' exists and is not a TAP device" in d.stderr
    assert len(d.stderr.strip().splitlines()) == 1


def test_not_permitted_to_join(start_slirpd):
    """PID 1's namespaces belong to the real root: the plain user may not join them."""
    d = start_slirpd("-c", "1", "tap0", ready=False)
    assert d.proc.wait(timeout=20) == 1
    assert "slirpd: " in d.stderr
    assert "not permitted" in d.stderr.lower() or "permission denied" in d.stderr.lower()
    assert "Traceback" not in d.stderr


@pytest.mark.daemon
def test_path_that_is_not_a_namespace(user_tmp, plain_user):
    path = user_tmp / "not-a-netns"
    path.write_text("")
    res = subprocess.run([SLIRPD, "--netns-type=path", str(path)], capture_output=True, text=True, timeout=20,
                         **as_user(plain_user))
    assert res.returncode == 1
    assert "is not a network namespace" in res.stderr


def test_plain_user_runs_everything(guest, start_slirpd, plain_user):
    d = start_slirpd("-c", str(guest.pid))
    status = open(f"/proc/{d.proc.pid}/status").read()
    uid_line = next(line for line in status.splitlines() if line.startswith("Uid:"))
    assert set(uid_line.split()[1:]) == {str(plain_user.pw_uid)}
    cap_eff = next(line for line in status.splitlines() if line.startswith("CapEff:")).split()[1]
    # hardened, the sandbox keeps CAP_NET_BIND_SERVICE (in the guest's user namespace)
    assert int(cap_eff, 16) & ~(1 << CAP_NET_BIND_SERVICE if HARDEN else 0) == 0
    assert ping(guest, "10.0.2.2").returncode == 0


def test_netns_path_bind_mounted_like_podman(guest, start_slirpd, user_tmp):
    """Podman bind-mounts the netns onto a file in its own user+mount namespace
    and runs slirp4netns there with --netns-type=path."""
    nsfile = user_tmp / "netns"
    nsfile.write_text("")
    guest.run(f"mount --bind /proc/self/ns/net {nsfile}")
    enter = ["nsenter", f"--target={guest.pid}", "--user", "--mount", "--preserve-credentials", "--"]
    start_slirpd("-c", "--netns-type=path", str(nsfile), "tap0", wrap=enter)
    assert ping(guest, "10.0.2.2").returncode == 0


def test_userns_path_and_netns_path(guest, start_slirpd):
    start_slirpd("-c", "--netns-type=path", f"--userns-path=/proc/{guest.pid}/ns/user",
                 f"/proc/{guest.pid}/ns/net", "tap0")
    assert ping(guest, "10.0.2.2").returncode == 0


def test_userns_path_as_proc_self_fd(guest, start_slirpd):
    fd = os.open(f"/proc/{guest.pid}/ns/user", os.O_RDONLY)
    try:
        start_slirpd("-c", f"--userns-path=/proc/self/fd/{fd}", str(guest.pid), pass_fds=[fd])
    finally:
        os.close(fd)
    assert ping(guest, "10.0.2.2").returncode == 0


def test_userns_path_that_is_not_a_user_namespace(guest, start_slirpd):
    d = start_slirpd("-c", f"--userns-path=/proc/{guest.pid}/ns/net", str(guest.pid), ready=False)
    assert d.proc.wait(timeout=20) == 1
    assert "is not a user namespace" in d.stderr


def test_netns_path_missing(start_slirpd, user_tmp):
    d = start_slirpd("--netns-type=path", str(user_tmp / "nope"), ready=False)
    assert d.proc.wait(timeout=20) == 1
    assert "does not exist" in d.stderr
