"""No request can stop the daemon (issue 21): generated and hostile requests,
in-process against Api.handle() and ApiServer, and over a running daemon's
socket.

Every input must get exactly one reply that is valid JSON in slirp4netns's
shapes ({"return": ...}, {"entries": [...]}, {"error": {"desc": "bad
request: ..."}}), and no exception may escape.  Hypothesis generates the
requests; max_examples bounds each test's time, and deadline=None keeps a
slow example on a busy machine from failing the run.
"""

import errno
import json
import os
import selectors
import socket
import struct
import threading
import time

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from slirpd import api as api_mod, apijson
from slirpd.api import Api, ApiServer
from slirpd.config import Config
from slirpd.dataplane import Dataplane
from slirpd.forward import Forwards

from lib.harness import wait_for
from lib.jsongen import hostile_leaves, json_leaves, json_of

COMMANDS = ["add_hostfwd", "list_hostfwd", "remove_hostfwd", "get_stats"]
ARGUMENTS = ["proto", "host_addr", "host_port", "guest_addr", "guest_port", "id"]
# Values a field may be checked against, and near misses
NEAR_VALUES = ["tcp", "udp", "TCP", "", "0.0.0.0", "127.0.0.1", "::1", "::", "10.0.2.100", "10.0.2.2", "fd00::100",
               "fe80::1%lo", "1.2.3.4\0x", "\udcff", "255.255.255.255", "::ffff:127.0.0.1"]


def argument_values(leaves):
    """Values for a command's fields: near misses or arbitrary JSON."""
    return st.sampled_from(NEAR_VALUES) | st.integers(-2, 70000) | json_of(leaves)


request_objects = st.fixed_dictionaries(
    {"execute": st.sampled_from(COMMANDS) | json_of(hostile_leaves)},
    optional={"arguments": st.dictionaries(st.sampled_from(ARGUMENTS), argument_values(hostile_leaves))
              | json_of(hostile_leaves)})


@st.composite
def encoded(draw, objects=request_objects):
    """A generated request object as bytes, ASCII-escaped or raw UTF-8
    (lone surrogates included, as a C client could send them)."""
    text = json.dumps(draw(objects), allow_nan=True, ensure_ascii=draw(st.booleans()))
    return text.encode("utf-8", "surrogatepass") + draw(st.sampled_from([b"", b"\n", b"\0", b" trailing"]))


@st.composite
def mutated(draw):
    """A generated request with a few bytes replaced, inserted or removed."""
    data = bytearray(draw(encoded()))
    for _ in range(draw(st.integers(1, 4))):
        pos = draw(st.integers(0, len(data)))
        kind = draw(st.sampled_from(["replace", "insert", "delete"]))
        byte = draw(st.integers(0, 255))
        if kind == "insert" or not data[pos:]:
            data.insert(pos, byte)
        elif kind == "replace":
            data[pos] = byte
        else:
            del data[pos]
    return bytes(data)


@st.composite
def nested(draw):
    """Deep nesting, closed or not, alone or inside a request."""
    depth = draw(st.integers(0, 4000))
    opener = draw(st.sampled_from([b"[", b'{"a":']))
    body = opener * depth + (b"]" * depth if opener == b"[" and draw(st.booleans()) else b"")
    if draw(st.booleans()):
        return b'{"execute":"list_hostfwd","x":' + body + b"}"
    return body


any_request = encoded() | mutated() | nested() | st.binary(max_size=5000)
RESET = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends a reset


def assert_one_reply(reply: bytes) -> dict:
    """reply is one JSON object of slirp4netns's shapes; returns it."""
    assert isinstance(reply, bytes)
    obj = json.loads(reply)
    assert isinstance(obj, dict) and len(obj) == 1
    (key, value), = obj.items()
    assert key in ("return", "entries", "error"), obj
    if key == "error":
        assert list(value) == ["desc"] and value["desc"].startswith("bad request: "), obj
    return obj


@pytest.fixture
def forwards():
    """The forward table of a real data plane (on a socket pair standing in
    for the TAP), as the daemon has it."""
    cfg = Config(target="1", enable_ipv6=True)
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    dp = Dataplane(cfg.dataplane_params(), os.dup(theirs.fileno()))
    theirs.close()
    fwds = Forwards(cfg, dp)
    yield fwds
    fwds.close()
    dp.close()
    ours.close()


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(requests=st.lists(any_request, min_size=1, max_size=4))
def test_every_request_gets_one_json_reply(forwards, requests):
    """Generated requests (valid, mutated, deeply nested, raw bytes) one
    after another: each gets one valid reply, nothing raises, and what the
    replies say matches the forward table."""
    handler = Api(forwards)
    try:
        for request in requests:
            reply = assert_one_reply(handler.handle(request))
            if "entries" in reply:
                assert reply["entries"] == forwards.entries()
    finally:
        forwards.close()
    assert not forwards.table  # every forward taken back from the data plane


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(arguments=st.dictionaries(st.sampled_from(ARGUMENTS), argument_values(json_leaves)))
def test_add_hostfwd_with_any_arguments(forwards, arguments):
    """add_hostfwd's every field of every type (text as raw UTF-8, lone
    surrogates as the bytes a C client would send): an id, or an error
    that names a field (or the bind), never anything else."""
    request = json.dumps({"execute": "add_hostfwd", "arguments": arguments}, ensure_ascii=False)
    reply = assert_one_reply(Api(forwards).handle(request.encode("utf-8", "surrogatepass")))
    if "return" in reply:
        assert set(reply["return"]) == {"id"}
    else:
        assert reply["error"]["desc"].startswith(("bad request: add_hostfwd: bad arguments.",
                                                  "bad request: add_hostfwd: slirp_add_hostfwd failed"))
    forwards.close()


