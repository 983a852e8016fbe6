"""Start-up and footprint (issue 19): time to ready, idle memory, many instances.

Runs as root inside tests/sandbox.sh; every tool runs as the plain user, each
start on a fresh guest (bench/tools.py's Guest).  For each tool:

- ready: from just before exec until the guest is configured and the tool
  says so: slirp4netns and slirpd `-c -r FD PID tap0` until the ready fd
  gives its byte; pasta and slirpd-pasta (slirpd run as pasta, through a
  link of that name) `--config-net PID` until its exit 0 (it exits once
  the namespace is configured, its daemon detached).  The median of --runs
  starts; beside it the CPU time the starting process used until then, and
  the time it spent waiting for a CPU (/proc/PID/schedstat; for pasta the
  exited process's rusage, without the wait), since a loaded machine makes
  the wall time longer than the work;
- the same time to ready with podman's options: slirp4netns and slirpd
  with PODMAN_OPTIONS (the sandbox and seccomp included), pasta and
  slirpd-pasta with PODMAN_PASTA_OPTIONS (podman 5.3's, on a PID rather
  than --netns);
- idle RSS and PSS of the serving process, IDLE_WAIT after ready;
- `-- true` (slirpd and the pastas, which make the namespaces themselves): the
  whole run's wall time and CPU time (every process of it) minus those of
  `true` alone, median of --runs; and the floor under slirpd's figures, its
  Python interpreter started to do nothing;
- the PSS sum of --instances started at once, each on its own guest, all
  idle (shared pages count once over all of them).

Standalone (`tests/sandbox.sh VENV/bin/python bench/startup.py`) it prints a
Markdown table; bench.py adds the same table to its report.
"""

from __future__ import annotations

import argparse
import os
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tools import Guest, ToolError, as_user, pasta_link, plain_user, require_sandbox_root, wait_until

IDLE_WAIT = 0.5  # seconds after ready before memory is read
PASTA = "/tmp/pasta-anchor/passt-2c174f1/pasta"  # where ../shared/anchors/build-pasta.sh puts it
READY_TIMEOUT = 20.0
# What podman adds to -c -r FD PID tap0 (tests/test_podman.py): the sandbox
# and seccomp are part of its start
PODMAN_OPTIONS = ("--disable-host-loopback", "--mtu=65520", "--enable-sandbox", "--enable-seccomp", "--enable-ipv6")
# What podman 5.3 and later add to pasta's --config-net (tests/pastalib.py's
# podman_argv), but --netns
PODMAN_PASTA_OPTIONS = ("--dns-forward", "169.254.1.1", "--no-map-gw", "--map-guest-addr", "169.254.1.2")
PASTA_TOOLS = ("pasta", "slirpd-pasta")  # tools with pasta's command line
# key, label, unit, format
ROWS = [
    ("ready_ms", "time to ready (median)", "ms", "{:.1f}"),
    ("ready_cpu_ms", "CPU time until ready (median)", "ms", "{:.1f}"),
    ("ready_wait_ms", "waiting for a CPU until ready (median)", "ms", "{:.1f}"),
    ("podman_ready_ms", "time to ready with podman's options (median)", "ms", "{:.1f}"),
    ("command_ms", "`-- true` minus `true` (median)", "ms", "{:.1f}"),
    ("command_cpu_ms", "`-- true` minus `true`: CPU time, all processes (median)", "ms", "{:.1f}"),
    ("python_ms", "floor: its Python doing nothing, minus `true` (median)", "ms", "{:.1f}"),
    ("python_cpu_ms", "floor: its Python doing nothing, minus `true`: CPU time (median)", "ms", "{:.1f}"),
    ("rss_mib", "RSS once ready, idle (median)", "MiB", "{:.1f}"),
    ("pss_mib", "PSS once ready, idle (median)", "MiB", "{:.1f}"),
    ("pss_sum_mib", "PSS sum of {instances} instances at once", "MiB", "{:.1f}"),
]


