"""The API socket (-a PATH): slirp4netns's JSON API, exact, served without
stopping the world.

One request per connection: the client sends one JSON object, shuts down its
write side (or sends a trailing newline, as rootlesskit does), and gets one
compact JSON reply before the connection is closed.  Replies, their key order
and error texts are those of slirp4netns 1.2.0, checked side by side in
tests/test_api.py.  Where slirp4netns misbehaves (it crashes on a missing
"arguments" or a non-string "proto", and wraps out-of-range ports around)
slirpd answers with the error the same field would get.

Connections are non-blocking and served from the daemon's selector between
data plane batches; a client that sends nothing is timed out, a request over
REQUEST_MAX bytes is refused.  New clients are accepted at most once per
ACCEPT_INTERVAL: meanwhile the listener leaves the selector, so a flood of
requests waits in its backlog instead of spinning the loop.
"""

from __future__ import annotations

import ipaddress
import json
import os
import selectors
import socket
import time

from slirpd.log import log
from slirpd.unixsock import listen_unix

REQUEST_MAX = 4096
CLIENT_TIMEOUT = 5.0  # seconds a client may take to send its request
CLIENTS_MAX = 64
# At most one new client per this many seconds: a client that asks back to
# back gets its answers at that pace and cannot take the data plane's CPU
ACCEPT_INTERVAL = 0.001


def _reply(obj) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def _error(desc: str) -> bytes:
    return _reply({"error": {"desc": f"bad request: {desc}"}})


class BadRequest(Exception):
    """A request the API refuses; str() is the text after "bad request: "."""


def _is_json(data: bytes) -> bool:
    """Whether data already holds a whole JSON document (a client that ends
    its request with a newline need not shut down its write side)."""
    try:
        json.loads(data)
    except ValueError:
        return False
    return True


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _pcap_state(state: int) -> str:
    """The data plane's capture state in words."""
    from slirpd.dataplane import PCAP_FULL, PCAP_OFF, PCAP_ON

    if state < 0:
        return f"stopped: {os.strerror(-state)}"
    return {PCAP_OFF: "off", PCAP_ON: "capturing", PCAP_FULL: "stopped: size limit"}[state]


