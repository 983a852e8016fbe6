"""`make benchmark`: slirpd against slirp4netns, pasta and the host's loopback.

Runs as root inside tests/sandbox.sh (servers on the sandbox's 127.0.0.1, so no
traffic leaves it).  For each MTU and each tool that runs, a fresh guest
namespace is made as the plain user, the tool is attached, and from inside the
guest we run iperf3 towards the host (both directions, through the gateway
address) and from the host through a forwarded port, each --repeat times (the
table shows the median), TCP and then UDP (bench/udpbench.py: 1400-byte
datagrams, delivered at -b 0 and loss at 1 Gbit/s offered); then bench/tcpbench.py
measures 1-byte request/response latency, short connections per second and
holds 1,000 connections open.  pasta and slirpd-pasta (slirpd run as pasta,
through a link of that name) get pasta's argv, and also the time from exec
until pasta's readiness (its parent exits 0 once the namespace is
configured), in podman's mode.  slirp4netns-v6 and slirpd-v6 are the same runs
with -6 over IPv6 (servers on the sandbox's ::1, reached at fd00::2; the
forward from [::1] to the guest's IPv6 address).  Around each iperf3 run the daemon's CPU time
(its process tree, /proc/PID/stat) is sampled; its VmRSS is read idle and with
the 1,000 connections open.  The same iperf3 and tcpbench runs with client and
server both on 127.0.0.1 give the loopback baseline.  Then bench/startup.py
times slirp4netns, slirpd and pasta to ready, reads their idle memory and the
PSS of --instances of each at once (its own table).

Every step has a timeout; a failed or hung step is reported in its table cell
and the rest goes on.  Results: bench/results/latest.md and latest.png.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import select
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import report
import startup
from tools import (FWD_GUEST_PORT, FWD_HOST_PORT, REPO, TOOLS, Guest, ToolError, attached, cpu_seconds, pasta_link,
                   plain_user, rss_mib, start_server, stop)
from udpbench import RunError, udp_iperf3

HERE = Path(__file__).resolve().parent
TCPBENCH = str(HERE / "tcpbench.py")
# Builds the anchor pasta: shared/ beside the repository (as the Makefile's
# CLIENTS_DIR has it), unless SLIRPD_PASTA_BUILD or --pasta-build names another
PASTA_BUILD = os.environ.get("SLIRPD_PASTA_BUILD", str(REPO.parent / "shared" / "anchors" / "build-pasta.sh"))
IPERF_PORT, ECHO_PORT = 5301, 5401
GiB = 1 << 30
GRACE = 15  # seconds a step may take beyond its nominal length before it is killed


class StepError(Exception):
    """One measurement failed; the message goes into its table cell."""


def parse_args() -> argparse.Namespace:
    """Command-line options (all have defaults)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--venv", default=str(Path(sys.executable).parent.parent),
                   help="venv whose bin/slirpd and bin/python are used (default: this interpreter's)")
    p.add_argument("--pasta", default=os.environ.get("PASTA"),
                   help="pasta binary (default: build it with --pasta-build)")
    p.add_argument("--pasta-build", default=PASTA_BUILD,
                   help="script that builds pasta and prints its path (default: $SLIRPD_PASTA_BUILD, else "
                        "../shared/anchors/build-pasta.sh beside the repository: %(default)s)")
    p.add_argument("--tools", default="slirp4netns,slirpd,pasta,slirpd-pasta,slirp4netns-v6,slirpd-v6")
    p.add_argument("--mtus", default="1500,65520")
    p.add_argument("--seconds", type=float, default=5, help="length of each iperf3 run")
    p.add_argument("--repeat", type=int, default=3,
                   help="iperf3 runs per table cell, which shows their median (one run varies by 20%% here)")
    p.add_argument("--rr-count", type=int, default=5000, help="ping-pongs for the latency test")
    p.add_argument("--conn-seconds", type=float, default=3, help="length of the connection-rate test")
    p.add_argument("--hold", type=int, default=1000, help="connections held open for the RSS test")
    p.add_argument("--starts", type=int, default=10, help="starts per tool for the start-up table (its medians)")
    p.add_argument("--instances", type=int, default=20, help="instances at once for the PSS sum")
    p.add_argument("--out", default=str(HERE / "results"))
    return p.parse_args()