class Started:
    """One start of a tool on its own guest: the serving pid, when it was
    ready, the CPU time used until then and the time spent waiting for a
    CPU (ms, None if unknown)."""

    def __init__(self, guest: Guest, proc: subprocess.Popen, pid: int, seconds: float, cpu: float | None,
                 wait: float | None):
        self.guest, self.proc, self.pid, self.seconds, self.cpu, self.wait = guest, proc, pid, seconds, cpu, wait

    def stop(self):
        """Stop the serving process (SIGKILL after 5 s), then the guest."""
        try:
            for pid in {self.pid, self.proc.pid}:
                try:
                    os.kill(pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
            if self.pid != self.proc.pid:  # pasta's detached daemon: not our child
                try:
                    wait_until(lambda: not Path(f"/proc/{self.pid}").exists(), 5, f"pid {self.pid} to exit")
                except ToolError:
                    os.kill(self.pid, signal.SIGKILL)
        finally:
            self.guest.stop()


def schedstat_ms(pid: int) -> tuple[float, float]:
    """(time on a CPU, time waiting for one) of pid so far, in ms."""
    on_cpu, waiting, _slices = Path(f"/proc/{pid}/schedstat").read_text().split()
    return int(on_cpu) / 1e6, int(waiting) / 1e6


def memory_mib(pid: int) -> tuple[float, float]:
    """(RSS, PSS) of pid in MiB."""
    values = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("Rss", "Pss"):
            values[key] = int(rest.split()[0]) / 1024
    return values["Rss"], values["Pss"]


def start_slirp(binary: str, user, extra=()) -> Started:
    """slirp4netns or slirpd with -c on a fresh guest, timed to the ready fd."""
    guest = Guest(user)
    rfd, wfd = os.pipe()
    try:
        argv = [binary, "-c", "-r", str(wfd), *extra, str(guest.pid), "tap0"]
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                pass_fds=(wfd,), **as_user(user))
        os.close(wfd)
        wfd = -1
        ready, _, _ = select.select([rfd], [], [], READY_TIMEOUT)
        got = os.read(rfd, 1) if ready else b""
        seconds = time.perf_counter() - t0
        cpu, wait = schedstat_ms(proc.pid)
    finally:
        os.close(rfd)
        if wfd >= 0:
            os.close(wfd)
    started = Started(guest, proc, proc.pid, seconds, cpu, wait)
    if got != b"1":
        started.stop()
        raise ToolError(f"{binary}: not ready (ready fd gave {got!r})")
    return started


def start_pasta(binary: str, user, workdir: Path, extra=()) -> Started:
    """pasta --config-net (and extra) on a fresh guest, timed to its exit 0;
    the detached daemon's pid from --pid."""
    guest = Guest(user)
    pidfile = workdir / f"pasta-{guest.pid}.pid"
    argv = [binary, "--config-net", "--quiet", "-t", "none", "-u", "none", "-T", "none", "-U", "none", *extra,
            "--pid", str(pidfile), str(guest.pid)]
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            **as_user(user))
    status, cpu = exited_within(proc, READY_TIMEOUT) or (None, None)
    seconds = time.perf_counter() - t0
    try:
        pid = int(pidfile.read_text())
    except (OSError, ValueError):
        pid = proc.pid
    started = Started(guest, proc, pid, seconds, cpu, None)
    if status != 0:
        started.stop()
        raise ToolError(f"{binary}: exit status {status}")
    return started


def run_to_end(argv: list[str], user) -> tuple[float, float]:
    """Run argv to its end as user: (wall time, CPU time of it and of the
    children it reaped) in ms; ToolError unless it exits 0 in time."""
    with tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                                **as_user(user))
        ended = exited_within(proc, READY_TIMEOUT)
        wall = (time.perf_counter() - t0) * 1000
        if ended is None:
            proc.kill()
            proc.wait()
            raise ToolError(f"{argv[0]}: still running after {READY_TIMEOUT:g} s")
        status, cpu = ended
        if status != 0:
            err.seek(0)
            raise ToolError(f"{argv[0]} exited {status}: {err.read().decode(errors='replace').strip()}")
    return wall, cpu


def exited_within(proc: subprocess.Popen, timeout: float) -> tuple[int, float] | None:
    """Reap proc if it ends within timeout seconds: (its exit status, the CPU
    time of it and of the children it reaped, in ms); None if it runs on."""
    pidfd = os.pidfd_open(proc.pid)
    try:
        if not select.select([pidfd], [], [], timeout)[0]:
            return None
    finally:
        os.close(pidfd)
    _pid, wstatus, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(wstatus)
    return proc.returncode, (usage.ru_utime + usage.ru_stime) * 1000


def command_ms(argv: list[str], user, runs: int) -> tuple[float, float]:
    """argv + [true] run to its end as user, less `true` alone: the
    medians of the wall time and of the CPU time, in ms."""
    true = shutil.which("true")
    walls, cpus = [], []
    for _ in range(runs):
        wall, cpu = run_to_end([*argv, true], user)
        true_wall, true_cpu = run_to_end([true], user)
        walls.append(wall - true_wall)
        cpus.append(cpu - true_cpu)
    return statistics.median(walls), statistics.median(cpus)


def started_once(start) -> float:
    """start() a tool, stop it again. Return: its time to ready in ms."""
    s = start()
    s.stop()
    return s.seconds * 1000


def _median(values: list):
    """The median, None if a value is unknown."""
    return None if None in values else statistics.median(values)


