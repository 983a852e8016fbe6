"""What one UDP datagram costs slirpd: system calls, CPU time and instructions.

Load on a shared 2-core machine moves throughput by 2x from run to run, but
not what slirpd does per datagram.  Run as root inside tests/sandbox.sh; for
each --venv's slirpd and each direction, a fresh guest, one iperf3 -u run
(1400-byte datagrams, bench/udpbench.py's), and per datagram delivered:

- system calls by name, from the kernel's syscall tracepoints (`perf stat
  -e syscalls:sys_enter_NAME -p PID`: counted in the kernel, nothing slows);
- the daemon's task-clock, in ns (this one moves with load and frequency);
- with --callgrind DIR, instructions in user space inside dp_wait(), the
  data plane's loop (valgrind's callgrind; Python runs only when dp_wait()
  returns, and the profile in DIR says how often it did).  Under valgrind
  slirpd is some 50 times slower, so use a low fixed --rate (e.g. 50M)
  and compare like with like.

    tests/sandbox.sh /var/tmp/venv-x/bin/python bench/udpcost.py \\
        --venv /var/tmp/venv-base --venv /var/tmp/venv-x --mtu 1500 --rate 300M
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
from pathlib import Path

from tools import Slirpd, ToolError, ab_runs, attached, plain_user, require_sandbox_root, wait_until
from udpbench import IPERF_PORT, RunError, udp_iperf3

# the calls a datagram's way can make; the rest are summed as "other"
SYSCALLS = ("read", "readv", "write", "writev", "recvmmsg", "sendmmsg", "recvmsg", "sendmsg", "recvfrom",
            "sendto", "epoll_wait", "epoll_pwait", "sched_yield", "clock_gettime", "getsockopt", "setsockopt")
PERF_EVENTS = ["task-clock", "raw_syscalls:sys_enter", *(f"syscalls:sys_enter_{s}" for s in SYSCALLS)]


def perf_counts(path: Path) -> dict[str, float]:
    """The counts `perf stat -x,` wrote to path, by event name."""
    counts = {}
    for line in path.read_text().splitlines():
        fields = line.split(",")
        if len(fields) > 2 and fields[0].replace(".", "", 1).isdigit():
            name = fields[2].removeprefix("syscalls:sys_enter_")
            name = {"raw_syscalls:sys_enter": "syscalls", "syscalls:sys_exit_read": "read_failed"}.get(name, name)
            counts[name] = float(fields[0])
    return counts


def daemon_counters(daemon) -> dict[str, int]:
    """The data plane's counters, as the daemon writes them on SIGUSR1."""
    def dumped() -> list[str]:
        return [line for line in daemon.stderr_path.read_text(errors="replace").splitlines()
                if "counters {" in line]
    before = len(dumped())
    daemon.proc.send_signal(signal.SIGUSR1)
    wait_until(lambda: len(dumped()) > before, 30, "the counters")
    return json.loads(dumped()[-1].split("counters ", 1)[1])


def datagrams_moved(direction: str, before: dict, after: dict) -> int:
    """Datagrams slirpd moved in direction between two counter dumps: frames
    read from the guest (g2h: iperf3 sends no super-datagrams), or datagrams
    written to it (h2g: frames, each GSO frame counted as the datagrams in
    it).  The few frames of iperf3's control connection are in both."""
    delta = {name: after[name] - before[name] for name in before if isinstance(before[name], int)}
    if direction == "g2h":
        return delta["frames_in"]
    return delta["frames_out"] - delta["udp_gso_out"] + delta["udp_gso_out_datagrams"]


def callgrind_wrapper(workdir: Path, binary: str) -> str:
    """An executable in workdir that runs binary under callgrind, collecting
    inside dp_wait() only: the data plane's loop, where every datagram is
    handled (Python runs when it returns; the returns are counted).  Valgrind has no
    pidfd_open(), so the target PID of the argv becomes the path of its
    namespaces (--netns-type=path: nothing to watch)."""
    wrapper = workdir / "slirpd-callgrind"
    wrapper.write_text(f"""#!/bin/sh
for arg; do
    shift
    case "$arg" in
    *[!0-9]*|"") set -- "$@" "$arg" ;;
    *) set -- "$@" --netns-type=path --userns-path=/proc/$arg/ns/user /proc/$arg/ns/net ;;
    esac
done
exec valgrind -q --tool=callgrind --toggle-collect=dp_wait --callgrind-out-file={workdir}/callgrind.out {binary} "$@"
""")
    wrapper.chmod(0o755)
    return str(wrapper)


def callgrind_instructions(daemon, keep: Path) -> int:
    """Stop the daemon under callgrind, move its profile to keep (for
    callgrind_annotate) and return the instructions it counted in dp_wait()."""
    daemon.proc.send_signal(signal.SIGTERM)
    daemon.proc.wait(timeout=120)
    out = (daemon.workdir / "callgrind.out").read_text(errors="replace")
    total = int(re.search(r"^(?:summary|totals): (\d+)", out, re.M).group(1))
    shutil.move(daemon.workdir / "callgrind.out", keep)
    return total