def check_sandbox():
    """Refuse to run outside tests/sandbox.sh or without root."""
    routes = subprocess.run(["ip", "route", "show", "default"], capture_output=True, text=True).stdout
    if os.environ.get("SLIRPD_SANDBOX") != "1" or os.geteuid() != 0 or "dev up0" not in routes:
        sys.exit("bench.py: run it as root inside tests/sandbox.sh (make benchmark does)")


def find_binaries(args, user) -> dict[str, str]:
    """Binary of each requested tool; a tool that is missing maps to "" and a reason is printed."""
    found = {}
    for name in args.tools.split(","):
        base = name.removesuffix("-v6")  # the same binary, run with -6
        if base == "slirp4netns":
            found[name] = shutil.which("slirp4netns") or ""
        elif base == "slirpd":
            path = Path(args.venv) / "bin" / "slirpd"
            found[name] = str(path) if path.exists() else ""
        elif name == "pasta":
            found[name] = args.pasta or build_pasta(args.pasta_build, user)
        elif name == "slirpd-pasta":
            found[name] = pasta_link(Path(args.venv) / "bin" / "slirpd")
        else:
            found[name] = ""
        if not found[name]:
            print(f"bench: {name} not found, skipped", file=sys.stderr)
    return found


def build_pasta(script: str, user) -> str:
    """Build (or reuse) the anchor pasta with script as the plain user; "" when
    that fails or there is no script."""
    if not os.access(script, os.X_OK):
        print(f"bench: no pasta build script {script}: the repository's parent directory must hold "
              "shared/anchors/build-pasta.sh, or give --pasta-build SCRIPT (SLIRPD_PASTA_BUILD) or --pasta BINARY",
              file=sys.stderr)
        return ""
    try:
        res = subprocess.run(["runuser", "-u", user.pw_name, "--", script, "/tmp/pasta-anchor"],
                             capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as e:
        print(f"bench: pasta build: {e}", file=sys.stderr)
        return ""
    if res.returncode != 0:
        print(f"bench: pasta build failed: {res.stderr.strip()}", file=sys.stderr)
        return ""
    return res.stdout.strip()


def run(argv: list[str], timeout: float, guest: Guest | None = None) -> str:
    """stdout of argv (in the guest if given); StepError on timeout or failure."""
    try:
        if guest:
            res = guest.run(argv, timeout=timeout)
        else:
            res = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise StepError(f"timeout ({timeout:.0f}s)") from None
    if res.returncode != 0 and not res.stdout.strip():
        raise StepError(f"failed: {(res.stderr.strip().splitlines() or ['exit %d' % res.returncode])[-1]}")
    return res.stdout


def iperf3(client: list[str], seconds: float, server_port: int, server=(),
           client_guest: Guest | None = None, server_guest: Guest | None = None) -> tuple[float, int]:
    """One iperf3 run (each side in a guest if given): (Gbit/s received, bytes received)."""
    srv = start_server(["iperf3", "-s", "-1", "-p", str(server_port), *server], server_port,
                       server_guest.pid if server_guest else os.getpid(), server_guest)
    try:
        out = run(["iperf3", "-J", "-t", f"{seconds:g}", *client], seconds + GRACE, client_guest)
    finally:
        stop(srv)
    result = json.loads(out)
    if "error" in result:
        raise StepError(f"failed: {result['error']}")
    received = result["end"]["sum_received"]
    if not received["bytes"]:
        raise StepError("no data moved")
    return received["bits_per_second"] / 1e9, received["bytes"]


def tcpbench(python: str, mode: str, host: str, arg, timeout: float, guest: Guest | None = None) -> dict:
    """One tcpbench.py client run against the echo server; its JSON result."""
    out = run([python, TCPBENCH, mode, host, str(ECHO_PORT), str(arg)], timeout, guest)
    result = json.loads(out.strip().splitlines()[-1])
    if "error" in result:
        raise StepError(result["error"])
    return result


def held_rss(python: str, guest: Guest, host: str, count: int, pid: int, timeout: float) -> float:
    """Daemon RSS (MiB) while the guest holds count connections to the echo server."""
    proc = guest.popen([python, TCPBENCH, "hold", host, str(ECHO_PORT), str(count)],
                       stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        if not select.select([proc.stdout], [], [], timeout)[0]:
            raise StepError(f"timeout ({timeout:.0f}s)")
        line = proc.stdout.readline()
        if line.strip() != "ready":
            raise StepError(json.loads(line)["error"] if line.startswith("{") else "failed: no output")
        time.sleep(0.5)
        return rss_mib(pid)
    finally:
        stop(proc)


def attempt(results: dict, key: str, func, daemon=None):
    """results[key] = func(), or the reason it failed (also when the daemon died)."""
    try:
        results[key] = func()
    except (StepError, ToolError, RunError) as e:
        results[key] = str(e)
    except (ValueError, KeyError) as e:
        results[key] = f"bad output: {e!r}"
    if daemon is not None and not daemon.alive():
        results[key] = f"daemon exited ({daemon.proc.returncode}): {daemon.stderr_tail()}"


def measure_loopback(args) -> dict:
    """The baseline: iperf3 and tcpbench with client and server on 127.0.0.1."""
    r: dict = {}
    client, server = ["-c", "127.0.0.1", "-p", str(IPERF_PORT)], ["-B", "127.0.0.1"]
    attempt(r, "g2h", lambda: median_of(args.repeat, lambda: iperf3(client, args.seconds, IPERF_PORT, server)[0]))
    attempt(r, "h2g", lambda: median_of(args.repeat,
                                        lambda: iperf3([*client, "-R"], args.seconds, IPERF_PORT, server)[0]))
    r["fwd"] = r["g2h"]
    measure_udp(r, args, client, [*client, "-R"], None, IPERF_PORT, server)
    r["udp_fwd"] = r["udp_g2h"]
    py = sys.executable
    attempt(r, "lat", lambda: tcpbench(py, "latency", "127.0.0.1", args.rr_count, 60))
    attempt(r, "conn_rate", lambda: tcpbench(py, "connrate", "127.0.0.1", args.conn_seconds,
                                              args.conn_seconds + GRACE)["per_sec"])
    split_latency(r)
    return r


def measure_udp(r: dict, args, to_host: list[str], to_guest: list[str], guest: Guest | None, port: int,
                server: list[str], daemon=None):
    """The UDP rows both ways (iperf3 -u, 1400-byte datagrams): delivered at
    -b 0 (median of args.repeat runs) and loss at 1 Gbit/s offered."""
    def delivered(client):
        return median_of(args.repeat, lambda: udp_iperf3(client, args.seconds, port, server,
                                                           client_guest=guest)["delivered"])

    def loss(client):
        return median_of(args.repeat, lambda: udp_iperf3(client, args.seconds, port, server, rate="1G",
                                                           client_guest=guest)["loss"])

    attempt(r, "udp_g2h", lambda: delivered(to_host), daemon)
    attempt(r, "udp_h2g", lambda: delivered(to_guest), daemon)
    attempt(r, "udp_loss_g2h", lambda: loss(to_host), daemon)
    attempt(r, "udp_loss_h2g", lambda: loss(to_guest), daemon)


def median_of(runs: int, func) -> float:
    """The median of runs calls of func()."""
    return statistics.median(func() for _ in range(max(1, runs)))


def split_latency(r: dict):
    """Turn the latency result (a dict or a failure) into lat_p50 and lat_p99."""
    lat = r.pop("lat")
    r["lat_p50"] = lat["median_us"] if isinstance(lat, dict) else lat
    r["lat_p99"] = lat["p99_us"] if isinstance(lat, dict) else lat


def measure_tool(name: str, binary: str, mtu: int, args, user) -> dict:
    """Every measurement for one tool at one MTU, in a fresh guest; if the tool
    does not start, every cell says why."""
    try:
        with attached(TOOLS[name], binary, mtu, user) as daemon:
            return measure_daemon(daemon, args)
    except ToolError as e:
        return {key: str(e) for key, *_ in report.METRICS}


def measure_daemon(daemon, args) -> dict:
    """The measurements through a started daemon, in order: RSS idle, the three
    iperf3 runs (with the daemon's CPU time), latency, connection rate, RSS
    with many connections."""
    python = str(Path(args.venv) / "bin" / "python")
    guest, gw, pid = daemon.guest, daemon.gateway, daemon.proc.pid
    r: dict = {}
    if hasattr(daemon, "time_to_ready"):
        attempt(r, "ready_ms", lambda: median_of(args.repeat, daemon.time_to_ready) * 1000)
    attempt(r, "rss_idle", lambda: rss_mib(pid), daemon)
    cpu, moved = 0.0, 0

    def counted(func):
        """Run one iperf3 step args.repeat times, adding the daemon's CPU time
        and the bytes moved; the median Gbit/s."""
        def once():
            nonlocal cpu, moved
            before = cpu_seconds(pid)
            gbps, nbytes = func()
            cpu += cpu_seconds(pid) - before
            moved += nbytes
            return gbps
        return median_of(args.repeat, once)

    to_host, lo = ["-c", gw, "-p", str(IPERF_PORT)], ["-B", daemon.loopback]
    attempt(r, "g2h", lambda: counted(lambda: iperf3(to_host, args.seconds, IPERF_PORT, lo, guest)), daemon)
    attempt(r, "h2g", lambda: counted(lambda: iperf3([*to_host, "-R"], args.seconds, IPERF_PORT, lo, guest)), daemon)
    if daemon.forward_error:
        r["fwd"] = daemon.forward_error
    else:
        to_fwd = ["-c", daemon.loopback, "-p", str(FWD_HOST_PORT)]
        attempt(r, "fwd", lambda: counted(lambda: iperf3(to_fwd, args.seconds, FWD_GUEST_PORT, server_guest=guest)),
                daemon)
    r["cpu_per_gib"] = cpu / (moved / GiB) if moved else "no data moved"
    measure_udp(r, args, to_host, [*to_host, "-R"], guest, IPERF_PORT, lo, daemon)
    if daemon.forward_error:
        r["udp_fwd"] = daemon.forward_error
    else:
        attempt(r, "udp_fwd", lambda: median_of(args.repeat, lambda: udp_iperf3(
            ["-c", daemon.loopback, "-p", str(FWD_HOST_PORT)], args.seconds, FWD_GUEST_PORT,
            server_guest=guest)["delivered"]), daemon)
    attempt(r, "lat", lambda: tcpbench(python, "latency", gw, args.rr_count, 60, guest), daemon)
    attempt(r, "conn_rate", lambda: tcpbench(python, "connrate", gw, args.conn_seconds,
                                              args.conn_seconds + GRACE, guest)["per_sec"], daemon)
    attempt(r, "rss_1k", lambda: held_rss(python, guest, gw, args.hold, pid, 60), daemon)
    split_latency(r)
    return r


def measure_startup(binaries: dict[str, str], args, user) -> dict:
    """bench/startup.py's rows for slirp4netns, slirpd and pasta (not their
    -v6 runs), in a work directory of the plain user's."""
    workdir = Path(tempfile.mkdtemp(prefix="slirpd-bench-startup-", dir="/tmp"))
    os.chown(workdir, user.pw_uid, user.pw_gid)
    try:
        results = {}
        for name, binary in binaries.items():
            if name.endswith("-v6"):
                continue
            print(f"bench: {name} start-up", file=sys.stderr, flush=True)
            results[name] = (startup.measure(name, binary, user, args.starts, args.instances, workdir) if binary
                             else {key: "not available" for key, *_ in startup.ROWS})
        return results
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def first_line(argv: list[str]) -> str:
    """First line of a command's output (its version), or why there is none."""
    try:
        res = subprocess.run(argv, capture_output=True, text=True, timeout=10)
        return (res.stdout or res.stderr).strip().splitlines()[0]
    except (OSError, IndexError, subprocess.TimeoutExpired) as e:
        return f"unknown ({e})"


def machine(binaries: dict[str, str]) -> list[str]:
    """Lines describing the machine, kernel and tool versions."""
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), "unknown")
    git = first_line(["git", "-C", str(HERE.parent), "describe", "--always", "--dirty"])
    lines = [f"machine: {os.cpu_count()} CPUs, {cpu}; kernel {platform.release()}",
             f"iperf3: {first_line(['iperf3', '--version'])}; python {platform.python_version()}"]
    for name, binary in binaries.items():
        if not binary:
            lines.append(f"{name}: not available")
        elif name.endswith("-v6") and name.removesuffix("-v6") in binaries:
            continue  # the same binary, described once
        elif name.removesuffix("-v6") == "slirpd" or name == "slirpd-pasta":
            lines.append(f"slirpd: {first_line([binary, '--version'])}, git {git} ({binary})")
        elif name.removesuffix("-v6") == "slirp4netns":
            libslirp = [ln for ln in subprocess.run([binary, "--version"], capture_output=True, text=True,
                                                    timeout=10).stdout.splitlines() if "libslirp" in ln]
            lines.append(f"slirp4netns: {first_line([binary, '--version'])}, {', '.join(libslirp)}")
        else:
            lines.append(f"{name}: {first_line([binary, '--version'])} ({binary})")
    return lines


