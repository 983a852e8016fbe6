"""What a locked-down daemon looks like: from outside, in /proc (its mounts,
descriptors and capabilities: test_sandbox.py, test_bess.py), and to a
probe script that tries what it should not be able to do (test_sandbox.py,
test_seccomp.py)."""

from __future__ import annotations

import os
import stat

CAP_NET_BIND_SERVICE = 10
O_DIRECTORY = 0o200000
O_PATH = 0o10000000

# The part of a probe script (python -c) that records attempts: attempt(name,
# call) sets results[name] to "ok" or to the name of the errno it failed with
ATTEMPTS = r"""
import errno
results = {}

def attempt(name, call):
    try:
        call()
        results[name] = "ok"
    except OSError as e:
        results[name] = errno.errorcode.get(e.errno, str(e.errno))
"""


def status_field(pid: int, name: str) -> str:
    """A field of /proc/PID/status ("CapEff", "NoNewPrivs", ...), as text."""
    with open(f"/proc/{pid}/status") as f:
        return next(line.split(":", 1)[1].strip() for line in f if line.startswith(name + ":"))


def assert_locked_down(pid: int) -> set[str]:
    """Check a sandboxed daemon from outside: every mount in its table is
    read-only, nosuid, nodev and noexec; it holds no descriptor of a
    directory (nor an O_PATH one) outside its new root: the only directory
    it may hold is one of its own mounts (resolv.conf's /etc, for
    slirpd/resolver.py), never one of the host's that the pivot left
    behind; its capabilities are CAP_NET_BIND_SERVICE alone, ambient and
    inheritable empty; no_new_privs.  Return: its mount points."""
    with open(f"/proc/{pid}/mountinfo") as f:
        mounts = [line.split() for line in f]
    for m in mounts:
        assert {"ro", "nosuid", "nodev", "noexec"} <= set(m[5].split(",")), m
    own_mounts = {m[0] for m in mounts}
    for fd in os.listdir(f"/proc/{pid}/fd"):
        target = os.readlink(f"/proc/{pid}/fd/{fd}")
        with open(f"/proc/{pid}/fdinfo/{fd}") as f:
            info = dict(line.split(":", 1) for line in f if ":" in line)
        flags = int(info["flags"].split()[0], 8)
        if stat.S_ISDIR(os.stat(f"/proc/{pid}/fd/{fd}").st_mode) or flags & (O_DIRECTORY | O_PATH):
            assert info["mnt_id"].strip() in own_mounts, (fd, target, "outside the new root")
    only = f"{1 << CAP_NET_BIND_SERVICE:016x}"
    caps = {name: status_field(pid, name) for name in ("CapEff", "CapPrm", "CapInh", "CapAmb", "CapBnd")}
    assert caps == {"CapEff": only, "CapPrm": only, "CapInh": "0" * 16, "CapAmb": "0" * 16, "CapBnd": only}
    assert status_field(pid, "NoNewPrivs") == "1"
    return {m[4] for m in mounts}
