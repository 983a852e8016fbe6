"""`make profile`: where the CPU goes while slirpd moves one iperf3 stream.

Runs as root inside tests/sandbox.sh, like bench.py.  First one iperf3 run
over the host's loopback, then for each direction (guest→host, host→guest) at
each MTU, slirpd is attached to a fresh guest and one iperf3 run goes through
the gateway, while `perf record` samples every CPU (cpu-clock: this machine
has no hardware counters).  Printed per run: the whole machine's CPU seconds
per GiB moved (busy time from /proc/stat over the iperf3 run: with every CPU
busy, the CPUs divided by it is the most the path can move), the share of
samples spent copying bytes between user and kernel memory, the share of all
samples by process (the two iperf3 ends, slirpd, the kernel's softirq and
idle), then slirpd's own top symbols, kernel and user.  Nothing is written;
the numbers go into the README and the notes by hand.
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import signal
import subprocess
import sys
import tempfile
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


# the kernel's user/kernel copies: every byte moved goes through one of them
COPY_SYMBOLS = ("_copy_to_iter", "_copy_from_iter")


def busy_seconds() -> float:
    """CPU seconds all CPUs spent not idle since boot (/proc/stat)."""
    fields = [int(v) for v in open("/proc/stat").readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def profiled_iperf3(workdir: Path, title: str, top: int, top_comm: str | None, iperf3_run):
    """Run iperf3_run() under `perf record -a` and print where the CPU went."""
    data = workdir / "perf.data"
    perf = subprocess.Popen(["perf", "record", "-a", "-F", "2999", "-o", str(data)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    busy = busy_seconds()
    try:
        gbps, moved = iperf3_run()
    finally:
        busy = busy_seconds() - busy
        perf.send_signal(signal.SIGINT)
        perf.wait(timeout=GRACE)
    print(f"## {title}: {gbps:.2f} Gbit/s\n")
    print(f"whole machine: {busy / (moved / 2**30):.2f} CPU s/GiB "
          f"({busy:.1f} CPU s busy of {os.cpu_count()} CPUs)")
    by_sym = perf_report(data, "sym")
    copies = sum(pct for pct, sym in by_sym if sym.split()[-1] in COPY_SYMBOLS)
    print(f"copying between user and kernel memory: {copies:.1f}% of all samples\n\nall CPUs, by process:")
    by_comm = collections.Counter()
    for pct, comm in perf_report(data, "comm"):
        by_comm[comm] += pct
    for comm, pct in by_comm.most_common(6):
        print(f"  {pct:5.1f}%  {comm}")
    if top_comm:
        print(f"\n{top_comm}'s samples, by symbol (percent of all samples):")
        rows = [(pct, key) for pct, key in perf_report(data, "comm", "dso", "sym")
                if key.startswith(top_comm + " ")]
        for pct, key in rows[:top]:
            print(f"  {pct:5.1f}%  {key[len(top_comm) + 1:]}")
    print()


def profile_loopback(seconds: float):
    with tempfile.TemporaryDirectory(prefix="slirpd-profile-", dir="/tmp") as workdir:
        client = ["-c", "127.0.0.1", "-p", str(IPERF_PORT)]
        profiled_iperf3(Path(workdir), "loopback", 0, None,
                        lambda: iperf3(client, seconds, IPERF_PORT, ["-B", "127.0.0.1"]))


def profile_run(venv: str, mtu: int, reverse: bool, seconds: float, top: int):
    with attached(Slirpd, str(Path(venv) / "bin" / "slirpd"), mtu, plain_user()) as daemon:
        client = ["-c", daemon.gateway, "-p", str(IPERF_PORT)] + (["-R"] if reverse else [])
        title = f"{'host→guest' if reverse else 'guest→host'} MTU {mtu}"
        profiled_iperf3(daemon.workdir, title, top, "slirpd",
                        lambda: iperf3(client, seconds, IPERF_PORT, ["-B", daemon.loopback], daemon.guest))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--venv", default=str(Path(sys.executable).parent.parent))
    p.add_argument("--mtus", default="1500,65520")
    p.add_argument("--seconds", type=float, default=4)
    p.add_argument("--top", type=int, default=12)
    args = p.parse_args()
    if not shutil.which("perf"):
        sys.exit("profile: perf is not installed (Debian: linux-perf)")
    profile_loopback(args.seconds)
    for mtu in (int(m) for m in args.mtus.split(",")):
        for reverse in (False, True):
            profile_run(args.venv, mtu, reverse, args.seconds, args.top)


if __name__ == "__main__":
    main()