def measure(venv: str, mtu: int, direction: str, seconds: float, rate: str, user, callgrind: Path | None,
            strace: bool, record: str | None, env: dict) -> dict:
    """One run: counts per datagram slirpd moved, by name, plus "datagrams"
    (that many), "delivered" (how many the receiver got) and "gbps"; with strace, `strace -c -f`'s table (calls and errors by name, the
    daemon slowed by it) is printed too; with record, `perf record -g` of the
    daemon goes to that file."""
    binary = str(Path(venv) / "bin" / "slirpd")
    with attached(Slirpd, binary, mtu, user, env, wrap=callgrind_wrapper if callgrind else None) as daemon:
        pid, workdir = daemon.proc.pid, daemon.workdir
        stat_out = workdir / "perf-stat.csv"
        before = daemon_counters(daemon)
        perf = subprocess.Popen(["perf", "stat", "-x,", "-o", str(stat_out), "-e", ",".join(PERF_EVENTS),
                                 "-e", "syscalls:sys_exit_read", "--filter", "ret < 0", "-p", str(pid)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        recorder = (subprocess.Popen(["perf", "record", "-g", "-o", record, "-p", str(pid)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) if record else None)
        tracer = (subprocess.Popen(["strace", "-c", "-f", "-o", str(workdir / "strace.txt"), "-p", str(pid)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) if strace else None)
        client = ["-c", daemon.gateway, "-p", str(IPERF_PORT)] + (["-R"] if direction == "h2g" else [])
        try:
            result = udp_iperf3(client, seconds, IPERF_PORT, ["-B", "127.0.0.1"], rate, client_guest=daemon.guest)
        finally:
            for proc in filter(None, (perf, tracer, recorder)):
                proc.send_signal(signal.SIGINT)
                proc.wait(timeout=30)
        if tracer:
            print((workdir / "strace.txt").read_text())
        counts = perf_counts(stat_out)
        n = datagrams_moved(direction, before, daemon_counters(daemon))
        if callgrind:
            counts["instructions"] = callgrind_instructions(daemon, callgrind)
    per = {name: value / n for name, value in counts.items()}
    per["task-clock"] = counts.get("task-clock", 0) * 1e6 / n  # perf reports msec: ns per datagram
    per["other"] = (counts.get("syscalls", 0) - sum(counts.get(s, 0) for s in SYSCALLS)) / n
    per["datagrams"] = n
    per["delivered"] = result["datagrams"]
    per["gbps"] = result["delivered"]
    return per


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--venv", action="append", default=[], help="a venv whose bin/slirpd to measure (repeat for A/B), "
                   "VENV@NAME=VALUE,... for one with variables of its own (e.g. SLIRPD_OFFLOADS_OFF=udp_gso)")
    p.add_argument("--mtu", type=int, default=1500)
    p.add_argument("--dir", default="g2h,h2g", help="comma-separated: g2h, h2g")
    p.add_argument("--seconds", type=float, default=3)
    p.add_argument("--rate", default="0", help="iperf3 -b (0: as fast as it goes)")
    p.add_argument("--runs", type=int, default=1)
    p.add_argument("--callgrind", metavar="DIR", type=Path,
                   help="count user-space instructions under callgrind, its profiles kept in DIR")
    p.add_argument("--record", metavar="FILE", help="perf record -g the daemon into FILE (the last run's)")
    p.add_argument("--strace", action="store_true", help="print strace -c -f's table too (errors by call)")
    args = p.parse_args()
    require_sandbox_root("udpcost.py")
    user = plain_user()
    for direction, run, venv in ab_runs(args.dir, args.runs, args.venv):
        path, _, own = venv.partition("@")
        env = dict(e.split("=", 1) for e in own.split(",") if e)
        keep = args.callgrind and args.callgrind / f"callgrind-{direction}-{args.mtu}-{run}-{Path(path).name}.out"
        try:
            per = measure(path, args.mtu, direction, args.seconds, args.rate, user, keep,
                          args.strace, args.record, env)
        except (RunError, ToolError, subprocess.SubprocessError) as e:
            print(f"{direction} mtu {args.mtu} {venv}: failed: {e}", flush=True)
            continue
        shown = [f"{k}={per[k]:.3g}" for k in ("instructions", "task-clock", "syscalls") if k in per]
        shown += [f"{k}={v:.3g}" for k, v in per.items()
                  if k in (*SYSCALLS, "read_failed", "other") and v >= 0.001]
        print(f"{direction} mtu {args.mtu} rate {args.rate} run {run} {venv}: "
              f"{per['datagrams']:.0f} datagrams moved, {per['delivered']} delivered, {per['gbps']:.3f} "
              "Gbit/s; per datagram moved: "
              + " ".join(shown), flush=True)
    print(f"load: {os.getloadavg()}")


if __name__ == "__main__":
    main()
