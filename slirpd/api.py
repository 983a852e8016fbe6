"""The API socket (-a PATH): slirp4netns's JSON API, exact, served without
stopping the world.

One request per connection: the client sends one JSON object, shuts down its
write side (or sends a trailing newline, as rootlesskit does), and gets one
compact JSON reply before the connection is closed.  Replies, their key order
and error texts are those of slirp4netns 1.2.0, checked side by side in
tests/test_api.py.  Where slirp4netns misbehaves (it crashes on a missing
"arguments" or a non-string "proto", and wraps out-of-range ports around)
slirpd answers with the error the same field would get.

Requests are read as slirp4netns's parser reads them (apijson.py), and
string arguments as its C code sees them: up to the first NUL.

No request can stop the daemon: Api.handle() answers every input with one
JSON reply; an exception that escapes a command is answered as an error and
logged in one line.  The server closes a client whose socket misbehaves (a
reset, a half-close, a client that never reads) without touching the others.

Connections are non-blocking and served from the daemon's selector between
data plane batches; a client that sends nothing is timed out, a request over
REQUEST_MAX bytes is refused.  New clients are accepted at most once per
ACCEPT_INTERVAL: meanwhile the listener leaves the selector, so a flood of
requests waits in its backlog instead of spinning the loop.  When accept()
fails for want of descriptors or memory (EMFILE, ENFILE, ENOBUFS, ENOMEM),
the listener leaves the selector for ACCEPT_RETRY and tries again: clients
wait in the backlog, the loop does not spin, and one line is logged when it
starts and one when it ends (get_stats: "api": "accept_errors").
"""

from __future__ import annotations

import errno
import functools
import ipaddress
import json
import os
import selectors
import socket
import time

from slirpd.apijson import parse_request
from slirpd.config import API_CLIENTS_MAX as CLIENTS_MAX
from slirpd.log import log
from slirpd.portspec import parse_mapping, parse_range
from slirpd.remover import SocketRemover
from slirpd.unixsock import listen_unix

REQUEST_MAX = 4096
CLIENT_TIMEOUT = 5.0  # seconds a client may take to send its request
# At most one new client per this many seconds: a client that asks back to
# back gets its answers at that pace and cannot take the data plane's CPU
ACCEPT_INTERVAL = 0.001
# After accept() failed (out of descriptors or memory): this long without trying
ACCEPT_RETRY = 0.1
ACCEPT_RESOURCE_ERRNOS = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)
# A client that went away between connect() and accept(): nothing to do
ACCEPT_GONE_ERRNOS = (errno.ECONNABORTED, errno.EPROTO)


def _reply(obj) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def _error(desc: str) -> bytes:
    return _reply({"error": {"desc": f"bad request: {desc}"}})


class BadRequest(Exception):
    """A request the API refuses; str() is the text after "bad request: "."""


def _c_string(value):
    """A string argument as slirp4netns's C code sees it: up to the first
    NUL ("\\u0000" in JSON); anything else as it is."""
    return value.split("\0", 1)[0] if isinstance(value, str) else value


