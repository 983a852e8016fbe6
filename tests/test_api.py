"""The API socket: slirp4netns's JSON API, byte for byte.

_TestApi runs against slirpd and, where it is installed, against Debian's
slirp4netns 1.2.0 itself, so every golden reply below is checked against the
real thing.  Cases where slirp4netns crashes or accepts nonsense are run
against slirpd only (TestSlirpdApi)."""

import json
import os
import shutil
import socket
import stat
import subprocess
import time

import pytest

from lib.api import ADD, LIST, REMOVE, api
from lib.harness import as_user, wait_for


class _TestApi:
    binary = None

    @pytest.fixture
    def sock(self, guest, start_slirpd, user_tmp):
        path = str(user_tmp / "api.sock")
        d = start_slirpd("-c", f"--api-socket={path}", str(guest.pid), "tap0", binary=self.binary)
        wait_for(lambda: os.path.exists(path), 5, "the API socket")
        self.daemon = d
        return path

    def test_add_list_remove(self, sock):
        assert api(sock, ADD % '{"proto": "tcp", "host_addr": "", "host_port": 18080, "guest_addr": "", '
                              '"guest_port": 80}') == '{"return":{"id":1}}'
        assert api(sock, ADD % '{"proto": "tcp", "host_port": 18081, "guest_port": 81}') == '{"return":{"id":2}}'
        assert api(sock, ADD % '{"proto": "udp", "host_addr": "127.0.0.1", "host_port": 18082, '
                              '"guest_addr": "10.0.2.100", "guest_port": 82}') == '{"return":{"id":3}}'
        assert api(sock, '{"execute": "list_hostfwd"}') == (
            '{"entries":[{"id":1,"proto":"tcp","host_addr":"0.0.0.0","host_port":18080,"guest_addr":"10.0.2.100",'
            '"guest_port":80},{"id":2,"proto":"tcp","host_addr":"0.0.0.0","host_port":18081,"guest_addr":'
            '"10.0.2.100","guest_port":81},{"id":3,"proto":"udp","host_addr":"127.0.0.1","host_port":18082,'
            '"guest_addr":"10.0.2.100","guest_port":82}]}')
        assert api(sock, '{"execute": "remove_hostfwd", "arguments": {"id": 2}}') == '{"return":{}}'
        assert api(sock, '{"execute": "list_hostfwd", "arguments": {}}') == (
            '{"entries":[{"id":1,"proto":"tcp","host_addr":"0.0.0.0","host_port":18080,"guest_addr":"10.0.2.100",'
            '"guest_port":80},{"id":3,"proto":"udp","host_addr":"127.0.0.1","host_port":18082,"guest_addr":'
            '"10.0.2.100","guest_port":82}]}')
        # ids are never reused
        assert api(sock, ADD % '{"proto": "tcp", "host_port": 18081, "guest_port": 81}') == '{"return":{"id":4}}'

    def test_host_port_really_bound(self, sock):
        api(sock, ADD % '{"proto": "tcp", "host_port": 18090, "guest_port": 80}')
        with socket.socket() as s, pytest.raises(OSError):
            s.bind(("0.0.0.0", 18090))
        api(sock, '{"execute": "remove_hostfwd", "arguments": {"id": 1}}')
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("0.0.0.0", 18090))

    def test_port_already_bound(self, sock):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 18091))
            s.listen()
            assert api(sock, ADD % '{"proto": "tcp", "host_addr": "127.0.0.1", "host_port": 18091, '
                                  '"guest_port": 80}') == \
                '{"error":{"desc":"bad request: add_hostfwd: slirp_add_hostfwd failed"}}'

    def test_empty_list(self, sock):
        assert api(sock, '{"execute": "list_hostfwd"}') == '{"entries":[]}'

    def test_trailing_newline_like_rootlesskit(self, sock):
        assert api(sock, '{"execute": "list_hostfwd"}\n') == '{"entries":[]}'

    @pytest.mark.parametrize("request_,reply", [
        ('{"execute": "remove_hostfwd", "arguments": {"id": 99}}', "remove_hostfwd: bad arguments.id"),
        ('{"execute": "remove_hostfwd", "arguments": {"id": "1"}}', "remove_hostfwd: bad arguments.id"),
        ('{"execute": "remove_hostfwd", "arguments": {}}', "remove_hostfwd: bad arguments.id"),
        ('{"execute": "remove_hostfwd"}', "remove_hostfwd: bad arguments.id"),
        ('{"execute": "nope"}', "unknown execute"),
        ('{"execute": "LIST_HOSTFWD"}', "unknown execute"),
        ('{"foo": 1}', "no execute found"),
        ('{"execute": 5}', "no execute found"),
        ('[1,2]', "json_object() failed"),
        ('not json', "cannot parse JSON"),
        ('', "cannot parse JSON"),
        (ADD % '{"proto": "sctp", "host_port": 18083, "guest_port": 81}', "add_hostfwd: bad arguments.proto"),
        (ADD % '{"proto": "TCP", "host_port": 18083, "guest_port": 81}', "add_hostfwd: bad arguments.proto"),
        (ADD % '{"proto": "tcp", "host_port": "80", "guest_port": 81}', "add_hostfwd: bad arguments.host_port"),
        (ADD % '{"proto": "tcp", "guest_port": 81}', "add_hostfwd: bad arguments.host_port"),
        (ADD % '{"proto": "tcp", "host_port": 0, "guest_port": 81}', "add_hostfwd: bad arguments.host_port"),
        (ADD % '{"proto": "tcp", "host_addr": "bogus", "host_port": 18086, "guest_port": 81}',
         "add_hostfwd: bad arguments.host_addr"),
        (ADD % '{"proto": "tcp", "host_port": 18087, "guest_addr": "bogus", "guest_port": 81}',
         "add_hostfwd: bad arguments.guest_addr"),
        (ADD % '{"proto": "tcp", "host_port": 18090, "guest_port": 0}', "add_hostfwd: bad arguments.guest_port"),
        (ADD % '{"proto": "tcp", "host_port": 18092}', "add_hostfwd: bad arguments.guest_port"),
    ])
    def test_error_replies(self, sock, request_, reply):
        assert api(sock, request_) == '{"error":{"desc":"bad request: %s"}}' % reply
        assert self.daemon.proc.poll() is None
        assert api(sock, '{"execute": "list_hostfwd"}') == '{"entries":[]}'

    def test_requests_read_as_slirp4netns_reads_them(self, sock):
        """Hostile and odd requests, each answered as slirp4netns 1.2.0
        answers it (its parser, parson, sets the rules: text ends at a NUL,
        bytes that are not UTF-8 pass, what follows the first value is
        ignored, no NaN, no number beyond a double, no duplicate keys, no
        lone surrogate escapes); the daemon is alive after each one."""
        unparsable = '{"error":{"desc":"bad request: cannot parse JSON"}}'
        empty = '{"entries":[]}'
        bad_id = '{"error":{"desc":"bad request: remove_hostfwd: bad arguments.id"}}'
        cases = [
            (b"[" * 1100, unparsable),  # killed slirpd with a RecursionError (issue 21)
            (b"[" * 300 + b"]" * 300, '{"error":{"desc":"bad request: json_object() failed"}}'),
            (b'{"execute":"list_hostfwd","x":' + b"[" * 300 + b"]" * 300 + b"}", empty),
            (REMOVE % b"1e999", unparsable),
            (REMOVE % b"-1e999", unparsable),
            (REMOVE % (b"9" * 400), unparsable),  # beyond a double
            (REMOVE % (b"9" * 300), bad_id),
            (REMOVE % b"1e-999", bad_id),
            (REMOVE % b"1.0", bad_id),
            (REMOVE % b"true", bad_id),
            (LIST % b'"x": NaN', unparsable),
            (LIST % b'"x": -Infinity', unparsable),
            (b'{"execute":"list_hostfwd"}\0{', empty),
            (b'{"execute":"list\0_hostfwd"}', unparsable),
            (b"\0", unparsable),
            (LIST % b'"x": "\xff\xc0\xaf\xed\xa0\x80"', empty),
            (b'{"execute":"list_\xff"}', '{"error":{"desc":"bad request: unknown execute"}}'),
            (b'{"execute":"list_hostfwd"} trailing', empty),
            (b'{"execute":"list_hostfwd"}{}]', empty),
            (b'\t\v\f\r\n {"execute":"list_hostfwd"}', empty),
            (b'\xef\xbb\xbf{"execute":"list_hostfwd"}', empty),
            (b'{"execute":"list_hostfwd","execute":"nope"}', unparsable),
            (LIST % b'"x": [{"a": 1}, {"a": 2}]', empty),
            (LIST % b'"x": {"a": 1, "a": 2}', unparsable),
            (LIST % b'"x": "\\ud800"', unparsable),
            (LIST % b'"x": "\\udc00"', unparsable),
            (LIST % b'"x": "\\ud800x\\udc00"', unparsable),
            (LIST % b'"x": "\\ud800\\udc00"', empty),
            (LIST % b'"x": "\\\\ud800"', empty),  # an escaped backslash, then text
            (LIST % b'"x": "a\tb"', unparsable),
            (b'{"execute":"list_hostfwd\\u0000garbage"}', empty),
            (b'{"execute":"list_hostfwd", "arguments": 5}', empty),
            (b'"list_hostfwd"', '{"error":{"desc":"bad request: json_object() failed"}}'),
            (b'{"execute":null}', '{"error":{"desc":"bad request: no execute found"}}'),
            # slirp4netns's C code sees a string up to its first NUL
            (ADD.encode() % b'{"proto": "udp\\u0000x", "host_addr": "127.0.0.1\\u0000x", "host_port": 18700, '
                            b'"guest_addr": "10.0.2.100\\u0000x", "guest_port": 81}', '{"return":{"id":1}}'),
        ]
        wrong = [(request, reply, got) for request, reply in cases if (got := api(sock, request)) != reply]
        assert wrong == []
        assert self.daemon.proc.poll() is None
        assert api(sock, '{"execute": "list_hostfwd"}') == (
            '{"entries":[{"id":1,"proto":"udp","host_addr":"127.0.0.1","host_port":18700,'
            '"guest_addr":"10.0.2.100","guest_port":81}]}')