def test_an_exception_in_a_command_is_an_error_reply_and_one_log_line(forwards, caplog):
    """A bug in a command (here the data plane's counters raising) costs that
    request an error reply and one log line; the next request is served."""
    def broken():
        raise RuntimeError("counters went away")

    forwards.dp.counters = broken
    handler = Api(forwards)
    with caplog.at_level("WARNING", logger="slirpd"):
        assert handler.handle(b'{"execute": "get_stats"}') == \
            b'{"error":{"desc":"bad request: get_stats: internal error"}}'
    assert [r.getMessage() for r in caplog.records] == ["API get_stats failed: RuntimeError: counters went away"]
    assert handler.handle(b'{"execute": "list_hostfwd"}') == b'{"entries":[]}'


def test_nesting_is_checked_before_parsing():
    """The depth check sees through strings (brackets inside them do not
    count) and refuses what is deeper than NESTING_MAX before json runs."""
    limit = apijson.NESTING_MAX
    assert apijson._nesting(b'{"a\\"[": ["x\\\\", "]]]"]}') == 2
    assert apijson.parse_request(b"[" * limit + b"]" * limit) is not None
    with pytest.raises(ValueError, match="nested deeper"):
        apijson.parse_request(b"[" * (limit + 1) + b"]" * (limit + 1))


class ServedApi:
    """An ApiServer on a real socket, its loop in a thread (as the daemon's
    selector would run it), for clients in the test's thread."""

    def __init__(self, path: str, handler: Api, sel=None):
        self.server = ApiServer(path, handler)
        self.sel = sel or selectors.DefaultSelector()
        self.server.attach(self.sel)
        self.running = True
        self.errors = []
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self):
        try:
            while self.running:
                timeout = self.server.timeout()
                for key, _ in self.sel.select(0.05 if timeout is None else min(timeout, 0.05)):
                    key.data()
                self.server.expire()
        except BaseException as e:  # the test fails on it
            self.errors.append(e)

    def stop(self):
        self.running = False
        self.thread.join(10)
        self.server.close()
        self.sel.close()
        assert self.errors == []


@pytest.fixture
def served(forwards, tmp_path, monkeypatch):
    """A served API whose get_stats reply is about 2 MiB (far more than a
    socket buffer holds, so it is written in parts), clients timed out
    after 0.5 s."""
    monkeypatch.setattr(api_mod, "CLIENT_TIMEOUT", 0.5)
    handler = Api(forwards)
    handler.stats_sections["big"] = lambda: {"x": "y" * (2 << 20)}
    s = ServedApi(str(tmp_path / "api.sock"), handler)
    yield s
    s.stop()


def connect(path: str) -> socket.socket:
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(10)
    s.connect(path)
    return s


def read_all(s: socket.socket, pause: float = 0.0) -> bytes:
    data = b""
    while chunk := s.recv(65536):
        data += chunk
        time.sleep(pause)
    return data


def test_partial_writes_slow_readers_and_clients_that_never_read(served):
    """A 2 MiB reply goes out in parts to a slow reader; a client that never
    reads its reply is closed at its deadline; others are served meanwhile."""
    path = served.server.path
    never_reads = connect(path)
    never_reads.sendall(b'{"execute": "get_stats"}')
    never_reads.shutdown(socket.SHUT_WR)
    slow = connect(path)
    slow.sendall(b'{"execute": "get_stats"}\n')  # rootlesskit's way: a newline, no shutdown
    quick = connect(path)
    quick.sendall(b'{"execute": "list_hostfwd"}')
    quick.shutdown(socket.SHUT_WR)
    assert read_all(quick) == b'{"entries":[]}'
    reply = assert_one_reply(read_all(slow, pause=0.001))
    assert len(reply["return"]["big"]["x"]) == 2 << 20
    wait_for(lambda: not served.server.clients, 10, "the client that never reads to be closed")
    never_reads.close()