def _is_json(data: bytes) -> bool:
    """Whether data already holds a whole JSON document (a client that ends
    its request with a newline need not shut down its write side)."""
    try:
        parse_request(data)
    except ValueError:
        return False
    return True


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _ports(value, name: str) -> str:
    """A port argument as text for portspec: a number 1..65535, as
    slirp4netns takes it, or (a slirpd extension) a range "FIRST-LAST" (of
    the same length for host_port and guest_port)."""
    if _is_int(value) and 1 <= value <= 65535:
        return str(value)
    value = _c_string(value)
    if isinstance(value, str) and "-" in value:
        return value
    raise BadRequest(f"bad arguments.{name}")


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
        # get_stats sections beyond the data plane's: name -> a function
        # returning a JSON-ready dict (the server adds "api")
        self.stats_sections = {} if dhcp is None else {"dhcp": dhcp.stats}

    def handle(self, request: bytes) -> bytes:
        """One request in, one reply out: never raises, whatever the bytes."""
        try:
            msg = parse_request(request)
        except ValueError:
            return _error("cannot parse JSON")
        if not isinstance(msg, dict):
            return _error("json_object() failed")
        execute = _c_string(msg.get("execute"))
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
        except Exception as e:  # a bug must cost one reply, not the daemon
            log.error("API %s failed: %s: %s", execute, type(e).__name__, e)
            return _error(f"{execute}: internal error")

    def _add_hostfwd(self, args: dict) -> dict:
        proto = _c_string(args.get("proto"))
        if proto not in ("tcp", "udp"):
            raise BadRequest("bad arguments.proto")
        host_addr = _c_string(args.get("host_addr", ""))
        if not isinstance(host_addr, str):
            raise BadRequest("bad arguments.host_addr")
        try:
            host_ip = ipaddress.ip_address(host_addr or "0.0.0.0")
        except ValueError:
            raise BadRequest("bad arguments.host_addr") from None
        host_port = _ports(args.get("host_port"), "host_port")
        try:
            parse_range(host_port)
        except ValueError:
            raise BadRequest("bad arguments.host_port") from None
        guest_addr = _c_string(args.get("guest_addr", ""))
        if not isinstance(guest_addr, str):
            raise BadRequest("bad arguments.guest_addr")
        try:
            guest_ip = self.forwards.guest_address(guest_addr)
        except ValueError:
            raise BadRequest("bad arguments.guest_addr") from None
        guest_port = _ports(args.get("guest_port"), "guest_port")
        try:
            host_ports, guest_first = parse_mapping(host_port, guest_port)
        except ValueError:
            raise BadRequest("bad arguments.guest_port") from None
        try:
            fwd_id = self.forwards.add(proto, host_ip, host_ports, guest_ip, guest_first)
        except OSError as e:
            log.warning("add_hostfwd %s %s:%s: %s", proto, host_ip, e.filename or host_port, e.strerror)
            raise BadRequest("slirp_add_hostfwd failed") from None
        return {"return": {"id": fwd_id}}

    def _list_hostfwd(self, _args: dict) -> dict:
        return {"entries": self.forwards.entries()}

    def _get_stats(self, _args: dict) -> dict:
        """Beyond slirp4netns: the data plane's counters (frames, bytes, flows,
        drops by reason), each forward's connection count, the capture's state
        (--pcap), "sockets": host sockets against their budget, "degraded"
        while short, "flow_states": open flows by state, "flows_closed": closed
        flows by reason, then one entry per stats_sections (the DHCP server's
        replies, leases and drops; the API server's clients and accept
        errors)."""
        dp = self.forwards.dp
        counters = dp.counters()
        stats = {"counters": counters,
                 "flows": counters.get("flows_created", 0) - counters.get("flows_closed", 0),
                 "sockets": dp.sockets(),
                 "flow_states": dp.flow_states(),
                 "flows_closed": dp.flows_closed(),
                 "forwards": self.forwards.stats(),
                 "pcap": _pcap_state(dp.pcap_state())}
        for name, section in self.stats_sections.items():
            stats[name] = section()
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
        self.accept_errors = 0  # accept() failures for want of a resource
        self.accept_failing = 0  # ... of them in a row, until one succeeds
        self.listener = listen_unix(path, socket.SOCK_STREAM, CLIENTS_MAX)
        self.listener.setblocking(False)
        # Removes the file at exit, also after --enable-sandbox hid the path
        self.remover = SocketRemover(path)
        api.stats_sections["api"] = self.stats

    def attach(self, sel: selectors.BaseSelector) -> None:
        """Start serving from sel (the daemon's selector)."""
        self.sel = sel
        sel.register(self.listener, selectors.EVENT_READ, self._on_accept)

    def stats(self) -> dict:
        """The get_stats section: clients connected now, accept() failures."""
        return {"clients": len(self.clients), "accept_errors": self.accept_errors}

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
        """Resume accepting once the pause is over; answer clients that
        took too long to ask; close those that take too long to go away."""
        now = time.monotonic()
        if self.accept_paused_until is not None and now >= self.accept_paused_until:
            self._resume_accepting()
        for client in [c for c in self.clients.values() if c.deadline <= now]:
            if client.answered:
                self._close(client)
            else:
                self._guarded(client, self._respond, _error("timed out waiting for the request"))

    def _pause_accepting(self, seconds: float) -> None:
        self.sel.unregister(self.listener)
        self.accept_paused_until = time.monotonic() + seconds

    def _resume_accepting(self) -> None:
        """Watch the listener again; if the selector cannot take it (epoll
        out of memory or watches), count it as a failed accept and wait."""
        try:
            self.sel.register(self.listener, selectors.EVENT_READ, self._on_accept)
        except OSError as e:
            self.accept_paused_until = time.monotonic() + ACCEPT_RETRY
            self._count_failure(e)
            return
        self.accept_paused_until = None

    def _on_accept(self) -> None:
        try:
            sock, _ = self.listener.accept()
        except BlockingIOError:
            return
        except OSError as e:
            if e.errno not in ACCEPT_GONE_ERRNOS:
                self._accept_failed(e)
            return
        if self.accept_failing:
            log.warning("API socket: accepting clients again after %d failed attempts", self.accept_failing)
            self.accept_failing = 0
        self._pause_accepting(ACCEPT_INTERVAL)
        if len(self.clients) >= CLIENTS_MAX:
            sock.close()
            return
        sock.setblocking(False)
        client = _Client(sock)
        self.clients[sock.fileno()] = client
        # Most clients have sent their request by now: answer it in this
        # pass, and only watch the ones that have not
        self._guarded(client, self._serve_new)

    def _accept_failed(self, e: OSError) -> None:
        """accept() failed for want of descriptors or memory (or for a reason
        nobody expects): stop trying for ACCEPT_RETRY, so the loop does not
        spin on a listener that stays readable; log the first failure only."""
        self._count_failure(e)
        self._pause_accepting(ACCEPT_RETRY)

    def _count_failure(self, e: OSError) -> None:
        self.accept_errors += 1
        self.accept_failing += 1
        if self.accept_failing == 1:
            kind = "out of resources" if e.errno in ACCEPT_RESOURCE_ERRNOS else "unexpected error"
            log.warning("API socket: cannot accept clients (%s: %s); retrying every %g s, clients wait",
                        kind, e.strerror, ACCEPT_RETRY)

    def _guarded(self, client: _Client, step, *args) -> None:
        """Run one step of serving client; whatever it raises (a selector
        that cannot take the socket, a bug) drops this client only."""
        try:
            step(client, *args)
        except Exception as e:
            log.warning("API client dropped: %s: %s", type(e).__name__, e)
            self._close(client)

    def _serve_new(self, client: _Client) -> None:
        self._on_readable(client)
        if client.sock.fileno() >= 0 and not client.answered:
            self._watch(client, selectors.EVENT_READ, self._on_readable)

    def _watch(self, client: _Client, events: int, step) -> None:
        """Call step(client) (guarded) when the socket is ready for events."""
        callback = functools.partial(self._guarded, client, step)
        if client.watched:
            self.sel.modify(client.sock, events, callback)
        else:
            self.sel.register(client.sock, events, callback)
            client.watched = True

    def _on_readable(self, client: _Client) -> None:
        try:
            chunk = client.sock.recv(REQUEST_MAX + 1)
        except BlockingIOError:
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
            self._watch(client, selectors.EVENT_WRITE, self._on_writable)

    def _on_writable(self, client: _Client) -> None:
        try:
            sent = client.sock.send(client.reply)
        except BlockingIOError:
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
        try:
            client.sock.shutdown(socket.SHUT_WR)
        except OSError:  # it is gone already
            self._close(client)
            return
        self._watch(client, selectors.EVENT_READ, self._on_readable)

    def _close(self, client: _Client) -> None:
        if client.sock.fileno() < 0:
            return
        self.clients.pop(client.sock.fileno(), None)
        try:
            if client.watched:
                client.watched = False
                self.sel.unregister(client.sock)
        finally:
            client.sock.close()

    def close(self) -> None:
        """Close every connection and the listener, and remove the socket file
        (the daemon's selector is gone by now)."""
        for client in self.clients.values():
            client.sock.close()
        self.clients.clear()
        self.listener.close()
        self.remover.remove()