class TestSlirpdApi(_TestApi):
    binary = None  # conftest's SLIRPD

    @pytest.fixture
    def sock(self, guest, start_slirpd, user_tmp, plain_user):
        path = str(user_tmp / "api.sock")
        self.daemon = start_slirpd("-c", f"--api-socket={path}", str(guest.pid))
        self.guest = guest
        self.plain_user = plain_user
        return path  # ready fired: the socket must already listen

    def test_socket_mode_0600_and_removed_on_exit(self, sock):
        assert stat.S_IMODE(os.stat(sock).st_mode) == 0o600
        assert self.daemon.stop() == 0, self.daemon.stderr
        assert not os.path.exists(sock)

    @pytest.mark.parametrize("request_,reply", [
        # slirp4netns 1.2.0 crashes (SIGSEGV) on these
        ('{"execute": "add_hostfwd"}', "add_hostfwd: bad arguments.proto"),
        ('{"execute": "add_hostfwd", "arguments": []}', "add_hostfwd: bad arguments.proto"),
        (ADD % '{"proto": 6, "host_port": 18096, "guest_port": 81}', "add_hostfwd: bad arguments.proto"),
        (ADD % '{"host_port": 18084, "guest_port": 81}', "add_hostfwd: bad arguments.proto"),
        # ... and accepts these, wrapping or ignoring the value
        (ADD % '{"proto": "tcp", "host_port": 70000, "guest_port": 81}', "add_hostfwd: bad arguments.host_port"),
        (ADD % '{"proto": "tcp", "host_port": -1, "guest_port": 81}', "add_hostfwd: bad arguments.host_port"),
        (ADD % '{"proto": "tcp", "host_port": true, "guest_port": 81}', "add_hostfwd: bad arguments.host_port"),
        (ADD % '{"proto": "tcp", "host_port": 18091, "guest_port": 1.5}', "add_hostfwd: bad arguments.guest_port"),
        (ADD % '{"proto": "udp", "host_port": 18095, "guest_port": 81, "host_addr": 5}',
         "add_hostfwd: bad arguments.host_addr"),
        (ADD % '{"proto": "tcp", "host_port": 18093, "guest_port": 81, "guest_addr": "10.0.2.2"}',
         "add_hostfwd: bad arguments.guest_addr"),
        (ADD % '{"proto": "tcp", "host_port": 18094, "guest_port": 81, "guest_addr": "192.0.2.1"}',
         "add_hostfwd: bad arguments.guest_addr"),
    ])
    def test_error_replies_where_slirp4netns_fails(self, sock, request_, reply):
        assert api(sock, request_) == '{"error":{"desc":"bad request: %s"}}' % reply
        assert self.daemon.proc.poll() is None

    def test_where_the_parser_differs_from_slirp4netns(self, sock):
        """Two documented differences: nesting deeper than NESTING_MAX is not
        parsed (parson allows 2048 levels, Python's recursion does not), and
        a number ending in a dot is not a number (strtod takes "1.")."""
        from slirpd.apijson import NESTING_MAX

        deep = b'{"execute":"list_hostfwd","x":%s}'
        assert api(sock, deep % (b"[" * (NESTING_MAX - 1) + b"]" * (NESTING_MAX - 1))) == '{"entries":[]}'
        assert api(sock, deep % (b"[" * NESTING_MAX + b"]" * NESTING_MAX)) == \
            '{"error":{"desc":"bad request: cannot parse JSON"}}'
        assert api(sock, LIST % b'"x": 1.') == '{"error":{"desc":"bad request: cannot parse JSON"}}'
        assert self.daemon.proc.poll() is None

    def test_ipv6_host_addr(self, sock):
        assert api(sock, ADD % '{"proto": "tcp", "host_addr": "::", "host_port": 18100, "guest_port": 80}') == \
            '{"return":{"id":1}}'
        assert api(sock, ADD % '{"proto": "udp", "host_addr": "::1", "host_port": 18101, "guest_port": 80}') == \
            '{"return":{"id":2}}'
        assert '"host_addr":"::"' in api(sock, '{"execute": "list_hostfwd"}')

    def test_request_too_large(self, sock):
        reply = api(sock, '{"execute": "list_hostfwd", "x": "' + "a" * 5000 + '"}')
        assert reply == '{"error":{"desc":"bad request: request too large (over 4096 bytes)"}}'
        assert api(sock, '{"execute": "list_hostfwd"}') == '{"entries":[]}'

    def test_silent_client_times_out_and_others_are_served(self, sock):
        with socket.socket(socket.AF_UNIX) as idle:
            idle.settimeout(15)
            idle.connect(sock)
            # the daemon keeps serving other clients and the guest meanwhile
            assert api(sock, '{"execute": "list_hostfwd"}') == '{"entries":[]}'
            assert self.guest.run("ping -c 1 -W 2 10.0.2.2", check=False).returncode == 0
            start = time.monotonic()
            reply = idle.recv(4096)
            assert reply == b'{"error":{"desc":"bad request: timed out waiting for the request"}}'
            assert time.monotonic() - start < 10

    def test_add_remove_cycles_do_not_leak_fds(self, sock):
        api(sock, '{"execute": "list_hostfwd"}')
        before = self.daemon.open_fds()
        for i in range(100):
            assert api(sock, ADD % '{"proto": "tcp", "host_port": 18200, "guest_port": 80}') == \
                '{"return":{"id":%d}}' % (i + 1)
            assert api(sock, '{"execute": "remove_hostfwd", "arguments": {"id": %d}}' % (i + 1)) == '{"return":{}}'
        assert self.daemon.open_fds() == before

    def test_many_clients_at_once(self, sock):
        clients = []
        for _ in range(20):
            s = socket.socket(socket.AF_UNIX)
            s.settimeout(10)
            s.connect(sock)
            clients.append(s)
        for s in clients:
            s.sendall(b'{"execute": "list_hostfwd"}')
            s.shutdown(socket.SHUT_WR)
        for s in clients:
            assert s.recv(4096) == b'{"entries":[]}'
            s.close()

    def test_out_of_descriptors_the_listener_waits_then_serves(self, sock):
        """accept() failing with EMFILE (issue 21: it killed the daemon, and
        catching it alone would spin): with no descriptor to be had, queued
        clients wait, the daemon takes almost no CPU and keeps serving the
        guest; once descriptors are back they are answered."""
        pid = self.daemon.proc.pid
        assert api(sock, '{"execute": "list_hostfwd"}') == '{"entries":[]}'
        fds = self.daemon.open_fds()
        soft, hard = nofile_limit(pid)
        set_nofile_limit(pid, 1, hard, self.plain_user)  # no new descriptor at all
        waiting = []
        try:
            for _ in range(3):
                s = socket.socket(socket.AF_UNIX)
                s.settimeout(20)
                s.connect(sock)  # queued in the listener's backlog
                s.sendall(b'{"execute": "list_hostfwd"}')
                s.shutdown(socket.SHUT_WR)
                waiting.append(s)
            wait_for(lambda: "API socket: cannot accept clients" in self.daemon.stderr, 10, "the EMFILE line")
            ticks = self.daemon.cpu_ticks()
            time.sleep(1)
            assert self.daemon.cpu_ticks() - ticks <= os.sysconf("SC_CLK_TCK") // 10  # under 10% of a CPU
            assert self.guest.run("ping -c 1 -W 2 10.0.2.2", check=False).returncode == 0
            assert "accepting clients again" not in self.daemon.stderr  # it was out of descriptors all along
        finally:
            set_nofile_limit(pid, soft, hard, self.plain_user)
        for s in waiting:
            assert s.recv(4096) == b'{"entries":[]}'
            s.close()
        assert self.daemon.stderr.count("API socket: cannot accept clients") == 1
        assert self.daemon.stderr.count("accepting clients again") == 1
        stats = json.loads(api(sock, '{"execute": "get_stats"}'))["return"]["api"]
        assert stats["accept_errors"] >= 1 and stats["clients"] == 1  # this get_stats
        wait_for(lambda: self.daemon.open_fds() == fds, 10, "the daemon's descriptors to come back")
        assert self.daemon.proc.poll() is None


