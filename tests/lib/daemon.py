"""A running slirpd started by the start_slirpd fixture (tests/conftest.py)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

from lib.harness import wait_for

READY_TIMEOUT = 20.0


class Slirpd:
    """A running slirpd (as the plain user) with its ready fd already fired."""

    def __init__(self, proc: subprocess.Popen, stderr_path: Path):
        self.proc = proc
        self.stderr_path = stderr_path
        self.at_start: dict | None = None  # footprint() once ready

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text()

    def stop(self, sig=signal.SIGTERM, timeout: float = 10) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout=timeout)

    def open_fds(self) -> int:
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    def counters(self, timeout: float = 5) -> dict:
        """The data plane's counters, asked for with SIGUSR1 (one JSON line
        on stderr)."""
        before = self.stderr.count("slirpd: counters ")
        self.proc.send_signal(signal.SIGUSR1)
        wait_for(lambda: self.stderr.count("slirpd: counters ") > before, timeout, "a counters line")
        line = [ln for ln in self.stderr.splitlines() if ln.startswith("slirpd: counters ")][-1]
        return json.loads(line[len("slirpd: counters "):])

    def footprint(self) -> dict | None:
        """Descriptors and RSS (KiB) now, None if the daemon is gone."""
        try:
            return {"fds": self.open_fds(), "rss_kib": self.rss_kib()}
        except (OSError, StopIteration):
            return None

    def cpu_ticks(self) -> int:
        """The daemon's user plus system CPU time so far, in clock ticks
        (/proc/PID/stat, fields 14 and 15)."""
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])

    def rss_kib(self) -> int:
        status = open(f"/proc/{self.proc.pid}/status").read()
        return int(next(line for line in status.splitlines() if line.startswith("VmRSS:")).split()[1])
