"""Standalone modes, as a plain user: `slirpd -- COMMAND` and the
slirp-forwarder mode `--create-netns=PATH`."""

import contextlib
import os
import shlex
import signal
import subprocess
import time

import pytest

from lib.harness import as_user, environ_without_preload, session_processes, slirpd_argv, wait_for


@pytest.fixture(autouse=True)
def nothing_left(plain_user):
    """Pass or fail, a test here leaves no process running that it started
    as the plain user: what is left after 10 s is killed and fails it."""
    yield
    deadline = time.monotonic() + 10
    while session_processes(plain_user) and time.monotonic() < deadline:
        time.sleep(0.1)
    pids = session_processes(plain_user)
    if pids:
        ps = subprocess.run(["ps", "-o", "pid,ppid,stat,args", "-p", ",".join(map(str, pids))], capture_output=True,
                            text=True, timeout=10, env=environ_without_preload()).stdout
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        pytest.fail(f"processes of {plain_user.pw_name} left running:\n{ps}")


@contextlib.contextmanager
def slirpd_in_background(plain_user, *args: str, wrap=()):
    """slirpd ARGS started as plain_user (behind wrap, an argv prefix);
    killed and reaped on the way out, whatever happened."""
    proc = subprocess.Popen([*wrap, *slirpd_argv(*args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            **as_user(plain_user))
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()


def slirpd_run(plain_user, *args, timeout=30):
    return subprocess.run(slirpd_argv(*args), capture_output=True, text=True, timeout=timeout, **as_user(plain_user))


@pytest.mark.daemon
def test_command_gets_configured_network(plain_user):
    res = slirpd_run(plain_user, "--", "sh", "-c",
                     "id -u; ip -4 -br addr show tap0; ip route show default; cat /etc/resolv.conf;"
                     " ping -c 1 -W 2 10.0.2.2 >/dev/null && echo PING-OK")
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0] == "0"  # the caller is root in the new user namespace
    assert "10.0.2.100/24" in lines[1]
    assert lines[2].startswith("default via 10.0.2.2 dev tap0")
    assert "nameserver 10.0.2.3" in lines
    assert lines[-1] == "PING-OK"
    assert res.stderr == ""


@pytest.mark.daemon
def test_host_resolv_conf_untouched(plain_user):
    before = open("/etc/resolv.conf").read()
    res = slirpd_run(plain_user, "--", "cat", "/etc/resolv.conf")
    assert res.stdout == "nameserver 10.0.2.3\n"
    assert open("/etc/resolv.conf").read() == before


@pytest.mark.daemon
def test_options_apply_to_command(plain_user):
    res = slirpd_run(plain_user, "--mtu=65520", "--cidr=10.9.0.0/16", "--", "sh", "-c",
                     "cat /sys/class/net/tap0/mtu; ip -4 -br addr show tap0")
    assert res.returncode == 0, res.stderr
    mtu, addr = res.stdout.splitlines()
    assert mtu == "65520" and "10.9.0.100/16" in addr


@pytest.mark.daemon
@pytest.mark.parametrize("lc_ctype", [None, "C.UTF-8", "fr_FR.UTF-8"])
def test_command_gets_callers_environment(plain_user, lc_ctype):
    """The command's environment is the caller's: not Python's coerced
    locale (LC_CTYPE=C.UTF-8 when the caller has none), but what the caller
    set, as is."""
    env = {k: v for k, v in as_user(plain_user)["env"].items() if not k.startswith("LC_") and k != "LANG"}
    if lc_ctype:
        env["LC_CTYPE"] = lc_ctype
    res = subprocess.run(slirpd_argv("--", "sh", "-c", 'echo "LC_CTYPE=${LC_CTYPE-unset} HOME=$HOME"'),
                         capture_output=True, text=True, timeout=30, **{**as_user(plain_user), "env": env})
    assert res.returncode == 0, res.stderr
    assert res.stdout == f"LC_CTYPE={lc_ctype or 'unset'} HOME=/\n"


@pytest.mark.daemon
def test_exit_status_passes_through(plain_user):
    assert slirpd_run(plain_user, "--", "false").returncode == 1
    assert slirpd_run(plain_user, "--", "sh", "-c", "exit 42").returncode == 42
    res = slirpd_run(plain_user, "--", "/nonexistent/command")
    assert res.returncode == 127
    assert "slirpd: /nonexistent/command: No such file or directory" in res.stderr


@pytest.mark.daemon
def test_no_command_runs_shell(plain_user):
    env = {**as_user(plain_user)["env"], "SHELL": "/bin/sh"}
    res = subprocess.run(slirpd_argv("--"), input="echo from-shell; exit 3\n", capture_output=True, text=True,
                         timeout=30, **{**as_user(plain_user), "env": env})
    assert res.returncode == 3 and res.stdout == "from-shell\n"


@pytest.mark.daemon
def test_signals_reach_command(plain_user, user_tmp):
    marker = user_tmp / "got"
    script = f"trap 'echo $1 > {marker}; exit 9' HUP; trap 'echo TERM > {marker}; exit 5' TERM; " \
             f"echo ready > {marker}; while :; do sleep 0.1; done"
    with slirpd_in_background(plain_user, "--", "sh", "-c", script, "sh", "HUP") as proc:
        wait_for(lambda: marker.exists() and marker.read_text() == "ready\n", 20, "the command to start")
        proc.send_signal(signal.SIGHUP)
        assert proc.wait(timeout=10) == 9
        assert marker.read_text() == "HUP\n"


def _ignored_signals(pid: int) -> int:
    status = open(f"/proc/{pid}/status").read()
    return int(next(ln for ln in status.splitlines() if ln.startswith("SigIgn:")).split()[1], 16)


@pytest.mark.daemon
def test_nohup_keeps_sighup_ignored(plain_user, user_tmp):
    """Under nohup (SIGHUP ignored) the command starts with SIGHUP ignored
    too, and a SIGHUP to slirpd is not passed on, as nohup promises; SIGTERM
    still is.  Python's own SIGPIPE and SIGXFSZ are not passed down."""
    marker = user_tmp / "got"
    script = f"trap 'echo TERM > {marker}; exit 5' TERM; grep SigIgn /proc/$$/status > {marker}; " \
             "while :; do sleep 0.1; done"
    with slirpd_in_background(plain_user, "--", "sh", "-c", script, wrap=["nohup"]) as proc:
        wait_for(lambda: marker.exists() and marker.read_text().startswith("SigIgn"), 20, "the command to start")
        ignored = int(marker.read_text().split()[1], 16)
        assert ignored & 1 << (signal.SIGHUP - 1)
        assert not ignored & (1 << (signal.SIGPIPE - 1) | 1 << (signal.SIGXFSZ - 1))
        assert _ignored_signals(proc.pid) & 1 << (signal.SIGHUP - 1)  # slirpd's own
        proc.send_signal(signal.SIGHUP)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 5
        assert marker.read_text() == "TERM\n"


@pytest.mark.daemon
def test_command_dies_with_slirpd(plain_user, user_tmp):
    """SIGKILL leaves slirpd no chance to stop its command: the kernel kills
    it (PR_SET_PDEATHSIG), even one that ignores every other signal."""
    pidfile = user_tmp / "pid"
    script = f"trap '' TERM HUP INT; echo $$ > {pidfile}; while :; do sleep 0.1; done"
    with slirpd_in_background(plain_user, "--", "sh", "-c", script) as proc:
        wait_for(lambda: pidfile.exists() and pidfile.read_text().strip().isdigit(), 20, "the command to start")
        shell = int(pidfile.read_text())
        assert os.path.exists(f"/proc/{shell}")
        proc.kill()
        proc.wait(timeout=10)
        wait_for(lambda: not os.path.exists(f"/proc/{shell}") or
                 open(f"/proc/{shell}/stat").read().split()[2] == "Z", 10, "the command to die")


@pytest.mark.daemon
def test_sigterm_reaches_command_and_nothing_is_left(plain_user, user_tmp):
    marker = user_tmp / "got"
    script = f"trap 'echo TERM > {marker}; exit 5' TERM; echo ready > {marker}; while :; do sleep 0.1; done"
    with slirpd_in_background(plain_user, "--", "sh", "-c", script) as proc:
        wait_for(lambda: marker.exists() and marker.read_text() == "ready\n", 20, "the command to start")
        children = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True, timeout=10,
                                  env=environ_without_preload()).stdout.split()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 5
        assert marker.read_text() == "TERM\n"
        for pid in children:
            assert not os.path.exists(f"/proc/{pid}")


