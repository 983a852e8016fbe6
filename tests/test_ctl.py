"""slirpd-ctl against a daemon that answers nonsense: whatever the reply, the
client prints one line and exits 1 (or prints what it understood and exits
0), never a traceback.  The normal round trip is in test_api.py."""

import json
import socket
import threading

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from slirpd import ctl

from lib.jsongen import hostile_leaves, json_of

COMMANDS = [["add-hostfwd", "8080:80"], ["list"], ["remove", "1"], ["stats"], ["--json", "stats"]]


class FakeDaemon:
    """A UNIX socket that answers every request with the reply it is given."""

    def __init__(self, path: str):
        self.path = path
        self.listener = socket.socket(socket.AF_UNIX)
        self.listener.bind(path)
        self.listener.listen(1)
        self.listener.settimeout(10)

    def answer_once(self, reply: bytes) -> threading.Thread:
        def serve():
            conn, _ = self.listener.accept()
            with conn:
                conn.settimeout(10)
                while conn.recv(65536):
                    pass
                conn.sendall(reply)

        t = threading.Thread(target=serve, daemon=True)
        t.start()
        return t

    def run_ctl(self, argv: list[str], reply: bytes, capsys) -> tuple[int, str, str]:
        t = self.answer_once(reply)
        status = ctl.main(["-s", self.path, *argv])
        t.join(10)
        out, err = capsys.readouterr()
        return status, out, err


@pytest.fixture
def daemon(tmp_path):
    d = FakeDaemon(str(tmp_path / "api.sock"))
    yield d
    d.listener.close()


@pytest.mark.parametrize("reply,line", [
    (b"[" * 5000 + b"]" * 5000, "the reply is nested too deeply"),
    (b"not json", "Expecting value"),
    (b'{"return": "\xff"}', "codec can't decode"),
    (b"", "Expecting value"),
    (b"[]", "unexpected reply: []"),
    (b'{"return": 5}', 'unexpected reply: {"return": 5}'),
    (b'{"error": 5}', 'slirpd-ctl: {"error": 5}'),
    (b'{"error": {"desc": ["x"]}}', 'slirpd-ctl: {"error": {"desc": ["x"]}}'),
])
def test_a_reply_that_is_not_slirpds_is_one_line(daemon, capsys, reply, line):
    status, out, err = daemon.run_ctl(["stats"], reply, capsys)
    assert status == 1 and out == ""
    assert len(err.splitlines()) == 1 and line in err, err


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(command=st.sampled_from(COMMANDS), reply=json_of(hostile_leaves) | st.fixed_dictionaries(
    {}, optional={"return": json_of(hostile_leaves), "entries": json_of(hostile_leaves),
                  "error": json_of(hostile_leaves)}))
def test_any_reply_is_an_answer_or_one_line(daemon, capsys, command, reply):
    """Generated replies, shaped like slirpd's or not, for every command:
    exit 0 with output, or exit 1 with one line on stderr."""
    status, out, err = daemon.run_ctl(command, json.dumps(reply).encode(), capsys)
    if status == 0:
        assert err == ""
    else:
        assert status == 1 and out == "" and len(err.splitlines()) == 1, (status, out, err)
