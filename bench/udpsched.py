"""Who runs, who waits and who sleeps while iperf3 -u floods through slirpd.

Throughput of UDP at `-b 0` on a 2-core machine is decided by the scheduler
more than by any one process's cost: three busy processes (the sender,
slirpd, the receiver) share two CPUs, and a datagram the receiver's socket
has no room for is lost with all the work done on it.  Run as root inside
tests/sandbox.sh; for each --venv's slirpd (or `loopback`, client and server
on 127.0.0.1) and each direction, a fresh guest and one iperf3 -u run
(bench/udpbench.py's sizes), and over the middle of the run, for the sender,
slirpd and the receiver, from /proc/PID/schedstat and /proc/PID/sched:

- run: the share of the time it ran; wait: the share it was runnable but
  waited on a run queue; sleeps/s: how often it went to sleep (voluntary
  switches: nothing to read, or a full socket);
- cpus: how often (sampled every 5 ms) the receiver was found on slirpd's
  CPU;
- with slirpd, how often it handed over the CPU (get_stats cpu_yields,
  csrc/dp.c's "Handing over the CPU").

    tests/sandbox.sh /var/tmp/venv-x/bin/python bench/udpsched.py \\
        --venv loopback --venv /var/tmp/venv-base --venv /var/tmp/venv-x --mtu 1500
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import time
from pathlib import Path

from tools import Slirpd, ToolError, ab_runs, attached, plain_user, require_sandbox_root, start_server, stop
from udpbench import DGRAM, GRACE, IPERF_PORT
from udpcost import daemon_counters

SAMPLE_S = 0.005


def sched_counts(pid: int) -> dict[str, float]:
    """Seconds run and waited on a run queue, and voluntary switches, of pid so far."""
    run_ns, wait_ns, _ = map(int, Path(f"/proc/{pid}/schedstat").read_text().split())
    sleeps = 0
    for line in Path(f"/proc/{pid}/sched").read_text().splitlines():
        name, _, value = line.partition(":")
        if name.strip() == "nr_voluntary_switches":
            sleeps = int(value)
    return {"run": run_ns / 1e9, "wait": wait_ns / 1e9, "sleeps": sleeps}


def cpu_of(pid: int) -> int:
    """The CPU pid last ran on (field 39 of /proc/PID/stat)."""
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[36])


def iperf3_pids(exclude: int) -> list[int]:
    out = subprocess.run(["pgrep", "-x", "iperf3"], capture_output=True, text=True).stdout.split()
    return [int(p) for p in out if int(p) != exclude]


def observe(pids: dict[str, int], seconds: float) -> dict:
    """Scheduling of each named pid over seconds, and how often the receiver
    shared slirpd's CPU."""
    before = {name: sched_counts(pid) for name, pid in pids.items()}
    start, together, samples = time.monotonic(), 0, 0
    while time.monotonic() - start < seconds:
        if "slirpd" in pids:
            together += cpu_of(pids["receiver"]) == cpu_of(pids["slirpd"])
        samples += 1
        time.sleep(SAMPLE_S)
    took = time.monotonic() - start
    after = {name: sched_counts(pid) for name, pid in pids.items()}
    out = {name: {"run": (after[name]["run"] - before[name]["run"]) / took,
                  "wait": (after[name]["wait"] - before[name]["wait"]) / took,
                  "sleeps_per_s": (after[name]["sleeps"] - before[name]["sleeps"]) / took} for name in pids}
    if "slirpd" in pids:
        out["receiver_on_slirpd_cpu"] = together / samples
    return out