@pytest.mark.daemon
def test_command_conflicts(plain_user):
    for args in (["1", "--", "true"], ["--netns-type=path", "--", "true"], ["--create-netns=/tmp/x", "--", "true"]):
        res = slirpd_run(plain_user, *args)
        assert res.returncode == 1 and len(res.stderr.splitlines()) == 1, (args, res.stderr)


@pytest.mark.daemon
def test_create_netns_like_slirp_forwarder(plain_user, user_tmp):
    """The slirp-forwarder README's steps, with slirpd in its place."""
    netfile = user_tmp / "net"
    ready = user_tmp / "ready"
    script = f"""
        set -e
        touch {netfile}
        {shlex.join(slirpd_argv(f"--create-netns={netfile}"))} --ready-fd=3 3>{ready} &
        daemon=$!
        i=0; while [ ! -s {ready} ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
        nsenter --net={netfile} ip -br link show tap0
        nsenter --net={netfile} sh -c 'ip link set tap0 up && ip addr add 10.0.2.100/24 dev tap0 &&
            ping -c 1 -W 2 10.0.2.2 >/dev/null && echo PING-OK'
        kill $daemon; wait $daemon; echo "exit=$?"
        grep -c " {netfile} " /proc/self/mountinfo || true
    """
    res = subprocess.run(["unshare", "-mr", "sh", "-c", script], capture_output=True, text=True, timeout=60,
                         **as_user(plain_user))
    assert res.returncode == 0, res.stdout + res.stderr
    lines = res.stdout.splitlines()
    assert lines[0].startswith("tap0")
    assert lines[1:] == ["PING-OK", "exit=0", "0"]  # ... and the bind mount is gone


