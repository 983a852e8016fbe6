"""A guest: a process in new user, network and mount namespaces.

Started as the plain user exactly as the slirp4netns man page does
(`unshare --user --map-root-user --net --mount`); commands enter it with
nsenter and run as its root.
"""

from __future__ import annotations

import json
import os
import pwd
import subprocess
import sys

import pytest

from lib.harness import as_user, wait_for


class Guest:
    """The namespaces' first process (`sleep infinity`) and its pid."""

    # raised when the namespace does not appear; None: the test fails
    timeout_error: type[Exception] | None = None

    def __init__(self, user: pwd.struct_passwd):
        self.user = user
        self.proc = subprocess.Popen(["unshare", "--user", "--map-root-user", "--net", "--mount",
                                      "sleep", "infinity"], **as_user(user))
        self.pid = self.proc.pid
        own = os.stat("/proc/self/ns/net").st_ino
        wait_for(lambda: self._netns_ino() not in (None, own), 5, "the guest's network namespace",
                 error=self.timeout_error)

    def _netns_ino(self) -> int | None:
        """Inode of the guest's network namespace (None while it is not there yet)."""
        try:
            return os.stat(f"/proc/{self.pid}/ns/net").st_ino
        except OSError:
            return None

    def argv(self, cmd: list[str]) -> list[str]:
        """cmd wrapped to run inside the guest as its root."""
        return ["nsenter", f"--target={self.pid}", "--user", "--net", "--mount", "--preserve-credentials", "--", *cmd]

    def run(self, cmd: str | list[str], check: bool = True, timeout: float = 30, **kw) -> subprocess.CompletedProcess:
        """Run cmd (a shell string or an argv) inside the guest, as its root;
        with check, fail the test unless it exits 0."""
        argv = ["sh", "-c", cmd] if isinstance(cmd, str) else list(cmd)
        res = subprocess.run(self.argv(argv), capture_output=True, text=True, timeout=timeout, **as_user(self.user),
                             **kw)
        if check and res.returncode != 0:
            pytest.fail(f"guest command {cmd!r} failed ({res.returncode}):\n{res.stdout}\n{res.stderr}")
        return res

    def popen(self, cmd: list[str], **kw) -> subprocess.Popen:
        """Start cmd in the guest in the background (text mode)."""
        return subprocess.Popen(self.argv(cmd), text=True, **as_user(self.user), **kw)

    def python(self, script: str, *args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
        """Run a Python script inside the guest (the test's interpreter)."""
        return self.run([sys.executable, "-c", script, *args], check=check, timeout=timeout)

    def ip_json(self, *args: str):
        """`ip -json ARGS` inside the guest, parsed."""
        return json.loads(self.run(["ip", "-json", *args]).stdout or "[]")

    def stop(self):
        """Kill the guest's first process and reap it."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)
