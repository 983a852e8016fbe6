"""slirpd-ctl (also `slirpd ctl`): a small client for the API socket, so
nobody has to pipe JSON through `nc -U`.

    slirpd-ctl -s SOCK add-hostfwd [--udp] [--guest-addr ADDR] [HOSTADDR:]HOSTPORT:GUESTPORT
    slirpd-ctl -s SOCK list | remove ID | stats        (--json: the raw reply)

The socket may also come from $SLIRPD_API_SOCKET.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys

from slirpd.cli import UsageError
from slirpd.portspec import publish_spec

TIMEOUT = 10.0


def request(path: str, message: dict):
    """Send one request the way slirp4netns clients do; return the reply,
    parsed.  Raises OSError, or ValueError when the reply is not JSON."""
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(TIMEOUT)
        s.connect(path)
        s.sendall(json.dumps(message).encode())
        s.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    try:
        return json.loads(data)
    except RecursionError:
        raise ValueError("the reply is nested too deeply") from None


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="slirpd-ctl", description="Talk to a running slirpd's API socket.")
    p.add_argument("-s", "--socket", default=os.environ.get("SLIRPD_API_SOCKET"),
                   help="API socket path (default: $SLIRPD_API_SOCKET)")
    p.add_argument("--json", action="store_true", help="print the raw JSON reply")
    sub = p.add_subparsers(dest="command", required=True)
    add = sub.add_parser("add-hostfwd", help="forward a host port into the guest")
    add.add_argument("spec", metavar="[HOSTADDR:]HOSTPORT[-LAST]:GUESTPORT[-LAST]")
    add.add_argument("--udp", action="store_true")
    add.add_argument("--guest-addr", default="")
    sub.add_parser("list", help="list the forwards")
    rm = sub.add_parser("remove", help="remove a forward")
    rm.add_argument("id", type=int)
    sub.add_parser("stats", help="counters and per-forward connections")
    return p


def _port(ports):
    """A port for the API: a number, or a range as "FIRST-LAST" (slirpd's extension)."""
    return ports.first if len(ports) == 1 else str(ports)


def _message(ns) -> dict:
    if ns.command == "add-hostfwd":
        try:
            proto, spec = publish_spec(ns.spec + ("/udp" if ns.udp else ""))
        except ValueError as e:
            raise UsageError(f"add-hostfwd: {e}") from None
        if proto == "auto":
            raise UsageError("add-hostfwd: auto is a start-up option of slirpd (--publish auto)")
        (m,) = spec.maps
        return {"execute": "add_hostfwd", "arguments": {"proto": proto, "host_addr": str(m.addr),
                "host_port": _port(m.ports), "guest_addr": ns.guest_addr, "guest_port": _port(m.to)}}
    if ns.command == "remove":
        return {"execute": "remove_hostfwd", "arguments": {"id": ns.id}}
    return {"execute": {"list": "list_hostfwd", "stats": "get_stats"}[ns.command]}


def _show(command: str, reply: dict) -> str:
    if command == "add-hostfwd":
        return str(reply["return"]["id"])
    if command == "remove":
        return ""
    if command == "list":
        rows = [f"{e['id']}\t{e['proto']}\t{e['host_addr']}:{e['host_port']}\t{e['guest_addr']}:{e['guest_port']}"
                for e in reply["entries"]]
        return "\n".join(["ID\tPROTO\tHOST\tGUEST", *rows])
    stats = reply["return"]
    lines = [f"flows {stats['flows']}"]
    if stats.get("pcap", "off") != "off":
        lines.append(f"pcap {stats['pcap']}")
    lines += [f"forward {f['id']} {f['proto']} {f['host_addr']}:{f['host_port']} -> "
              f"{f['guest_addr']}:{f['guest_port']}: {f['connections']} connections" for f in stats["forwards"]]
    lines += [f"{name} {value}" for name, value in stats["counters"].items() if value]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """The slirpd-ctl command. Return: exit status."""
    ns = _parser().parse_args(sys.argv[1:] if argv is None else argv)
    if not ns.socket:
        print("slirpd-ctl: no API socket: use -s PATH or set SLIRPD_API_SOCKET", file=sys.stderr)
        return 1
    try:
        reply = request(ns.socket, _message(ns))
    except UsageError as e:
        print(f"slirpd-ctl: {e}", file=sys.stderr)
        return 1
    except (OSError, ValueError) as e:
        print(f"slirpd-ctl: {ns.socket}: {e}", file=sys.stderr)
        return 1
    if isinstance(reply, dict) and "error" in reply:
        error = reply["error"]
        desc = error.get("desc") if isinstance(error, dict) else None
        print(f"slirpd-ctl: {desc if isinstance(desc, str) else json.dumps(reply)}", file=sys.stderr)
        return 1
    try:
        out = json.dumps(reply) if ns.json else _show(ns.command, reply)
    except (KeyError, TypeError, AttributeError, IndexError):  # not a reply slirpd gives
        print(f"slirpd-ctl: {ns.socket}: unexpected reply: {json.dumps(reply)[:200]}", file=sys.stderr)
        return 1
    if out:
        print(out)
    return 0
