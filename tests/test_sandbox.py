"""--enable-sandbox: the daemon sees only /etc and /run of the host, holds no
capability but CAP_NET_BIND_SERVICE, and keeps serving."""

import os
import subprocess

from conftest import SLIRPD

CAP_NET_BIND_SERVICE = 10


def status_field(pid: int, name: str) -> str:
    with open(f"/proc/{pid}/status") as f:
        return next(line.split(":", 1)[1].strip() for line in f if line.startswith(name + ":"))


def test_sandbox_hides_host_files_as_plain_user(guest, start_slirpd):
    d = start_slirpd("-c", "--enable-sandbox", str(guest.pid))
    root = f"/proc/{d.proc.pid}/root"
    assert sorted(os.listdir(root)) == ["etc", "run"]
    assert os.path.exists(f"{root}/etc/passwd")
    assert not os.path.exists(f"{root}/usr") and not os.path.exists(f"{root}/tmp")
    assert int(status_field(d.proc.pid, "CapEff"), 16) & ~(1 << CAP_NET_BIND_SERVICE) == 0
    assert int(status_field(d.proc.pid, "CapBnd"), 16) & ~(1 << CAP_NET_BIND_SERVICE) == 0
    assert status_field(d.proc.pid, "NoNewPrivs") == "1"
    res = guest.run("ping -c 2 -i 0.2 -W 2 10.0.2.2", check=False)
    assert res.returncode == 0, res.stdout + res.stderr
    assert d.counters()["icmp_echo_replies"] >= 2  # SIGUSR1 works in the sandbox
    assert d.stop() == 0


def test_sandbox_as_root_keeps_only_net_bind_service(guest, start_slirpd):
    d = start_slirpd("-c", "--enable-sandbox", str(guest.pid), user=None)
    assert sorted(os.listdir(f"/proc/{d.proc.pid}/root")) == ["etc", "run"]
    assert int(status_field(d.proc.pid, "CapEff"), 16) == 1 << CAP_NET_BIND_SERVICE
    assert int(status_field(d.proc.pid, "CapBnd"), 16) == 1 << CAP_NET_BIND_SERVICE
    assert guest.run("ping -c 1 -W 2 10.0.2.2", check=False).returncode == 0
    assert d.stop() == 0


def test_sandbox_refuses_resolv_conf_symlink_outside(tmp_path):
    """In a private mount namespace, /etc/resolv.conf becomes a symlink to /var/..."""
    script = f"""
        set -e
        mount -t tmpfs tmpfs /etc
        ln -s /var/lib/resolv.conf /etc/resolv.conf
        exec {SLIRPD} --enable-sandbox 1
    """
    res = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                         capture_output=True, text=True, timeout=20)
    assert res.returncode == 1
    assert "symlink to /var/lib/resolv.conf, outside /etc and /run" in res.stderr
