"""What a MiB of TCP guest→host costs, per MTU: slirpd, the guest's sender, the host's receiver.

Issue 17, item 5: TCP netns→host is slower at MTU 1500 than at 65520,
though with TSO the guest hands slirpd large frames at either.  Run as root
inside tests/sandbox.sh; for each --mtu, a fresh guest, one iperf3 run
guest→host through the gateway, and per MiB the receiver got:

- slirpd: frames read and written (its counters: the frames in show how
  large the guest's TSO frames are, the frames out are mostly ACKs),
  system calls by name (`perf stat` of the syscall tracepoints), task-clock;
- frames the guest's TAP dropped for want of room in its transmit ring
  (what the windows we advertise must not provoke), in all;
- the guest's view of its socket half-way through (`ss -ti`: cwnd, RTT,
  and how long the sender was limited by the window we advertise
  (rwnd_limited) or by its send buffer);
- CPU seconds of the guest's iperf3 (user and system: the guest's TCP runs
  in its system calls) and of the host's iperf3 server, from getrusage().

    tests/sandbox.sh /var/tmp/venv-x/bin/python bench/tcpcost.py --mtu 1500 --mtu 65520
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

from tools import Slirpd, ToolError, attached, plain_user, require_sandbox_root, start_server, stop
from udpcost import PERF_EVENTS, daemon_counters, perf_counts

IPERF_PORT = 5303
GRACE = 15

# prints the CPU seconds (user + system) of the command it runs, on stderr
RUSAGE = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:]); "
          "u = resource.getrusage(resource.RUSAGE_CHILDREN); "
          "print('cpu', u.ru_utime + u.ru_stime, file=sys.stderr)")


def children_cpu() -> float:
    """CPU seconds of the children this process has waited for."""
    u = resource.getrusage(resource.RUSAGE_CHILDREN)
    return u.ru_utime + u.ru_stime


def measure(venv: str, mtu: int, seconds: float, user) -> dict:
    """One iperf3 run guest→host at mtu: figures per MiB received, by name."""
    binary = str(Path(venv) / "bin" / "slirpd")
    with attached(Slirpd, binary, mtu, user) as daemon:
        stat_out = daemon.workdir / "perf-stat.csv"
        before = daemon_counters(daemon)
        cpu_before = children_cpu()
        srv = start_server(["iperf3", "-s", "-1", "-p", str(IPERF_PORT), "-B", "127.0.0.1"], IPERF_PORT,
                           os.getpid())
        perf = subprocess.Popen(["perf", "stat", "-x,", "-o", str(stat_out), "-e", ",".join(PERF_EVENTS),
                                 "-p", str(daemon.proc.pid)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = daemon.guest.popen([sys.executable, "-c", RUSAGE, "iperf3", "-J", "-t", f"{seconds:g}",
                                     "-c", daemon.gateway, "-p", str(IPERF_PORT)],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            time.sleep(seconds / 2)
            tcp_info = daemon.guest.run(["ss", "-tinH", "dst", daemon.gateway], timeout=GRACE).stdout
            out, err = client.communicate(timeout=seconds + GRACE)
        finally:
            stop(client)
            perf.send_signal(signal.SIGINT)
            perf.wait(timeout=30)
            stop(srv)
        after = daemon_counters(daemon)
        counts = perf_counts(stat_out)
        tap_drops = int(daemon.guest.run(["cat", "/sys/class/net/tap0/statistics/tx_dropped"],
                                         timeout=GRACE).stdout or 0)
    sender_cpu = float(err.split("cpu", 1)[1].split()[0])
    received = json.loads(out)["end"]["sum_received"]
    mib = received["bytes"] / 2**20
    delta = {k: after[k] - before[k] for k in before if isinstance(before[k], int)}
    per = {name: value / mib for name, value in counts.items() if name != "task-clock"}
    per.update({
        "tap_tx_dropped": tap_drops,
        "tcp_info": max(tcp_info.split("\n\n"), key=len, default=""),
        "gbps": received["bits_per_second"] / 1e9,
        "frame_in_bytes": delta["bytes_in"] / max(delta["frames_in"], 1),
        "frames_in": delta["frames_in"] / mib,
        "gso_in": delta["vnet_gso_in"] / mib,
        "frames_out": delta["frames_out"] / mib,
        "slirpd_ms": counts.get("task-clock", 0) / mib,
        "sender_ms": sender_cpu * 1e3 / mib,
        # children_cpu() counts the server and the guest's command (sender included)
        "receiver_ms": (children_cpu() - cpu_before - sender_cpu) * 1e3 / mib,
    })
    return per


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--venv", default=str(Path(sys.executable).parent.parent), help="whose bin/slirpd")
    p.add_argument("--mtu", type=int, action="append", help="repeat: one run each (default 1500 and 65520)")
    p.add_argument("--seconds", type=float, default=5)
    p.add_argument("--runs", type=int, default=1)
    args = p.parse_args()
    require_sandbox_root("tcpcost.py")
    user = plain_user()
    for run in range(args.runs):
        for mtu in args.mtu or [1500, 65520]:
            try:
                per = measure(args.venv, mtu, args.seconds, user)
            except (ToolError, subprocess.SubprocessError, ValueError, IndexError) as e:
                print(f"mtu {mtu}: failed: {e}", flush=True)
                continue
            tcp_info = " ".join(per.pop("tcp_info").split())
            print(f"mtu {mtu} run {run}: {per.pop('gbps'):.2f} Gbit/s; per MiB received: "
                  + " ".join(f"{k}={v:.3g}" for k, v in per.items() if v >= 0.001 or k == "tap_tx_dropped")
                  + f"\n  the guest's sockets half-way (ss -ti): {tcp_info}", flush=True)
    print(f"load: {os.getloadavg()}")


if __name__ == "__main__":
    main()