def measure(name: str, binary: str, user, runs: int, instances: int, workdir: Path) -> dict:
    """Every row for one tool ("slirp4netns", "slirpd", or one of
    PASTA_TOOLS); a row that cannot be measured holds the reason."""
    pasta = name in PASTA_TOOLS
    start = (lambda: start_pasta(binary, user, workdir)) if pasta else (lambda: start_slirp(binary, user))
    start_podman = (lambda: start_pasta(binary, user, workdir, PODMAN_PASTA_OPTIONS)) if pasta else \
        (lambda: start_slirp(binary, user, PODMAN_OPTIONS))
    r: dict = {}
    try:
        ready, cpu, wait, rss, pss = [], [], [], [], []
        for _ in range(runs):
            s = start()
            try:
                ready.append(s.seconds * 1000)
                cpu.append(s.cpu)
                wait.append(s.wait)
                time.sleep(IDLE_WAIT)
                m = memory_mib(s.pid)
                rss.append(m[0])
                pss.append(m[1])
            finally:
                s.stop()
        r.update(ready_ms=statistics.median(ready), ready_cpu_ms=_median(cpu), ready_wait_ms=_median(wait),
                 rss_mib=statistics.median(rss), pss_mib=statistics.median(pss))
    except ToolError as e:
        r.update({key: str(e) for key in ("ready_ms", "ready_cpu_ms", "ready_wait_ms", "rss_mib", "pss_mib")})
    try:
        r["podman_ready_ms"] = statistics.median(started_once(start_podman) for _ in range(runs))
    except ToolError as e:
        r["podman_ready_ms"] = str(e)
    r["python_ms"] = r["python_cpu_ms"] = None
    if name == "slirpd":  # the floor: the interpreter slirpd's script runs on, doing nothing
        python = Path(binary).read_text().splitlines()[0].removeprefix("#!").strip()
        r["python_ms"], r["python_cpu_ms"] = command_ms([python, "-c", "import sys; sys.argv[1]"], user, runs)
    if name == "slirp4netns":
        r["command_ms"] = r["command_cpu_ms"] = None
    else:
        argv = [binary, "--config-net", "--quiet", "--"] if pasta else [binary, "--"]
        try:
            r["command_ms"], r["command_cpu_ms"] = command_ms(argv, user, runs)
        except ToolError as e:
            r["command_ms"] = r["command_cpu_ms"] = str(e)
    started: list[Started] = []
    try:
        for _ in range(instances):
            started.append(start())
        time.sleep(IDLE_WAIT)
        r["pss_sum_mib"] = sum(memory_mib(s.pid)[1] for s in started)
    except ToolError as e:
        r["pss_sum_mib"] = str(e)
    finally:
        for s in started:
            s.stop()
    return r


def markdown(results: dict, runs: int, instances: int) -> str:
    """The table: one row per ROWS entry, one column per tool."""
    tools = list(results)
    lines = ["| start-up and footprint | " + " | ".join(tools) + " |", "| --- | " + " | ".join("---" for _ in tools) + " |"]
    for key, label, unit, fmt in ROWS:
        cells = []
        for t in tools:
            v = results[t].get(key)
            cells.append(fmt.format(v) if isinstance(v, (int, float)) else "—" if v is None else f"*{v}*")
        lines.append(f"| {label.format(instances=instances)}, {unit} | " + " | ".join(cells) + " |")
    lines += ["", f"Start-up: {runs} starts per tool, each on a fresh guest, as the plain user; ready = exec until "
              "the ready fd's byte (slirp4netns, slirpd: `-c -r FD PID tap0`) or the exit 0 of `pasta "
              "--config-net PID` (pasta, and slirpd-pasta: slirpd run as pasta); with podman's options: "
              f"{' '.join(PODMAN_OPTIONS)}, or for the pastas {' '.join(PODMAN_PASTA_OPTIONS)}; memory read "
              "0.5 s after ready; `-- true`: `slirpd -- true` and `pasta --config-net -- true`."]
    return "\n".join(lines) + "\n"


def main():
    """Measure the tools asked for and print the table."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--venv", default=str(Path(sys.executable).parent.parent), help="venv whose bin/slirpd is used")
    p.add_argument("--slirp4netns", default=shutil.which("slirp4netns") or "")
    p.add_argument("--pasta", default=os.environ.get("PASTA", PASTA),
                   help="pasta binary (default: the one ../shared/anchors/build-pasta.sh builds)")
    p.add_argument("--tools", default="slirp4netns,slirpd,pasta,slirpd-pasta")
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--instances", type=int, default=20)
    args = p.parse_args()
    require_sandbox_root("startup.py")
    user = plain_user()
    slirpd = Path(args.venv) / "bin" / "slirpd"
    binaries = {"slirp4netns": args.slirp4netns, "slirpd": str(slirpd), "pasta": args.pasta,
                "slirpd-pasta": pasta_link(slirpd)}
    workdir = Path(tempfile.mkdtemp(prefix="slirpd-startup-", dir="/tmp"))
    os.chown(workdir, user.pw_uid, user.pw_gid)
    try:
        results = {}
        for name in args.tools.split(","):
            binary = binaries[name]
            if not binary or not os.access(binary, os.X_OK):
                results[name] = {key: "not available" for key, *_ in ROWS}
                continue
            print(f"startup: {name}", file=sys.stderr, flush=True)
            results[name] = measure(name, binary, user, args.runs, args.instances, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        if binaries["slirpd-pasta"]:  # pasta_link()'s directory
            shutil.rmtree(Path(binaries["slirpd-pasta"]).parent, ignore_errors=True)
    print(markdown(results, args.runs, args.instances))


if __name__ == "__main__":
    main()
