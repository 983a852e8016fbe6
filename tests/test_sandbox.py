"""--enable-sandbox: the daemon sees only /etc and /run of the host, all of
it read-only, nosuid, nodev and noexec, holds no capability but
CAP_NET_BIND_SERVICE, no descriptor of a directory outside its root, and
keeps serving."""

import json
import os
import shutil
import signal
import subprocess
import sys

import pytest

from lib.harness import SLIRPD, environ_without_preload, wait_for
from lib.lockdown import ATTEMPTS, assert_locked_down


def test_sandbox_hides_host_files_as_plain_user(guest, start_slirpd):
    d = start_slirpd("-c", "--enable-sandbox", str(guest.pid))
    root = f"/proc/{d.proc.pid}/root"
    assert sorted(os.listdir(root)) == ["etc", "run"]
    assert os.path.exists(f"{root}/etc/passwd")
    assert not os.path.exists(f"{root}/usr") and not os.path.exists(f"{root}/tmp")
    assert_locked_down(d.proc.pid)
    res = guest.run("ping -c 2 -i 0.2 -W 2 10.0.2.2", check=False)
    assert res.returncode == 0, res.stdout + res.stderr
    assert d.counters()["icmp_echo_replies"] >= 2  # SIGUSR1 works in the sandbox
    assert d.stop() == 0


def test_sandbox_as_root_keeps_only_net_bind_service(guest, start_slirpd):
    d = start_slirpd("-c", "--enable-sandbox", str(guest.pid), user=None)
    assert sorted(os.listdir(f"/proc/{d.proc.pid}/root")) == ["etc", "run"]
    assert_locked_down(d.proc.pid)
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


# Run as root from the test's side: enter the sandboxed daemon's mount
# namespace (root with every capability: a stronger hand than the daemon's)
# and try to write and to execute where the daemon could reach.
PROBE = r"""
import ctypes, json, os, sys
pid, tool_in_run = int(sys.argv[1]), sys.argv[2]
libc = ctypes.CDLL(None, use_errno=True)
mnt = os.open(f"/proc/{pid}/ns/mnt", os.O_RDONLY)
if libc.setns(mnt, 0x00020000) != 0:
    sys.exit(f"setns: {os.strerror(ctypes.get_errno())}")
os.chdir("/")
""" + ATTEMPTS + r"""
def create(path):
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o755))

attempt("create /probe", lambda: create("/probe"))
attempt("mkdir /probe", lambda: os.mkdir("/probe"))
attempt("create /etc/probe", lambda: create("/etc/probe"))
attempt("write /etc/hostname", lambda: os.close(os.open("/etc/hostname", os.O_WRONLY)))
attempt("create /run/probe", lambda: create("/run/probe"))
attempt("create /run/lock/probe", lambda: create("/run/lock/probe"))
attempt("chmod /run/lock", lambda: os.chmod("/run/lock", 0o777))
attempt("exec /etc/hostname", lambda: os.execv("/etc/hostname", ["probe"]))
attempt("exec " + tool_in_run, lambda: os.execv(tool_in_run, ["probe"]))
results["dirs"] = sorted(os.listdir("/"))
results["/etc and /run are directories"] = os.path.isdir("/etc") and os.path.isdir("/run")
with open("/run/lock/resolv.conf") as f:  # a symlink into /run, as systemd-resolved's
    results["resolv.conf"] = f.read()
print(json.dumps(results), flush=True)
"""


