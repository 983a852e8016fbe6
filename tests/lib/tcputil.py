"""TCP test helpers: servers on the sandbox's 127.0.0.1, guest-side scripts.

The servers run in threads of the test process (root, sandbox namespace); the
guest reaches them at 10.0.2.2:PORT through slirpd.  Each connection is served
in its own thread by a handler whose return value (or exception) is recorded.
"""

from __future__ import annotations

import hashlib
import os
import socket
import struct
import threading
import time

GW = "10.0.2.2"
CHUNK = 1 << 16


def block(n: int = (1 << 20) + 13) -> bytes:
    """Random data whose length is prime to segment sizes, repeated by senders."""
    return os.urandom(n)


class Server:
    """A threaded TCP server on 127.0.0.1; handler(conn) -> result per connection."""

    def __init__(self, handler, backlog: int = 1024):
        self.handler = handler
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(backlog)
        self.port = self.sock.getsockname()[1]
        self.results: list = []
        self.errors: list = []
        self.lock = threading.Lock()
        self.closed = False
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while not self.closed:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        try:
            with conn:
                res = self.handler(conn)
            with self.lock:
                self.results.append(res)
        except Exception as e:  # recorded for the test to look at
            with self.lock:
                self.errors.append(e)

    def wait(self, n: int, timeout: float = 30):
        """Wait until n connections were served (results or errors)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.results) + len(self.errors) >= n:
                    return
            time.sleep(0.01)
        raise TimeoutError(f"{len(self.results)} results, {len(self.errors)} errors; wanted {n}")

    def close(self):
        self.closed = True
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (it was free a moment ago)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def sink(conn) -> tuple[int, str]:
    """Read to EOF: (bytes, sha256)."""
    h, n = hashlib.sha256(), 0
    while True:
        d = conn.recv(1 << 20)
        if not d:
            return n, h.hexdigest()
        h.update(d)
        n += len(d)


def source(total: int):
    """Handler factory: send total bytes of random data, then close; -> sha256."""
    data = block()

    def handler(conn) -> tuple[int, str]:
        h, left = hashlib.sha256(), total
        view = memoryview(data)
        while left:
            part = view[:min(left, len(view))]
            conn.sendall(part)
            h.update(part)
            left -= len(part)
        return total, h.hexdigest()

    return handler


def echo(conn) -> int:
    """Echo everything back until EOF; -> bytes echoed."""
    n = 0
    while True:
        d = conn.recv(CHUNK)
        if not d:
            return n
        conn.sendall(d)
        n += len(d)


def linger0(sock):
    """Make close() send a RST."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


# --- scripts run inside the guest (guest.python(SCRIPT, args...)) ----------

# argv: port total -> prints "bytes sha256" of what was sent, after the server
# closed its side
GUEST_SEND = r"""
import hashlib, os, socket, sys
port, total = int(sys.argv[1]), int(sys.argv[2])
data = memoryview(os.urandom((1 << 20) + 13))
s = socket.create_connection(("10.0.2.2", port), timeout=60)
h, left = hashlib.sha256(), total
while left:
    part = data[:min(left, len(data))]
    s.sendall(part)
    h.update(part)
    left -= len(part)
s.shutdown(socket.SHUT_WR)
assert s.recv(1) == b""
print(total, h.hexdigest())
"""

# argv: port -> prints "bytes sha256" of everything received until EOF
GUEST_RECV = r"""
import hashlib, socket, sys
s = socket.create_connection(("10.0.2.2", int(sys.argv[1])), timeout=60)
h, n = hashlib.sha256(), 0
while True:
    d = s.recv(1 << 20)
    if not d:
        break
    h.update(d)
    n += len(d)
print(n, h.hexdigest())
"""