@pytest.mark.daemon
def test_create_netns_without_privilege_fails_clearly(plain_user, user_tmp):
    res = slirpd_run(plain_user, f"--create-netns={user_tmp / 'net'}")
    assert res.returncode == 1
    assert "--create-netns:" in res.stderr and "unshare -mr" in res.stderr


@pytest.mark.daemon
def test_command_reaches_host_dns_and_files(plain_user, dns_server, user_tmp):
    """The issue's example: address, ping, DNS through 10.0.2.3 (also as the
    command's resolv.conf), a file from the host's loopback, intact."""
    import hashlib
    import http.server
    import threading

    from lib.dns import ADDR, NAME

    payload = os.urandom(2 << 20)
    (user_tmp / "f.bin").write_bytes(payload)
    handler = lambda *a: http.server.SimpleHTTPRequestHandler(*a, directory=str(user_tmp))  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        # env -u LD_PRELOAD: under make test-asan's preloaded runtimes, curl deadlocks
        res = slirpd_run(plain_user, "--", "env", "-u", "LD_PRELOAD", "sh", "-c",
                         "ip -4 -br addr show tap0; ping -c 1 -W 2 10.0.2.2 >/dev/null && echo PING-OK;"
                         f" dig @10.0.2.3 +short +time=2 +tries=1 {NAME}; dig +short +time=2 +tries=1 {NAME};"
                         f" curl -sf http://10.0.2.2:{server.server_address[1]}/f.bin | sha256sum", timeout=60)
    finally:
        server.shutdown()
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert "10.0.2.100/24" in lines[0]
    assert lines[1:4] == ["PING-OK", ADDR, ADDR]
    assert lines[4].split()[0] == hashlib.sha256(payload).hexdigest()


@pytest.mark.daemon
def test_subordinate_ids_mapped_with_newuidmap(plain_user, user_tmp):
    """With a /etc/subuid range (bind-mounted in the sandbox: the host's file is
    untouched), the command's user namespace maps it too."""
    import shutil
    import subprocess as sp

    assert shutil.which("newuidmap"), "newuidmap (uidmap, installed by make deps) is missing"
    for name in ("subuid", "subgid"):
        f = user_tmp / name
        f.write_text(f"{plain_user.pw_name}:300000:65536\n")
        f.chmod(0o644)
        sp.run(["mount", "--bind", str(f), f"/etc/{name}"], check=True)
    try:
        res = slirpd_run(plain_user, "--", "cat", "/proc/self/uid_map", "/proc/self/gid_map")
    finally:
        for name in ("subuid", "subgid"):
            sp.run(["umount", f"/etc/{name}"], check=True)
    assert res.returncode == 0, res.stderr
    maps = [line.split() for line in res.stdout.splitlines()]
    assert maps == [["0", str(plain_user.pw_uid), "1"], ["1", "300000", "65536"],
                    ["0", str(plain_user.pw_gid), "1"], ["1", "300000", "65536"]]