def nofile_limit(pid: int) -> tuple[int, int]:
    """A process's RLIMIT_NOFILE (soft, hard), from /proc/PID/limits."""
    with open(f"/proc/{pid}/limits") as f:
        line = next(ln for ln in f if ln.startswith("Max open files"))
    soft, hard = line.split()[3:5]
    return int(soft), int(hard)


def set_nofile_limit(pid: int, soft: int, hard: int, user) -> None:
    """Set a daemon's RLIMIT_NOFILE with prlimit as its own user (root here
    lacks CAP_SYS_RESOURCE, which another user's process would need)."""
    subprocess.run(["prlimit", f"--pid={pid}", f"--nofile={soft}:{hard}"], check=True, timeout=10,
                   **as_user(user))


@pytest.mark.skipif(shutil.which("slirp4netns") is None, reason="Debian's slirp4netns is not installed")
class TestSlirp4netnsApi(_TestApi):
    binary = shutil.which("slirp4netns") or "slirp4netns"


def test_api_with_sandbox(guest, start_slirpd, user_tmp):
    path = str(user_tmp / "api.sock")
    d = start_slirpd("-c", "--enable-sandbox", f"--api-socket={path}", str(guest.pid))
    assert api(path, ADD % '{"proto": "tcp", "host_port": 18300, "guest_port": 80}') == '{"return":{"id":1}}'
    assert d.stop() == 0
    assert not os.path.exists(path)


