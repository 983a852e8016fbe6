"""UDP through slirpd (or slirp4netns, pasta, loopback) with iperf3 -u, standalone.

The UDP rows of `make benchmark` use udp_iperf3() from here; run alone (as root
inside tests/sandbox.sh) it is the quick A/B measurement of a UDP change: each
--venv's slirpd in turn, alternating, --runs times, printing every run and the
medians:

    tests/sandbox.sh /var/tmp/venv-udp/bin/python bench/udpbench.py \\
        --venv /var/tmp/venv-base --venv /var/tmp/venv-udp --mtu 1500 --runs 5

"Delivered" is what iperf3 -u -b RATE -l 1400 reports: the sender's rate times
(1 - the receiver's loss), in Gbit/s.  Directions: g2h (guest -> host through
the gateway), h2g (-R: the host's server sends), fwd (a host client to a
forwarded UDP port, add_hostfwd, the guest's server receiving).  Every run
has a timeout and its own fresh guest; servers listen on the sandbox's
127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
from pathlib import Path

from tools import (FWD_GUEST_PORT, FWD_HOST_PORT, Guest, Pasta, Slirp4netns, Slirpd, ToolError, ab_runs, attached,
                   plain_user, require_sandbox_root, start_server, stop)

IPERF_PORT = 5302
DGRAM = 1400  # UDP payload bytes per datagram
GRACE = 15


class RunError(Exception):
    """One run failed: the message says why."""


def udp_iperf3(client: list[str], seconds: float, server_port: int, server=(), rate: str = "0",
               client_guest: Guest | None = None, server_guest: Guest | None = None) -> dict:
    """One iperf3 -u run: {"delivered": Gbit/s, "sent": Gbit/s, "loss": percent,
    "datagrams": how many arrived}.

    client holds -c HOST -p PORT (and -R for the reverse direction); each side
    runs in its guest if one is given.  Raises RunError on failure.
    """
    srv = start_server(["iperf3", "-s", "-1", "-p", str(server_port), *server], server_port,
                       server_guest.pid if server_guest else os.getpid(), server_guest)
    argv = ["iperf3", "-J", "-u", "-b", rate, "-l", str(DGRAM), "-t", f"{seconds:g}", *client]
    try:
        if client_guest:
            res = client_guest.run(argv, timeout=seconds + GRACE)
        else:
            res = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + GRACE)
    except subprocess.TimeoutExpired:
        raise RunError(f"timeout ({seconds + GRACE:.0f}s)") from None
    finally:
        stop(srv)
    try:
        result = json.loads(res.stdout)
    except ValueError:
        raise RunError(f"iperf3 said: {(res.stderr or res.stdout).strip()[-200:]}") from None
    if "error" in result:
        raise RunError(f"failed: {result['error']}")
    end = result["end"]
    sent = end["sum_sent"]["bits_per_second"] / 1e9
    loss = end["sum_received"].get("lost_percent", end["sum"].get("lost_percent", 0.0))
    if not end["sum_received"]["bytes"]:
        raise RunError("no datagram arrived")
    return {"delivered": sent * (1 - loss / 100), "sent": sent, "loss": loss,
            "datagrams": end["sum"]["packets"] - end["sum"]["lost_packets"]}


def run_once(binary: str, mtu: int, direction: str, seconds: float, rate: str, user, env=None,
             tool=Slirpd) -> dict:
    """One run of direction through a fresh guest with binary (a tool of class
    tool) attached; None binary: loopback."""
    if binary is None:
        client = ["-c", "127.0.0.1", "-p", str(IPERF_PORT)] + (["-R"] if direction == "h2g" else [])
        return udp_iperf3(client, seconds, IPERF_PORT, ["-B", "127.0.0.1"], rate)
    with attached(tool, binary, mtu, user, env) as daemon:
        if direction == "fwd":
            if daemon.forward_error:
                raise RunError(daemon.forward_error)
            return udp_iperf3(["-c", "127.0.0.1", "-p", str(FWD_HOST_PORT)], seconds, FWD_GUEST_PORT,
                              rate=rate, server_guest=daemon.guest)
        client = ["-c", daemon.gateway, "-p", str(IPERF_PORT)] + (["-R"] if direction == "h2g" else [])
        return udp_iperf3(client, seconds, IPERF_PORT, ["-B", "127.0.0.1"], rate, client_guest=daemon.guest)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--venv", action="append", default=[],
                   help="a venv whose bin/slirpd to measure (repeat for A/B), VENV@NAME=VALUE,... for one "
                   "with variables of its own; 'loopback' for the baseline; slirp4netns:BINARY or "
                   "pasta:BINARY for a peer")
    p.add_argument("--mtu", type=int, default=1500)
    p.add_argument("--dir", default="g2h,h2g", help="comma-separated: g2h, h2g, fwd")
    p.add_argument("--seconds", type=float, default=5)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--rate", default="0", help="iperf3 -b (0: as fast as it goes)")
    p.add_argument("--env", action="append", default=[], help="NAME=VALUE for the daemons (e.g. "
                   "SLIRPD_OFFLOADS_OFF=uso,udp_gso,udp_gro)")
    args = p.parse_args()
    require_sandbox_root("udpbench.py")
    user = plain_user()
    results: dict = {}
    for direction, run, venv in ab_runs(args.dir, args.runs, args.venv):
        path, _, own = venv.partition("@")
        tool, binary = Slirpd, None if path == "loopback" else str(Path(path) / "bin" / "slirpd")
        if path.startswith(("slirp4netns:", "pasta:")):
            name, binary = path.split(":", 1)
            tool = Slirp4netns if name == "slirp4netns" else Pasta
        env = dict(e.split("=", 1) for e in [*args.env, *filter(None, own.split(","))])
        try:
            r = run_once(binary, args.mtu, direction, args.seconds, args.rate, user, env, tool)
            line = f"delivered {r['delivered']:.3f} Gbit/s (sent {r['sent']:.3f}, loss {r['loss']:.1f}%)"
            results.setdefault((direction, venv), []).append(r["delivered"])
        except (RunError, ToolError) as e:
            line = f"failed: {e}"
        print(f"{direction} mtu {args.mtu} run {run} {venv}: {line}", flush=True)
    print(f"load: {os.getloadavg()}")
    for (direction, venv), values in results.items():
        print(f"{direction} mtu {args.mtu} {venv}: median {statistics.median(values):.3f} Gbit/s of "
              f"{len(values)} ({', '.join(f'{v:.3f}' for v in values)})")


if __name__ == "__main__":
    main()