@pytest.fixture(params=["plain user", "root"])
def sandboxed(request, guest, start_slirpd, user_tmp, plain_user):
    """A sandboxed daemon (as the plain user, or as root) started in a
    private mount namespace where the host has a submount under /run
    (/run/lock: a directory of the test's, with an executable and a
    resolv.conf symlink into /run) and a file bind-mounted under /etc (an
    executable over /etc/hostname): what the sandbox must lock down too."""
    run_lock = user_tmp / "run-lock"
    run_lock.mkdir()
    tool = run_lock / "tool"
    shutil.copy("/bin/true", tool)
    tool.chmod(0o755)
    (run_lock / "stub-resolv.conf").write_text("nameserver 127.0.0.53\n")
    (run_lock / "resolv.conf").symlink_to("/run/lock/stub-resolv.conf")
    hostname = user_tmp / "hostname"
    shutil.copy("/bin/true", hostname)
    hostname.chmod(0o755)
    assert subprocess.run([str(tool)]).returncode == 0  # executable on the host
    become = "" if request.param == "root" else \
        f"setpriv --reuid={plain_user.pw_uid} --regid={plain_user.pw_gid} --clear-groups -- "
    setup = (f"mount --bind {run_lock} /run/lock && mount --bind {hostname} /etc/hostname && "
             f'exec {become}"$@"')
    api_sock = user_tmp / "api.sock"
    d = start_slirpd("-c", "--enable-sandbox", f"--api-socket={api_sock}", str(guest.pid), user=None,
                     wrap=["unshare", "--mount", "--propagation", "private", "sh", "-c", setup, "sh"])
    d.api_sock, d.run_lock, d.guest = api_sock, run_lock, guest
    return d


def probe(d) -> dict:
    res = subprocess.run([sys.executable, "-c", PROBE, str(d.proc.pid), "/run/lock/tool"], capture_output=True,
                         text=True, timeout=30)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def test_nothing_inside_is_writable_or_executable(sandboxed):
    """From inside the daemon's mount namespace, as root: no file can be
    created or changed in /, /etc, /run or a submount of theirs, nothing
    there can be executed, and the daemon's mount table says why (every
    mount read-only, nosuid, nodev, noexec)."""
    got = probe(sandboxed)
    writes = [k for k in got if k.startswith(("create", "mkdir", "write", "chmod"))]
    assert {k: got[k] for k in writes} == {k: "EROFS" for k in writes} and len(writes) == 7
    assert got["exec /etc/hostname"] == got["exec /run/lock/tool"] == "EACCES"  # noexec
    assert got["dirs"] == ["etc", "run"] and got["/etc and /run are directories"]
    assert {"/", "/etc", "/etc/hostname", "/run", "/run/lock"} <= assert_locked_down(sandboxed.proc.pid)
    assert sandboxed.guest.run("ping -c 1 -W 2 10.0.2.2", check=False).returncode == 0


def test_resolver_files_the_host_renames_show_inside(sandboxed):
    """/etc and /run are the host's directories, not copies: a file that the
    host replaces by rename (as resolvers rewrite theirs) is the new one
    inside, also through a symlink."""
    assert probe(sandboxed)["resolv.conf"] == "nameserver 127.0.0.53\n"
    new = sandboxed.run_lock / "stub-resolv.conf.new"
    new.write_text("nameserver 192.0.2.53\n")
    os.rename(new, sandboxed.run_lock / "stub-resolv.conf")
    assert probe(sandboxed)["resolv.conf"] == "nameserver 192.0.2.53\n"


def test_no_descriptor_outside_the_root_and_capabilities(sandboxed):
    """No descriptor of a directory (the API socket's directory was one: a
    way out under seccomp), only CAP_NET_BIND_SERVICE; the API socket still
    goes away when the daemon exits."""
    assert_locked_down(sandboxed.proc.pid)
    assert os.path.exists(sandboxed.api_sock)
    assert sandboxed.stop() == 0
    assert not os.path.exists(sandboxed.api_sock)


def test_api_socket_removed_even_when_the_daemon_is_killed(sandboxed):
    """The helper that removes the socket file outlives a SIGKILLed daemon
    just long enough to remove it, then exits."""
    helpers = subprocess.run(["pgrep", "-P", str(sandboxed.proc.pid)], capture_output=True, text=True,
                             timeout=10, env=environ_without_preload()).stdout.split()
    assert [open(f"/proc/{p}/comm").read() for p in helpers] == ["slirpd-sockrm\n"]
    sandboxed.proc.send_signal(signal.SIGKILL)
    sandboxed.proc.wait(timeout=10)
    wait_for(lambda: not os.path.exists(sandboxed.api_sock), 10, "the socket file to be removed")
    wait_for(lambda: not os.path.exists(f"/proc/{helpers[0]}"), 10, "the helper to exit")