def main():
    """Measure everything, print the table, write latest.md and latest.png."""
    args = parse_args()
    check_sandbox()
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # inherited by daemons and guests
    user = plain_user()
    binaries = find_binaries(args, user)
    mtus = [int(m) for m in args.mtus.split(",")]
    started = time.monotonic()
    echo = start_server([sys.executable, TCPBENCH, "serve", str(ECHO_PORT)], ECHO_PORT, os.getpid())
    try:
        print("bench: loopback baseline", file=sys.stderr, flush=True)
        baseline = measure_loopback(args)
        results = {"loopback": {mtu: baseline for mtu in mtus}}
        for name, binary in binaries.items():
            results[name] = {}
            for mtu in mtus:
                print(f"bench: {name} MTU {mtu}", file=sys.stderr, flush=True)
                if binary:
                    results[name][mtu] = measure_tool(name, binary, mtu, args, user)
                else:
                    results[name][mtu] = {key: "not available" for key, *_ in report.METRICS}
    finally:
        stop(echo)
    starts = measure_startup(binaries, args, user)
    notes = machine(binaries) + [f"iperf3 -t {args.seconds:g}, median of {args.repeat} runs; {args.rr_count} ping-pongs; "
                                 f"connections for {args.conn_seconds:g} s; {args.hold} held connections; "
                                 f"total {time.monotonic() - started:.0f} s"]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    text = report.markdown(results, mtus, notes) + "\n" + startup.markdown(starts, args.starts, args.instances)
    print(text)
    (out / "latest.md").write_text(text)
    (out / "results.json").write_text(json.dumps({"notes": notes, "results": results, "startup": starts}, indent=1))
    report.chart(results, mtus, out / "latest.png")
    print(f"bench: wrote {out}/latest.md, latest.png, results.json", file=sys.stderr)


if __name__ == "__main__":
    main()
