"""A running slirpd started by the start_slirpd fixture (tests/conftest.py)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

from lib.harness import wait_for

READY_TIMEOUT = 20.0
COUNTERS_PREFIX = "slirpd: counters "  # the line SIGUSR1 has the daemon write


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
        before = len(self._counters_lines())
        self.proc.send_signal(signal.SIGUSR1)
        wait_for(lambda: len(self._counters_lines()) > before, timeout, "a counters line")
        return json.loads(self._counters_lines()[-1][len(COUNTERS_PREFIX):])

    def _counters_lines(self) -> list[str]:
        """The counters lines on stderr so far that are whole: stderr is read
        as it comes, so the last line may still lack its end."""
        text = self.stderr
        whole = text[:text.rfind("\n") + 1]
        return [ln for ln in whole.splitlines() if ln.startswith(COUNTERS_PREFIX)]

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
