"""slirpd under systemd --user: `slirpd install-unit`, the unit it installs
(checked by `systemd-analyze verify`, then its ExecStart run as systemd would
run it, with a NOTIFY_SOCKET the test binds), `slirpd enter`, and logs fit
for journald.

No systemd runs here (it is not PID 1): the test plays the user manager's
part — the runtime directory, NOTIFY_SOCKET, the specifiers and $SLIRPD_ARGS
from the instance's EnvironmentFile.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess

import pytest

from conftest import SLIRPD, as_user, have

SLIRPD_CTL = SLIRPD + "-ctl"


def run_as(user, argv, env=None, **kw):
    kwargs = as_user(user)
    kwargs["env"].update(env or {})
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, **kwargs, **kw)


@pytest.fixture
def installed(plain_user, user_tmp):
    """`slirpd install-unit` run by the plain user with XDG_CONFIG_HOME set:
    -> (config home, unit path)."""
    config = user_tmp / "config"
    res = run_as(plain_user, [SLIRPD, "install-unit"], env={"XDG_CONFIG_HOME": str(config)})
    assert res.returncode == 0, res.stderr
    unit = config / "systemd" / "user" / "slirpd@.service"
    assert f"installed {unit}" in res.stdout
    return config, unit


def test_install_unit_fills_in_paths(installed):
    _config, unit = installed
    text = unit.read_text()
    assert "@SLIRPD@" not in text and "@UNSHARE@" not in text
    exec_start = next(ln for ln in text.splitlines() if ln.startswith("ExecStart="))
    argv = exec_start[len("ExecStart="):].split()
    assert argv[0] == shutil.which("unshare") and os.path.abspath(argv[0]) == argv[0]
    assert argv[argv.index("--") + 1] == SLIRPD
    assert "Type=notify" in text and "RuntimeDirectory=slirpd/%i" in text
    assert oct(unit.stat().st_mode & 0o777) == oct(0o644)


def test_install_unit_default_dir_and_stdout(plain_user, user_tmp, installed):
    home = user_tmp / "home"
    home.mkdir()
    os.chown(home, plain_user.pw_uid, plain_user.pw_gid)
    res = run_as(plain_user, [SLIRPD, "install-unit"], env={"HOME": str(home), "XDG_CONFIG_HOME": "relative/ignored"})
    assert res.returncode == 0, res.stderr
    unit = home / ".config" / "systemd" / "user" / "slirpd@.service"
    assert unit.read_text() == installed[1].read_text()
    res = run_as(plain_user, [SLIRPD, "install-unit", "--stdout"])
    assert res.returncode == 0 and res.stdout == unit.read_text()
    res = run_as(plain_user, [SLIRPD, "install-unit", "--dir", "/proc/forbidden"])
    assert res.returncode == 1 and res.stderr.startswith("slirpd: install-unit: /proc/forbidden")


@pytest.mark.skipif(not have("systemd-analyze"), reason="systemd-analyze is not installed (make deps installs systemd)")
@pytest.mark.timeout(120)
def test_systemd_analyze_verify_accepts_the_unit(installed, user_tmp):
    _config, unit = installed
    instance = user_tmp / "slirpd@demo.service"
    shutil.copy(unit, instance)
    runtime = user_tmp / "runtime"
    runtime.mkdir(mode=0o700)
    env = {**os.environ, "XDG_RUNTIME_DIR": str(runtime)}
    res = subprocess.run(["systemd-analyze", "verify", "--user", str(instance)], capture_output=True, text=True,
                         timeout=60, env=env)
    assert res.returncode == 0 and res.stdout + res.stderr == "", res.stdout + res.stderr
    # the check can fail: a misspelt key is reported
    instance.write_text(unit.read_text().replace("NotifyAccess=", "NotifyAcces="))
    res = subprocess.run(["systemd-analyze", "verify", "--user", str(instance)], capture_output=True, text=True,
                         timeout=60, env=env)
    assert "NotifyAcces" in res.stderr


def expand_exec_start(text: str, name: str, runtime: str, config: str, slirpd_args: str) -> list[str]:
    """ExecStart= of the unit as systemd --user runs it: %t, %i, %E replaced,
    an unquoted $SLIRPD_ARGS split into words."""
    line = next(ln for ln in text.splitlines() if ln.startswith("ExecStart="))[len("ExecStart="):]
    line = line.replace("%t", runtime).replace("%i", name).replace("%E", config)
    argv = []
    for word in line.split():
        argv += shlex.split(slirpd_args) if word == "$SLIRPD_ARGS" else [word]
    assert "%" not in " ".join(argv) and "$" not in " ".join(argv)
    return argv


@pytest.mark.timeout(120)
def test_unit_exec_start_serves_a_namespace(installed, plain_user, user_tmp):
    """What `systemctl --user start slirpd@demo` runs: ready over
    NOTIFY_SOCKET once the namespace is served, reachable with `slirpd
    enter`, its API socket with slirpd ctl, STOPPING=1 and exit 0 on SIGTERM."""
    config, unit = installed
    runtime = user_tmp / "runtime"
    rundir = runtime / "slirpd" / "demo"
    rundir.mkdir(parents=True)
    for d in (runtime, runtime / "slirpd", rundir):
        os.chown(d, plain_user.pw_uid, plain_user.pw_gid)
    conf = config / "slirpd" / "demo.conf"
    conf.parent.mkdir()
    conf.write_text('SLIRPD_ARGS="--mtu=9000 --publish=127.0.0.1:18080:80"\n')
    slirpd_args = shlex.split(conf.read_text().split("=", 1)[1])[0]
    argv = expand_exec_start(unit.read_text(), "demo", str(runtime), str(config), slirpd_args)

    notify_path = str(user_tmp / "notify.sock")
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(notify_path)
    os.chown(notify_path, plain_user.pw_uid, plain_user.pw_gid)
    notify.settimeout(20)
    kw = as_user(plain_user)
    kw["env"].update({"NOTIFY_SOCKET": notify_path, "XDG_RUNTIME_DIR": str(runtime)})
    errf = open(user_tmp / "unit.stderr", "w+")
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=errf, stderr=errf, **kw)
    try:
        msg = notify.recv(4096).decode().split("\n")
        assert msg[0] == "READY=1", msg
        assert msg[1].startswith("STATUS=serving tap0 of ") and "MTU 9000" in msg[1]
        assert os.stat(f"/proc/{proc.pid}/ns/net").st_ino == os.stat("/proc/self/ns/net").st_ino

        enter = [SLIRPD, "enter", "--pid", str(proc.pid), "--runtime-dir", str(runtime), "demo"]
        res = run_as(plain_user, [*enter, "sh", "-c", "id -u; ip -json addr show tap0; ping -c 1 -W 5 10.0.2.2"])
        assert res.returncode == 0, res.stderr
        uid, addrs = res.stdout.split("\n", 2)[:2]
        assert uid == "0"
        tap0 = json.loads(addrs)[0]
        assert tap0["mtu"] == 9000
        assert any(a["local"] == "10.0.2.100" for a in tap0["addr_info"])

        api = str(rundir / "api.sock")
        res = run_as(plain_user, [SLIRPD_CTL, "-s", api, "list"])
        assert res.returncode == 0 and "127.0.0.1:18080\t10.0.2.100:80" in res.stdout, res.stdout + res.stderr
        res = run_as(plain_user, [SLIRPD, "ctl", "-s", api, "--json", "stats"])
        stats = json.loads(res.stdout)["return"]
        assert stats["counters"]["icmp_echo_replies"] >= 1

        res = run_as(plain_user, [SLIRPD, "enter", "--pid", str(proc.pid), "--runtime-dir", str(runtime), "nope",
                                  "true"])
        assert res.returncode == 1 and "cannot join slirpd@nope" in res.stderr

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
        assert notify.recv(4096).decode().startswith("STOPPING=1")
        errf.seek(0)
        assert errf.read() == ""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        notify.close()
        errf.close()


def test_enter_without_instance_fails_clearly(plain_user, user_tmp):
    res = run_as(plain_user, [SLIRPD, "enter", "--runtime-dir", str(user_tmp), "nothing-here"])
    assert res.returncode == 1
    assert "slirpd@nothing-here is not running" in res.stderr


# --- logs for journald -------------------------------------------------------------

def journal_run(plain_user, user_tmp, journal_stream: str | None, *args):
    """Run slirpd with stderr to a file and JOURNAL_STREAM set to journal_stream
    ("self": that file's device and inode) -> its stderr."""
    path = user_tmp / "stderr"
    with open(path, "w") as err:
        st = os.fstat(err.fileno())
        env = {}
        if journal_stream is not None:
            env["JOURNAL_STREAM"] = f"{st.st_dev}:{st.st_ino}" if journal_stream == "self" else journal_stream
        kw = as_user(plain_user)
        kw["env"].update(env)
        rc = subprocess.run([SLIRPD, *args], stdout=subprocess.DEVNULL, stderr=err, timeout=60, **kw).returncode
    assert rc == 1
    return path.read_text()


def test_journal_lines_carry_a_priority_and_nothing_else(plain_user, user_tmp):
    text = journal_run(plain_user, user_tmp, "self", "--configure", "999999999")
    assert text == "<3>no such process: 999999999\n"
    text = journal_run(plain_user, user_tmp, "self", "--debug", "--configure", "999999999")
    lines = text.splitlines()
    assert lines and all(re.match(r"^<[0-7]>\S", ln) for ln in lines), lines
    assert not any(re.search(r"\d\d:\d\d:\d\d|\d{4}-\d\d-\d\d", ln) for ln in lines)


@pytest.mark.parametrize("stream", [None, "1:1", "garbage"])
def test_not_the_journal_plain_lines(plain_user, user_tmp, stream):
    """Without JOURNAL_STREAM, or when it names another file (stderr was
    redirected), lines start with "slirpd: "."""
    assert journal_run(plain_user, user_tmp, stream, "--configure", "999999999") == \
        "slirpd: no such process: 999999999\n"