class Api:
    """The commands.  forwards is the object that binds and plugs host ports
    into the data plane (forward.Forwards)."""

    def __init__(self, forwards, dhcp=None):
        self.forwards = forwards
        self.dhcp = dhcp

    def handle(self, request: bytes) -> bytes:
        """One request in, one reply out: never raises on bad input."""
        try:
            msg = json.loads(request.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return _error("cannot parse JSON")
        if not isinstance(msg, dict):
            return _error("json_object() failed")
        execute = msg.get("execute")
        if not isinstance(execute, str):
            return _error("no execute found")
        args = msg.get("arguments")
        if not isinstance(args, dict):
            args = {}
        handler = {
            "add_hostfwd": self._add_hostfwd,
            "list_hostfwd": self._list_hostfwd,
            "remove_hostfwd": self._remove_hostfwd,
            "get_stats": self._get_stats,
        }.get(execute)
        if handler is None:
            return _error("unknown execute")
        try:
            return _reply(handler(args))
        except BadRequest as e:
            return _error(f"{execute}: {e}")

    def _add_hostfwd(self, args: dict) -> dict:
        proto = args.get("proto")
        if proto not in ("tcp", "udp"):
            raise BadRequest("bad arguments.proto")
        host_addr = args.get("host_addr", "")
        if not isinstance(host_addr, str):
            raise BadRequest("bad arguments.host_addr")
        try:
            host_ip = ipaddress.ip_address(host_addr or "0.0.0.0")
        except ValueError:
            raise BadRequest("bad arguments.host_addr") from None
        host_port = args.get("host_port")
        if not _is_int(host_port) or not 1 <= host_port <= 65535:
            raise BadRequest("bad arguments.host_port")
        guest_addr = args.get("guest_addr", "")
        if not isinstance(guest_addr, str):
            raise BadRequest("bad arguments.guest_addr")
        try:
            guest_ip = self.forwards.guest_address(guest_addr)
        except ValueError:
            raise BadRequest("bad arguments.guest_addr") from None
        guest_port = args.get("guest_port")
        if not _is_int(guest_port) or not 1 <= guest_port <= 65535:
            raise BadRequest("bad arguments.guest_port")
        try:
            fwd_id = self.forwards.add(proto, host_ip, host_port, guest_ip, guest_port)
        except OSError as e:
            log.warning("add_hostfwd %s %s:%d: %s", proto, host_ip, host_port, e.strerror)
            raise BadRequest("slirp_add_hostfwd failed") from None
        return {"return": {"id": fwd_id}}

    def _list_hostfwd(self, _args: dict) -> dict:
        return {"entries": self.forwards.entries()}

    def _get_stats(self, _args: dict) -> dict:
        """Beyond slirp4netns: the data plane's counters (frames, bytes, flows,
        drops by reason), each forward's connection count, the capture's state
        (--pcap), and the DHCP server's replies, leases and drops; "sockets":
        host sockets against their budget, "degraded" while short."""
        dp = self.forwards.dp
        counters = dp.counters()
        stats = {"counters": counters,
                 "flows": counters.get("flows_created", 0) - counters.get("flows_closed", 0),
                 "sockets": dp.sockets(),
                 "forwards": self.forwards.stats(),
                 "pcap": _pcap_state(dp.pcap_state())}
        if self.dhcp is not None:
            stats["dhcp"] = {"replies": self.dhcp.replies, "leases": len(self.dhcp.leases),
                             "drops": dict(self.dhcp.drops)}
        return {"return": stats}

    def _remove_hostfwd(self, args: dict) -> dict:
        fwd_id = args.get("id")
        if not _is_int(fwd_id) or not self.forwards.remove(fwd_id):
            raise BadRequest("bad arguments.id")
        return {"return": {}}


class _Client:
    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.request = b""
        self.reply = b""
        self.answered = False  # reply queued; what the client still sends is drained
        self.watched = False  # in the selector (not while one pass serves it)
        self.deadline = time.monotonic() + CLIENT_TIMEOUT


class ApiServer:
    """The listening socket and its clients, served from the daemon's selector."""

    def __init__(self, path: str, api: Api):
        self.path = path
        self.api = api
        self.sel: selectors.BaseSelector | None = None
        self.clients: dict[int, _Client] = {}
        self.accept_paused_until: float | None = None
        self.listener = listen_unix(path, socket.SOCK_STREAM, CLIENTS_MAX)
        self.listener.setblocking(False)
        # Kept so the socket can be removed after --enable-sandbox hid the path
        self.dir_fd = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)

    def attach(self, sel: selectors.BaseSelector) -> None:
        """Start serving from sel (the daemon's selector)."""
        self.sel = sel
        sel.register(self.listener, selectors.EVENT_READ, self._on_accept)

    def timeout(self) -> float | None:
        """Seconds until the next client times out or accepting resumes,
        None if neither is pending."""
        deadlines = [c.deadline for c in self.clients.values()]
        if self.accept_paused_until is not None:
            deadlines.append(self.accept_paused_until)
        if not deadlines:
            return None
        return max(0.0, min(deadlines) - time.monotonic())

    def expire(self) -> None:
        """Resume accepting once the interval is over; answer clients that
        took too long to ask; close those that take too long to go away."""
        now = time.monotonic()
        if self.accept_paused_until is not None and now >= self.accept_paused_until:
            self.accept_paused_until = None
            self.sel.register(self.listener, selectors.EVENT_READ, self._on_accept)
        for client in [c for c in self.clients.values() if c.deadline <= now]:
            if client.answered:
                self._close(client)
            else:
                self._respond(client, _error("timed out waiting for the request"))

    def _on_accept(self) -> None:
        try:
            sock, _ = self.listener.accept()
        except (BlockingIOError, InterruptedError):
            return
        self.sel.unregister(self.listener)
        self.accept_paused_until = time.monotonic() + ACCEPT_INTERVAL
        if len(self.clients) >= CLIENTS_MAX:
            sock.close()
            return
        sock.setblocking(False)
        client = _Client(sock)
        self.clients[sock.fileno()] = client
        # Most clients have sent their request by now: answer it in this
        # pass, and only watch the ones that have not
        self._on_readable(client)
        if client.sock.fileno() >= 0 and not client.answered:
            self._watch(client, selectors.EVENT_READ, lambda: self._on_readable(client))

    def _watch(self, client: _Client, events: int, callback) -> None:
        if client.watched:
            self.sel.modify(client.sock, events, callback)
        else:
            self.sel.register(client.sock, events, callback)
            client.watched = True

    def _on_readable(self, client: _Client) -> None:
        try:
            chunk = client.sock.recv(REQUEST_MAX + 1)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._close(client)
            return
        if client.answered:  # draining an oversized request
            if not chunk:
                self._close(client)
            return
        client.request += chunk
        if len(client.request) > REQUEST_MAX:
            self._respond(client, _error(f"request too large (over {REQUEST_MAX} bytes)"))
        elif not chunk or (client.request.endswith(b"\n") and _is_json(client.request)):
            self._respond(client, self.api.handle(client.request))

    def _respond(self, client: _Client, reply: bytes) -> None:
        client.reply = reply
        client.answered = True
        client.deadline = time.monotonic() + CLIENT_TIMEOUT
        self._on_writable(client)
        if client.sock.fileno() >= 0 and client.reply:
            self._watch(client, selectors.EVENT_WRITE, lambda: self._on_writable(client))

    def _on_writable(self, client: _Client) -> None:
        try:
            sent = client.sock.send(client.reply)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._close(client)
            return
        client.reply = client.reply[sent:]
        if client.reply:
            return
        if len(client.request) <= REQUEST_MAX:
            self._close(client)
            return
        # Closing with unread bytes would reset the connection before the
        # client reads the reply: drain what it still sends instead.
        client.sock.shutdown(socket.SHUT_WR)
        self._watch(client, selectors.EVENT_READ, lambda: self._on_readable(client))

    def _close(self, client: _Client) -> None:
        self.clients.pop(client.sock.fileno(), None)
        if client.watched:
            self.sel.unregister(client.sock)
        client.sock.close()

    def close(self) -> None:
        """Close every connection and the listener, and remove the socket file
        (the daemon's selector is gone by now)."""
        for client in self.clients.values():
            client.sock.close()
        self.clients.clear()
        self.listener.close()
        try:
            os.unlink(os.path.basename(self.path), dir_fd=self.dir_fd)
        except OSError:
            pass
        os.close(self.dir_fd)