def test_resets_half_closes_and_trickles(served):
    """A client that resets mid-request, one that half-closes at once, one
    that sends a byte at a time: each handled, the server unharmed."""
    path = served.server.path
    resets = connect(path)
    resets.sendall(b'{"execute": "list_')
    resets.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, RESET)
    resets.close()
    half = connect(path)
    half.shutdown(socket.SHUT_WR)
    assert read_all(half) == b'{"error":{"desc":"bad request: cannot parse JSON"}}'
    trickle = connect(path)
    for byte in b'{"execute": "list_hostfwd"}\n':
        trickle.send(bytes([byte]))
        time.sleep(0.002)
    assert read_all(trickle) == b'{"entries":[]}'
    gone = connect(path)  # sends a request and goes away without reading
    gone.sendall(b'{"execute": "get_stats"}')
    gone.close()
    wait_for(lambda: not served.server.clients, 10, "every client to be closed")


class FlakySelector(selectors.DefaultSelector):
    """A selector that refuses (ENOMEM) the next `failures` registrations of
    one socket, as epoll_ctl can."""

    def __init__(self):
        super().__init__()
        self.flaky, self.failures = None, 0

    def register(self, fileobj, events, data=None):
        if fileobj is self.flaky and self.failures:
            self.failures -= 1
            raise OSError(errno.ENOMEM, "Cannot allocate memory")
        return super().register(fileobj, events, data)


def test_a_listener_the_selector_refuses_is_retried(forwards, tmp_path, caplog):
    """When the listener cannot be watched again after a pause, the server
    waits ACCEPT_RETRY and tries again (counted, logged once) instead of
    raising out of the event loop; the waiting client is then served."""
    sel = FlakySelector()
    s = ServedApi(str(tmp_path / "api.sock"), Api(forwards), sel)
    sel.flaky, sel.failures = s.server.listener, 2  # after the pause that follows the first accept
    try:
        with caplog.at_level("WARNING", logger="slirpd"), connect(s.server.path) as first:
            first.sendall(b'{"execute": "list_hostfwd"}')
            first.shutdown(socket.SHUT_WR)
            assert read_all(first) == b'{"entries":[]}'
            with connect(s.server.path) as second:
                second.sendall(b'{"execute": "list_hostfwd"}')
                second.shutdown(socket.SHUT_WR)
                assert read_all(second) == b'{"entries":[]}'
    finally:
        s.stop()
    assert s.server.accept_errors == 2
    assert [r.getMessage() for r in caplog.records] == [
        "API socket: cannot accept clients (out of resources: Cannot allocate memory); retrying every 0.1 s, "
        "clients wait", "API socket: accepting clients again after 2 failed attempts"]


class TestDaemon:
    """Generated and hostile requests over a running daemon's socket, each
    sent the way some client would misbehave; afterwards the daemon serves
    the guest and holds the descriptors it held before."""

    BEHAVIOURS = ["shutdown", "newline", "close_early", "reset", "never_read", "trickle"]

    @pytest.fixture
    def daemon(self, guest, start_slirpd, user_tmp):
        path = str(user_tmp / "api.sock")
        d = start_slirpd("-c", f"--api-socket={path}", str(guest.pid))
        d.path = path
        d.guest = guest
        return d

    @staticmethod
    def send(path: str, request: bytes, behaviour: str) -> None:
        """One request, sent as behaviour says; a reply that is read must
        be valid."""
        with connect(path) as s:
            if behaviour == "close_early":
                s.sendall(request[:len(request) // 2])
                return
            if behaviour == "trickle":
                for i in range(0, len(request), 7):
                    s.sendall(request[i:i + 7])
            else:
                s.sendall(request + (b"\n" if behaviour == "newline" else b""))
            if behaviour == "reset":
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, RESET)
                return
            # a newline ends a request only if it completes a JSON document
            if behaviour != "newline" or not api_mod._is_json(request + b"\n"):
                s.shutdown(socket.SHUT_WR)
            if behaviour != "never_read":
                assert_one_reply(read_all(s))

    @pytest.mark.timeout(300)
    def test_hostile_requests_then_the_guest_is_served(self, daemon):
        from lib.api import api

        assert api(daemon.path, '{"execute": "list_hostfwd"}') == '{"entries":[]}'
        fds = daemon.open_fds()

        @settings(max_examples=400, deadline=None, database=None)
        @given(request=any_request, behaviour=st.sampled_from(self.BEHAVIOURS))
        def hostile(request, behaviour):
            self.send(daemon.path, request, behaviour)
            assert daemon.proc.poll() is None, daemon.stderr

        hostile()
        assert "API" not in daemon.stderr  # no command failed, no client was dropped
        assert daemon.guest.run("ping -c 1 -W 2 10.0.2.2", check=False).returncode == 0
        assert daemon.counters()["icmp_echo_replies"] >= 1  # SIGUSR1 still answered
        wait_for(lambda: daemon.open_fds() == fds, 15, "the daemon's descriptors to come back")
