"""Start-up's structure (issue 19), never its timing (bench/startup.py
measures that): what a real start imports before ready, process by process,
and the pieces that replace heavier modules on the way.

An audit hook (PEP 578's "import" event) in a wrapper that then runs
slirpd's main() as its console script does logs every module actually
imported, with the importing process's pid: the daemon itself, and the
namespace helper and `-- COMMAND`'s child it forks.  The log is read once
ready has fired; the daemon imports nothing afterwards (under the sandbox
and seccomp it could not).  slirpd as pasta is ready when its parent exits
0 (podman's argv) or, in the foreground (rootlesskit's), when --pid FILE is
written: the parent's imports are all before ready, the daemon's (forked
then) after it.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from lib.harness import as_user, wait_for
from lib.pastalib import rootlesskit_argv

HOOK = """
import os, sys
log = open(sys.argv.pop(1), "a", buffering=1)
sys.addaudithook(lambda event, args: event == "import" and log.write(f"{os.getpid()} {args[0]}\\n"))
from slirpd.main import main
sys.exit(main())
"""
# Never on the way to ready, whatever the options
NEVER = {"pyroute2", "asyncio", "logging", "argparse", "dataclasses", "inspect"}
# Not with plain options either: what only the sandbox, seccomp (pyseccomp),
# -a, the standalone modes or the subcommands need, and what only the
# namespace helper imports
PLAIN = NEVER | {"json", "re", "ctypes", "subprocess", "shutil", "tempfile", "typing", "threading", "slirpd.api",
                 "slirpd.sandbox", "slirpd.seccomp", "slirpd.standalone", "slirpd.configure", "slirpd.rtnl",
                 "slirpd.unit", "slirpd.ctl"}
SERVING = {"slirpd.main", "slirpd.daemon", "slirpd.dataplane", "slirpd.netns", "socket", "ipaddress"}


def logged_imports(log: Path) -> dict[int, set[str]]:
    """The modules HOOK logged so far, by the pid that imported them."""
    imports: dict[int, set[str]] = {}
    for line in log.read_text().splitlines():
        pid, name = line.split()
        imports.setdefault(int(pid), set()).add(name)
    return imports


def start_logged(user, log: Path, *args: str) -> tuple[subprocess.Popen, dict[int, set[str]]]:
    """Start slirpd ARGS (with a ready fd, its stdout a pipe) through HOOK
    as user; once ready, the modules each process imported so far."""
    rfd, wfd = os.pipe()
    try:
        proc = subprocess.Popen([sys.executable, "-c", HOOK, str(log), f"--ready-fd={wfd}", *args],
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                pass_fds=(wfd,), **as_user(user))
        os.close(wfd)
        wfd = -1
        got = os.read(rfd, 1) if select.select([rfd], [], [], 30)[0] else b""
    finally:
        os.close(rfd)
        if wfd >= 0:
            os.close(wfd)
    imports = logged_imports(log)
    if got != b"1":
        proc.kill()
        pytest.fail(f"not ready: {proc.communicate(timeout=30)[1].decode()}")
    return proc, imports


def stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=30)


# name: (options, what the daemon must not have imported before ready)
MODES = {
    "attach": (["-c"], PLAIN),
    "options": (["-c", "-6", "--mtu=65520", "--macaddress=02:11:22:33:44:55", "--publish=18080:80"],
                PLAIN - {"re"}),
    "api": (["-c", "--api-socket=API"], NEVER | {"subprocess", "tempfile", "typing", "slirpd.sandbox", "slirpd.seccomp",
                                                 "slirpd.standalone", "slirpd.configure", "slirpd.rtnl"}),
    "hardened": (["-c", "--enable-sandbox", "--enable-seccomp"], NEVER | {"json", "slirpd.api", "slirpd.standalone",
                                                                          "slirpd.configure", "slirpd.rtnl"}),
}


# slirpd runs through HOOK (python -c): the marker says so, the audit hook cannot
@pytest.mark.daemon
@pytest.mark.parametrize("mode", MODES)
def test_attach_imports_before_ready(guest, plain_user, user_tmp, mode):
    options, forbidden = MODES[mode]
    options = [o.replace("API", str(user_tmp / "api.sock")) for o in options]
    proc, imports = start_logged(plain_user, user_tmp / "imports", *options, str(guest.pid), "tap0")
    try:
        daemon = imports.pop(proc.pid)
        assert SERVING <= daemon
        assert daemon & forbidden == set()
        (helper,) = imports.values()  # the namespace helper: the netlink path, without pyroute2
        assert {"slirpd.configure", "slirpd.rtnl"} <= helper
        assert helper & NEVER == set()
    finally:
        stop(proc)


@pytest.mark.daemon
def test_command_imports_before_ready(plain_user, user_tmp):
    """-- COMMAND: the daemon loads ctypes once for its two children (the
    command's and the helper); the command's imports nothing (not tempfile,
    which with shutil cost it 10 ms of CPU), the helper the netlink path;
    the children's imports are read once the command runs."""
    log = user_tmp / "imports"
    proc, imports = start_logged(plain_user, log, "--", "sh", "-c", "echo started; exec sleep 60")
    try:
        daemon = imports.pop(proc.pid)
        assert SERVING | {"slirpd.standalone", "ctypes"} <= daemon
        assert daemon & (PLAIN - {"ctypes", "slirpd.standalone"}) == set()
        assert select.select([proc.stdout], [], [], 30)[0] and proc.stdout.readline() == b"started\n"
        imports = logged_imports(log)
        assert imports.pop(proc.pid) == daemon  # nothing more since ready
        children = list(imports.values())
        assert sorted("slirpd.rtnl" in c for c in children) == [False, True]
        assert all("tempfile" not in c and "shutil" not in c for c in children)
        assert all(c & NEVER == set() for c in children)
    finally:
        stop(proc)


# The pasta interface before its readiness: neither what NEVER lists nor
# what only the daemon (seccomp's library, after the fork), a command, the
# namespace file's watch (--netns) or the slirp4netns interface's options need
PASTA_NEVER = NEVER | {"re", "ctypes", "pickle", "typing", "json", "pyseccomp", "subprocess", "slirpd.standalone",
                       "slirpd.nswatch", "slirpd.configure", "slirpd.api"}
PASTA_SERVING = {"slirpd.pasta.main", "slirpd.pasta.net", "slirpd.rtnl", "slirpd.daemon", "slirpd.dataplane"}
# podman's argv (tests/pastalib.py's podman_argv), on a PID: --netns needs
# the namespace file's watch
PODMAN_PASTA = ["--config-net", "-t", "18090-18090:80-80", "--dns-forward", "169.254.1.1", "-u", "none", "-T", "none",
                "-U", "none", "--no-map-gw", "--quiet", "--map-guest-addr", "169.254.1.2"]


def test_pasta_imports_before_exit(guest, plain_user, user_tmp):
    """podman's way: everything the parent imported came before its exit 0;
    the namespace helper configured the namespace without pyroute2 or
    asyncio either; the daemon loaded seccomp's library once forked."""
    log, pid_file = user_tmp / "imports", user_tmp / "pasta.pid"
    proc = subprocess.Popen([sys.executable, "-c", HOOK, str(log), "pasta", *PODMAN_PASTA, "--pid", str(pid_file),
                             str(guest.pid)], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, **as_user(plain_user))
    out, err = proc.communicate(timeout=60)  # to EOF, as podman reads them
    assert (proc.returncode, out, err) == (0, "", "")
    daemon_pid = int(pid_file.read_text())
    try:
        imports = logged_imports(log)
        parent = imports.pop(proc.pid)
        assert PASTA_SERVING <= parent
        assert parent & PASTA_NEVER == set()
        wait_for(lambda: "pyseccomp" in logged_imports(log).get(daemon_pid, set()), 10, "seccomp's library loaded")
        imports.pop(daemon_pid, None)
        (helper,) = imports.values()  # the namespace helper
        assert helper & NEVER == set()
        assert ip_addresses(guest, "up0") == ["198.51.100.1/24", "2001:db8::1/64"]
    finally:
        os.kill(daemon_pid, signal.SIGTERM)
        wait_for(lambda: not os.path.exists(f"/proc/{daemon_pid}"), 10, "the pasta daemon to exit")


def test_pasta_foreground_imports(guest, plain_user, user_tmp):
    """rootlesskit's way (in the foreground, ready when --pid FILE is
    written): no pyroute2, asyncio, dataclasses... until then, nor after it
    (its implicit port driver's watcher, -t auto, has its own sock_diag)."""
    log, pid_file = user_tmp / "imports", user_tmp / "pasta.pid"
    proc = subprocess.Popen([sys.executable, "-c", HOOK, str(log), "pasta", "--pid", str(pid_file),
                             *rootlesskit_argv(guest.pid)], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, **as_user(plain_user))
    try:
        wait_for(lambda: proc.poll() is not None or (pid_file.exists() and pid_file.read_text()), 30, "pasta ready")
        assert proc.poll() is None, proc.stdout.read()
        daemon = logged_imports(log)[proc.pid]
        assert PASTA_SERVING | {"slirpd.autofwd"} <= daemon
        assert daemon & NEVER == set()
    finally:
        stop(proc)


def ip_addresses(guest, ifname: str) -> list[str]:
    """ifname's addresses in the guest, ADDR/PREFIX, link-local ones left out."""
    (link,) = guest.ip_json("addr", "show", ifname)
    return [f"{a['local']}/{a['prefixlen']}" for a in link["addr_info"] if a["scope"] != "link"]


def test_counters_line_is_the_json_it_was():
    """daemon.compact_json() writes the SIGUSR1 line as json.dumps with
    compact separators did, for every counter the data plane has, and
    refuses what it cannot write the same way."""
    from slirpd.daemon import compact_json
    from slirpd.dataplane import counter_names

    line = {**{name: i * 7919 for i, name in enumerate(counter_names())},
            "sockets": {"budget": 2 ** 33, "guest": 0, "degraded": True, "paused": False}}
    assert len(line) > 50
    assert compact_json(line) == json.dumps(line, separators=(",", ":"))
    for bad in ({"a b": 1}, {"a": 1.5}, {"a": "text"}, {1: 1}, {"a": [1]}, {"é": 1}):
        with pytest.raises(TypeError):
            compact_json(bad)
