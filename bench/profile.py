"""`make profile`: where the CPU goes while slirpd moves one iperf3 stream.

Runs as root inside tests/sandbox.sh, like bench.py.  For each direction
(guest→host, host→guest) at each MTU, slirpd is attached to a fresh guest and
one iperf3 run goes through the gateway while `perf record` samples every CPU
(cpu-clock: this machine has no hardware counters).  Printed per run: the
share of all samples by process (the two iperf3 ends, slirpd, the kernel's
softirq and idle), then slirpd's own top symbols, kernel and user.  Nothing is
written; the numbers go into the README and the notes by hand.
"""

from __future__ import annotations

import argparse
import collections
import shutil
import subprocess
import sys
from pathlib import Path

from bench import GRACE, IPERF_PORT, attached, iperf3
from tools import Slirpd, plain_user


def perf_report(data: Path, *sort: str) -> list[tuple[float, str]]:
    """(percent, key) lines of `perf report --stdio` sorted by the given keys."""
    out = subprocess.run(["perf", "report", "-i", str(data), "--stdio", "--no-children", "--sort", ",".join(sort)],
                         capture_output=True, text=True, timeout=120).stdout
    rows = []
    for line in out.splitlines():
        parts = line.split(None, 1)
        if len(parts) == 2 and parts[0].endswith("%"):
            rows.append((float(parts[0][:-1]), " ".join(parts[1].split())))
    return rows


def profile_run(venv: str, mtu: int, reverse: bool, seconds: float, top: int):
    with attached(Slirpd, str(Path(venv) / "bin" / "slirpd"), mtu, plain_user()) as daemon:
        data = daemon.workdir / "perf.data"
        perf = subprocess.Popen(["perf", "record", "-a", "-F", "2999", "-o", str(data), "--",
                                 "sleep", str(seconds + 1)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = ["-c", daemon.gateway, "-p", str(IPERF_PORT)] + (["-R"] if reverse else [])
        gbps, _ = iperf3(client, seconds, IPERF_PORT, ["-B", daemon.loopback], daemon.guest)
        perf.wait(timeout=seconds + GRACE)
        title = f"{'host→guest' if reverse else 'guest→host'} MTU {mtu}: {gbps:.2f} Gbit/s"
        print(f"## {title}\n\nall CPUs, by process:")
        by_comm = collections.Counter()
        for pct, comm in perf_report(data, "comm"):
            by_comm[comm] += pct
        for comm, pct in by_comm.most_common(6):
            print(f"  {pct:5.1f}%  {comm}")
        print("\nslirpd's samples, by symbol (percent of all samples):")
        rows = [(pct, key) for pct, key in perf_report(data, "comm", "dso", "sym") if key.startswith("slirpd ")]
        for pct, key in rows[:top]:
            print(f"  {pct:5.1f}%  {key[len('slirpd '):]}")
        print()


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--venv", default=str(Path(sys.executable).parent.parent))
    p.add_argument("--mtus", default="1500,65520")
    p.add_argument("--seconds", type=float, default=4)
    p.add_argument("--top", type=int, default=12)
    args = p.parse_args()
    if not shutil.which("perf"):
        sys.exit("profile: perf is not installed (Debian: linux-perf)")
    for mtu in (int(m) for m in args.mtus.split(",")):
        for reverse in (False, True):
            profile_run(args.venv, mtu, reverse, args.seconds, args.top)


if __name__ == "__main__":
    main()