def one_run(binary: str | None, mtu: int, direction: str, seconds: float, user) -> dict:
    """One iperf3 -u -b 0 run, observed over its middle half."""
    reverse = ["-R"] if direction == "h2g" else []
    argv = ["iperf3", "-J", "-u", "-b", "0", "-l", str(DGRAM), "-t", f"{seconds:g}", "-p", str(IPERF_PORT), *reverse]
    srv = start_server(["iperf3", "-s", "-1", "-p", str(IPERF_PORT), "-B", "127.0.0.1"], IPERF_PORT, os.getpid())
    try:
        if binary is None:
            client = subprocess.Popen([*argv, "-c", "127.0.0.1"], stdout=subprocess.PIPE, text=True)
            result = watch(client, srv, None, direction, seconds)
        else:
            with attached(Slirpd, binary, mtu, user) as daemon:
                client = daemon.guest.popen([*argv, "-c", daemon.gateway], stdout=subprocess.PIPE)
                before = daemon_counters(daemon)
                result = watch(client, srv, daemon.proc.pid, direction, seconds)
                result["cpu_yields_per_s"] = (daemon_counters(daemon)["cpu_yields"] - before.get("cpu_yields", 0)) \
                    / seconds if "cpu_yields" in before else None
    finally:
        stop(srv)
    return result


def watch(client: subprocess.Popen, srv: subprocess.Popen, slirpd: int | None, direction: str,
          seconds: float) -> dict:
    """Observe a running iperf3 client until it ends; its result with the observation."""
    try:
        time.sleep(seconds / 4)
        others = iperf3_pids(srv.pid)
        if not others:
            raise ToolError("the iperf3 client is not running")
        client_pid = max(others, key=lambda p: sched_counts(p)["run"])
        pids = {"sender": client_pid, "receiver": srv.pid} if direction == "g2h" else \
            {"sender": srv.pid, "receiver": client_pid}
        if slirpd:
            pids["slirpd"] = slirpd
        seen = observe(pids, seconds / 2)
        out, _ = client.communicate(timeout=seconds + GRACE)
    except subprocess.TimeoutExpired:
        raise ToolError("iperf3 did not end") from None
    finally:
        stop(client)
    end = json.loads(out)["end"]
    sent = end["sum_sent"]["bits_per_second"] / 1e9
    seen["delivered"] = sent * (1 - end["sum"]["lost_percent"] / 100)
    return seen


def show(name: str, r: dict) -> str:
    parts = [f"delivered {r['delivered']:.2f} Gbit/s"]
    for who in ("sender", "slirpd", "receiver"):
        if who in r:
            s = r[who]
            parts.append(f"{who} run {s['run']:.0%} wait {s['wait']:.0%} sleeps/s {s['sleeps_per_s']:.0f}")
    if "receiver_on_slirpd_cpu" in r:
        parts.append(f"receiver on slirpd's CPU {r['receiver_on_slirpd_cpu']:.0%}")
    if r.get("cpu_yields_per_s") is not None:
        parts.append(f"cpu_yields/s {r['cpu_yields_per_s']:.0f}")
    return f"{name}: " + "; ".join(parts)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--venv", action="append", default=[], help="a venv whose bin/slirpd to run, or 'loopback'")
    p.add_argument("--mtu", type=int, default=1500)
    p.add_argument("--dir", default="g2h,h2g", help="comma-separated: g2h, h2g")
    p.add_argument("--seconds", type=float, default=4)
    p.add_argument("--runs", type=int, default=1)
    args = p.parse_args()
    require_sandbox_root("udpsched.py")
    user = plain_user()
    for direction, run, venv in ab_runs(args.dir, args.runs, args.venv):
        binary = None if venv == "loopback" else str(Path(venv) / "bin" / "slirpd")
        try:
            r = one_run(binary, args.mtu, direction, args.seconds, user)
        except (ToolError, subprocess.SubprocessError, ValueError) as e:
            print(f"{direction} mtu {args.mtu} run {run} {venv}: failed: {e}", flush=True)
            continue
        print(show(f"{direction} mtu {args.mtu} run {run} {venv}", r), flush=True)
    print(f"load: {os.getloadavg()}")


if __name__ == "__main__":
    main()