def test_publish_at_start(guest, start_slirpd, user_tmp):
    path = str(user_tmp / "api.sock")
    start_slirpd("-c", "-p", "18400:80", "--publish=127.0.0.1:18401:81/udp", "-p", "[::1]:18402:82",
                 f"--api-socket={path}", str(guest.pid))
    assert api(path, '{"execute": "list_hostfwd"}') == (
        '{"entries":[{"id":1,"proto":"tcp","host_addr":"0.0.0.0","host_port":18400,"guest_addr":"10.0.2.100",'
        '"guest_port":80},{"id":2,"proto":"udp","host_addr":"127.0.0.1","host_port":18401,"guest_addr":'
        '"10.0.2.100","guest_port":81},{"id":3,"proto":"tcp","host_addr":"::1","host_port":18402,"guest_addr":'
        '"10.0.2.100","guest_port":82}]}')


def test_publish_port_in_use_fails_clearly(guest, start_slirpd):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 18500))
        s.listen()
        d = start_slirpd("-c", "-p", "127.0.0.1:18500:80", str(guest.pid), ready=False)
        assert d.proc.wait(timeout=20) == 1
        assert "--publish 127.0.0.1:18500:80/tcp: Address already in use" in d.stderr


def test_get_stats_and_ctl_round_trip(net_guest, start_slirpd, user_tmp, plain_user):
    """get_stats counters move with traffic; slirpd-ctl drives every command."""
    import sys
    from pathlib import Path

    g = net_guest
    g.slirpd.stop()
    path = str(user_tmp / "api.sock")
    start_slirpd("-c", f"--api-socket={path}", str(g.pid))
    ctl = [str(Path(sys.executable).parent / "slirpd-ctl"), "-s", path]

    def run(*args):
        return subprocess.run(ctl + list(args), capture_output=True, text=True, timeout=20, **as_user(plain_user))

    before = json.loads(run("--json", "stats").stdout)["return"]["counters"]
    g.run("ping -c 3 -i 0.2 -W 2 10.0.2.2")
    after = json.loads(run("--json", "stats").stdout)["return"]["counters"]
    assert after["icmp_echo_replies"] == before["icmp_echo_replies"] + 3
    assert after["frames_in"] > before["frames_in"]

    res = run("add-hostfwd", "127.0.0.1:18600:80")
    assert (res.returncode, res.stdout) == (0, "1\n")
    res = run("add-hostfwd", "--udp", "18601:53")
    assert (res.returncode, res.stdout) == (0, "2\n")
    listing = run("list").stdout.splitlines()
    assert listing == ["ID\tPROTO\tHOST\tGUEST", "1\ttcp\t127.0.0.1:18600\t10.0.2.100:80",
                       "2\tudp\t0.0.0.0:18601\t10.0.2.100:53"]
    stats = run("stats").stdout
    assert "forward 1 tcp 127.0.0.1:18600 -> 10.0.2.100:80: 0 connections" in stats
    assert run("remove", "1").returncode == 0
    res = run("remove", "1")
    assert res.returncode == 1 and res.stderr == "slirpd-ctl: bad request: remove_hostfwd: bad arguments.id\n"
    res = subprocess.run([str(Path(sys.executable).parent / "slirpd"), "ctl", "-s", path, "list"],
                         capture_output=True, text=True, timeout=20, **as_user(plain_user))
    assert res.stdout.splitlines()[1:] == ["2\tudp\t0.0.0.0:18601\t10.0.2.100:53"]
