"""slirpd under `systemd --user`: the slirpd@.service template and the two
commands that go with it.

- `slirpd install-unit [--dir DIR] [--stdout]` writes the template shipped in
  this package (slirpd/slirpd@.service) to
  $XDG_CONFIG_HOME/systemd/user/ (~/.config/systemd/user/ by default), with
  the absolute paths of unshare and of this slirpd filled in.
- `slirpd enter [--pid PID] NAME [COMMAND [ARG]...]` runs COMMAND (default:
  $SHELL) in instance NAME's network namespace.  The instance's slirpd
  (systemd's MainPID of slirpd@NAME, or --pid) runs in a user and mount
  namespace of its own, where $XDG_RUNTIME_DIR/slirpd/NAME/netns is the
  namespace; enter joins those two namespaces, then the network namespace,
  keeping the caller's uid (root in there), and execs COMMAND.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from slirpd._linux import CLONE_NEWNET, CLONE_NEWNS, CLONE_NEWUSER, setns

TEMPLATE = Path(__file__).parent / "slirpd@.service"
UNIT_NAME = "slirpd@.service"


def _fail(message: str) -> int:
    print(f"slirpd: {message}", file=sys.stderr)
    return 1


def slirpd_path() -> str | None:
    """The absolute path of the slirpd command running now (the console
    script of this installation), or the one on $PATH."""
    argv0 = os.path.abspath(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    if os.path.basename(argv0) == "slirpd" and os.access(argv0, os.X_OK):
        return argv0
    beside = Path(sys.executable).parent / "slirpd"
    if os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("slirpd")
    return os.path.abspath(found) if found else None


def unit_text(slirpd: str, unshare: str) -> str:
    """The template with the two paths filled in."""
    for path in (slirpd, unshare):
        if not os.path.isabs(path) or any(c.isspace() or c in "%$\\\"'" for c in path):
            raise ValueError(f"cannot put {path!r} in a unit file: it must be absolute, without spaces, "
                             "quotes, % or $")
    return TEMPLATE.read_text().replace("@SLIRPD@", slirpd).replace("@UNSHARE@", unshare)


def unit_dir() -> Path:
    """Where systemd --user looks for the user's own units."""
    config = os.environ.get("XDG_CONFIG_HOME") or ""
    if not os.path.isabs(config):  # the XDG spec: relative values are ignored
        config = os.path.join(os.path.expanduser("~"), ".config")
    return Path(config) / "systemd" / "user"


def install_unit(argv: list[str]) -> int:
    """The `slirpd install-unit` command. Return: exit status."""
    p = argparse.ArgumentParser(prog="slirpd install-unit",
                                description=f"Install {UNIT_NAME} for systemd --user.")
    p.add_argument("--dir", help="directory to write to (default: $XDG_CONFIG_HOME/systemd/user)")
    p.add_argument("--stdout", action="store_true", help="print the unit instead of writing it")
    ns = p.parse_args(argv)
    slirpd = slirpd_path()
    unshare = shutil.which("unshare")
    if slirpd is None:
        return _fail("install-unit: cannot find the slirpd command")
    if unshare is None:
        return _fail("install-unit: unshare (util-linux) is not installed: the unit needs it")
    try:
        text = unit_text(slirpd, os.path.abspath(unshare))
    except ValueError as e:
        return _fail(f"install-unit: {e}")
    if ns.stdout:
        sys.stdout.write(text)
        return 0
    directory = Path(ns.dir) if ns.dir else unit_dir()
    target = directory / UNIT_NAME
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{UNIT_NAME}.")
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except OSError as e:
        return _fail(f"install-unit: {e.filename or directory}: {e.strerror}")
    print(f"installed {target}\n"
          f"next: systemctl --user daemon-reload && systemctl --user start slirpd@NAME\n"
          f"then: slirpd enter NAME")
    return 0


def _main_pid(name: str) -> int | None:
    """MainPID of slirpd@name according to systemd --user, None if unknown."""
    systemctl = shutil.which("systemctl")
    if systemctl is None:
        return None
    res = subprocess.run([systemctl, "--user", "show", "--property=MainPID", "--value", f"slirpd@{name}.service"],
                         capture_output=True, text=True, check=False)
    value = res.stdout.strip()
    return int(value) if res.returncode == 0 and value.isdigit() and int(value) > 0 else None


def enter(argv: list[str]) -> int:
    """The `slirpd enter` command: exec a command in an instance's network
    namespace. Return: exit status (only on failure)."""
    p = argparse.ArgumentParser(prog="slirpd enter",
                                description="Run COMMAND (default: $SHELL) in slirpd@NAME's network namespace.")
    p.add_argument("--pid", type=int, help="the instance's slirpd process (default: systemd's MainPID)")
    p.add_argument("--runtime-dir", help="default: $XDG_RUNTIME_DIR")
    p.add_argument("name")
    p.add_argument("command", nargs=argparse.REMAINDER)
    ns = p.parse_args(argv)
    runtime = ns.runtime_dir or os.environ.get("XDG_RUNTIME_DIR")
    if not runtime:
        return _fail("enter: XDG_RUNTIME_DIR is not set (or use --runtime-dir)")
    if "/" in ns.name or ns.name in (".", ".."):
        return _fail(f"enter: bad instance name {ns.name!r}")
    pid = ns.pid or _main_pid(ns.name)
    if pid is None:
        return _fail(f"enter: slirpd@{ns.name} is not running (or give --pid)")
    netns = os.path.join(runtime, "slirpd", ns.name, "netns")
    command = ns.command or [os.environ.get("SHELL") or "/bin/sh"]
    cwd = os.getcwd()
    try:
        userns = os.open(f"/proc/{pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
        mntns = os.open(f"/proc/{pid}/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
        setns(userns, CLONE_NEWUSER)
        setns(mntns, CLONE_NEWNS)
        netns_fd = os.open(netns, os.O_RDONLY | os.O_CLOEXEC)
        setns(netns_fd, CLONE_NEWNET)
    except OSError as e:
        return _fail(f"enter: cannot join slirpd@{ns.name} (pid {pid}): {e.strerror or e}")
    for fd in (userns, mntns, netns_fd):
        os.close(fd)
    try:
        os.chdir(cwd)
    except OSError:
        os.chdir("/")
    try:
        os.execvp(command[0], command)
    except OSError as e:
        return _fail(f"enter: {command[0]}: {e.strerror}")
